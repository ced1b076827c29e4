//! What a change of kind `A` may have changed of an app: its ACL, its quota and its key, read
//! together in one statement for each app a reader catches up on (`revision.rs`), rather than
//! in one statement each. The rules are the PostgreSQL store's, under the same names.

use rusqlite::Row;

use super::rows::raw_limit;
use super::{acls, keys, quotas};
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::quota::AppQuota;
use crate::store::cipher::Sealer;
use crate::store::sealed::{RawApp, RawLimit};
use crate::store::StoreResult;

/// The columns [`read`] reads of the app `a` after its ID: its ACL's (from `app_acls x`), its
/// quota's (from `app_quota_bindings b` and `app_quotas q`), its project and its
/// [`APP_COLUMNS`](super::rows::APP_COLUMNS).
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
pub(super) struct Policy {
    pub(super) acl: Option<AppAcl>,
    pub(super) quota: Option<AppQuota>,
    pub(super) key: Option<AppKey>,
}

/// An app's ID and its [`policy_columns!`] as stored. A row reader can only fail with a
/// `rusqlite::Error`, so decoding, which can find the data corrupt, is [`RawPolicy::open`].
pub(super) struct RawPolicy {
    app_id: String,
    /// The ACL's type and values.
    acl: Option<(String, String)>,
    limit: Option<RawLimit>,
    /// The app's project and its columns.
    app: Option<(String, RawApp)>,
}

/// The app's ID in column `at` of `row`, then its [`policy_columns!`].
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
