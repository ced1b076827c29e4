//! What a change of kind `A` may have changed of an app: its ACL, its quota and its key, read
//! together in one statement for each app a reader catches up on (`revision.rs`) and for the app
//! an announcement names (`listen.rs`), rather than in one statement each.

use tokio_postgres::Row;

use super::rows::col;
use super::{acls, keys, quotas};
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::quota::AppQuota;
use crate::store::cipher::Sealer;
use crate::store::StoreResult;

/// The columns [`read`] reads of the app `a`: its ACL's (from `app_acls x`), its quota's (from
/// `app_quota_bindings b` and `app_quotas q`), its project and its `app_columns!`.
macro_rules! policy_columns {
    () => {
        "x.kind, x.acl_values, \
         q.call_limits, q.time_unit, q.time_interval, \
         COALESCE(q.reset_time, b.bound_time / 1000000000), \
         a.project_id, a.id, a.name, a.remark, a.creator, a.app_key, a.app_secret, \
         a.app_secret_nonce, a.register_time, a.update_time, a.status"
    };
}
pub(super) use policy_columns;

/// The joins from `apps a` that [`policy_columns!`] read from; every app has one row, its
/// columns `NULL` where it has no ACL or no quota.
macro_rules! policy_joins {
    () => {
        " LEFT JOIN app_acls x ON x.app_seq = a.seq
          LEFT JOIN app_quota_bindings b ON b.app_seq = a.seq
          LEFT JOIN app_quotas q ON q.seq = b.quota_seq "
    };
}
pub(super) use policy_joins;

/// An app's ACL, quota and key, each `None` where it has none: all three once the app is gone.
#[derive(Default)]
pub(super) struct Policy {
    pub(super) acl: Option<AppAcl>,
    pub(super) quota: Option<AppQuota>,
    pub(super) key: Option<AppKey>,
}

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
