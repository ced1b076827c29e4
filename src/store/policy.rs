//! What a change of kind `A` may have changed of an app, its ACL, its quota and its key, as both
//! SQL stores read it: one statement for all the apps a reader catches up on (and, in
//! PostgreSQL, for the app an announcement names), rather than one each for ACLs, quotas and
//! keys. The SQL is the same in both dialects; each store decodes the row itself.

use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::quota::AppQuota;
use crate::store::AppCodeChanges;

/// The columns of the app `a` that a store's `policy::read` decodes: its ACL's (from
/// `app_acls x`), its quota's (from `app_quota_bindings b` and `app_quotas q`, the reset time
/// anchored at the binding when the quota has none), its project and its app columns, in the
/// order of each store's own list of them (each store's tests hold it to
/// `ends_with_app_columns`).
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

/// The joins from `apps a` that [`policy_columns!`] read from; every app has one row (an app
/// has at most one ACL and one binding), its columns `NULL` where it has no ACL or no quota.
macro_rules! policy_joins {
    () => {
        " LEFT JOIN app_acls x ON x.app_seq = a.seq
          LEFT JOIN app_quota_bindings b ON b.app_seq = a.seq
          LEFT JOIN app_quotas q ON q.seq = b.quota_seq "
    };
}
pub(super) use policy_joins;

/// The statement that reads, for a reader catching up, the apps logged as changed (kind `A`)
/// after a revision, each once in the order of its last change, and each one's ID and
/// [`policy_columns!`] as it is now. `$changed_apps` is the store's dialect of the change-log
/// read (`FROM ... l LEFT JOIN apps a`), which binds the instance and the revision.
macro_rules! changed_policies {
    ($($changed_apps:tt)*) => {
        concat!(
            "SELECT l.app_id, ",
            $crate::store::policy::policy_columns!(),
            $($changed_apps)*,
            $crate::store::policy::policy_joins!(),
            "ORDER BY l.revision, l.ord"
        )
    };
}
pub(super) use changed_policies;

/// An app's ACL, quota and key, each `None` where it has none: all three once the app is gone.
#[derive(Default)]
pub(super) struct Policy {
    pub(super) acl: Option<AppAcl>,
    pub(super) quota: Option<AppQuota>,
    pub(super) key: Option<AppKey>,
}

impl Policy {
    /// Adds what `app_id` has now to the changes a reader catches up with.
    pub(super) fn add_to(self, app_id: String, changes: &mut AppCodeChanges) {
        changes.acls.push((app_id.clone(), self.acl));
        changes.quotas.push((app_id.clone(), self.quota));
        changes.keys.push((app_id, self.key));
    }
}

/// Whether [`policy_columns!`] ends with the project and then `app_columns` (a store's app
/// columns, in the order its row decoder reads them), each of app `a`.
#[cfg(test)]
pub(super) fn ends_with_app_columns<'a>(app_columns: impl Iterator<Item = &'a str>) -> bool {
    let read: Vec<String> = policy_columns!()
        .split(',')
        .map(|c| c.trim().to_owned())
        .collect();
    let wanted: Vec<String> = std::iter::once("project_id")
        .chain(app_columns)
        .map(|column| format!("a.{column}"))
        .collect();
    read.ends_with(&wanted)
}
