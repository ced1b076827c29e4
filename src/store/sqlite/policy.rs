//! What a change of kind `A` may have changed of an app, its ACL, its quota and its key, decoded
//! from the one statement a reader catching up reads them with (`revision.rs`). The statement's
//! columns and joins are the PostgreSQL store's too (`store/policy.rs`).

use rusqlite::Row;

use super::rows::raw_limit;
use super::{acls, keys, quotas};
use crate::store::cipher::Sealer;
use crate::store::policy::Policy;
use crate::store::sealed::{RawApp, RawLimit};
use crate::store::StoreResult;

/// An app's ID and its [`policy_columns!`](crate::store::policy::policy_columns) as stored. A
/// row reader can only fail with a `rusqlite::Error`, so decoding, which can find the data
/// corrupt, is [`RawPolicy::open`].
pub(super) struct RawPolicy {
    app_id: String,
    /// The ACL's type and values.
    acl: Option<(String, String)>,
    limit: Option<RawLimit>,
    /// The app's project and its columns.
    app: Option<(String, RawApp)>,
}

/// The app's ID in column `at` of `row`, then its
/// [`policy_columns!`](crate::store::policy::policy_columns).
pub(super) fn read(row: &Row<'_>, at: usize) -> rusqlite::Result<RawPolicy> {
    let kind: Option<String> = row.get(at + 1)?;
    let values: Option<String> = row.get(at + 2)?;
    let limit = match row.get::<_, Option<i64>>(at + 3)? {
        Some(_) => Some(raw_limit(row, at + 3)?),
        None => None,
    };
    // No project: the app is gone.
    let app = match row.get::<_, Option<String>>(at + 7)? {
        Some(project) => Some((project, RawApp::from_sqlite_row_at(row, at + 8)?)),
        None => None,
    };
    Ok(RawPolicy {
        app_id: row.get(at)?,
        acl: kind.zip(values),
        limit,
        app,
    })
}

impl RawPolicy {
    /// The app's ID and its policy, in the instance: its ACL decoded, its quota checked and
    /// its secret opened.
    pub(super) fn open(self, sealer: &Sealer, instance_id: &str) -> StoreResult<(String, Policy)> {
        let acl = self
            .acl
            .map(|(kind, values)| acls::decode(&kind, &values))
            .transpose()?;
        let quota = self
            .limit
            .map(|limit| quotas::quota_of(&self.app_id, limit))
            .transpose()?;
        let key = self
            .app
            .map(|(project, raw)| keys::key_of(project, raw, sealer, instance_id))
            .transpose()?
            .map(|(_, key)| key);
        Ok((self.app_id, Policy { acl, quota, key }))
    }
}

#[cfg(test)]
mod tests {
    /// `read` decodes the app by the positions of the store's own app columns.
    #[test]
    fn the_policys_app_columns_are_the_stores() {
        let ours = super::super::rows::APP_COLUMNS.split(',').map(str::trim);
        assert!(crate::store::policy::ends_with_app_columns(ours));
    }
}
