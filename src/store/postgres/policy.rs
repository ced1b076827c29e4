//! What a change of kind `A` may have changed of an app, its ACL, its quota and its key, decoded
//! from the one statement that reads them for each app a reader catches up on (`revision.rs`)
//! and for the app an announcement names (`listen.rs`). The statement's columns and joins are
//! the SQLite store's too (`store/policy.rs`).

use tokio_postgres::Row;

use super::rows::col;
use super::{acls, keys, quotas};
use crate::store::cipher::Sealer;
use crate::store::StoreResult;

pub(super) use crate::store::policy::{policy_columns, policy_joins, Policy};

/// The [`policy_columns!`] of the app `app_id` from column `at` of `row` on; its ACL only
/// `with_acl`, so that an ACL nobody asked for is not decoded.
pub(super) fn read(
    row: &Row,
    at: usize,
    app_id: &str,
    with_acl: bool,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Policy> {
    let has_acl = with_acl && col::<Option<String>>(row, at)?.is_some();
    let acl = if has_acl {
        Some(acls::decode(row, at)?)
    } else {
        None
    };
    let quota = quotas::quota_in(row, at + 2, app_id)?;
    // No project: the app is gone.
    let key = match col::<Option<String>>(row, at + 6)? {
        Some(_) => Some(keys::key_of(row, at + 6, sealer, instance_id)?.1),
        None => None,
    };
    Ok(Policy { acl, quota, key })
}

#[cfg(test)]
mod tests {
    /// `read` decodes the app by the positions of the store's own app columns.
    #[test]
    fn the_policys_app_columns_are_the_stores() {
        let ours = super::super::rows::app_columns!().split(',').map(str::trim);
        assert!(crate::store::policy::ends_with_app_columns(ours));
    }
}
