//! Revisions of an instance's AppCodes: what lets a gateway catch up on what changed instead of
//! reloading every code.
//!
//! Every write that changes which AppCodes an instance accepts, or from where (creating a code,
//! deleting one, creating or deleting an app, changing its key or secret, setting or removing
//! an app's ACL, binding, unbinding, changing or deleting an app quota), takes the instance's
//! next revision, one per write, and logs each code it created or deleted, and each app whose
//! key, ACL or quota it changed, under it. A reader that holds the codes as of revision `R`
//! asks for the changes after `R` ([`Store::app_code_changes`](super::Store::app_code_changes))
//! and gets them with the revision they bring it to. The log keeps the last
//! [`CHANGE_LOG_RETENTION`] revisions of each instance: a reader further behind is told to load
//! a full snapshot again.
//!
//! ```
//! use apig_appcode::store::{AppCodeChanges, DeletedAppCode};
//!
//! let changes = AppCodeChanges {
//!     revision: 7,
//!     created: Vec::new(),
//!     deleted: vec![DeletedAppCode { app_id: "app-1".into(), id: "code-1".into() }],
//!     acls: Vec::new(),
//!     quotas: Vec::new(),
//!     keys: Vec::new(),
//! };
//! assert!(!changes.is_empty());
//! ```

use super::AppCodeRecord;
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::quota::AppQuota;

/// How many revisions of each instance the change log keeps. A gateway that fell further behind
/// (offline through that many writes) reloads a full snapshot.
pub const CHANGE_LOG_RETENTION: u64 = 10_000;

/// Every AppCode of an instance, as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSnapshot {
    /// The codes.
    pub codes: Vec<AppCodeRecord>,
    /// The revision they reflect: 0 before the instance's first write; `None` if the store keeps
    /// no revisions (then a reader can only reload snapshots).
    pub revision: Option<u64>,
}

/// What changed in an instance's AppCodes after a revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppCodeChanges {
    /// The revision these changes bring a reader to (the instance's latest).
    pub revision: u64,
    /// Codes created after the revision that still exist, oldest first: each ID once, as it
    /// exists now, where it was last created (an ID deleted and created again is also in
    /// `deleted`; a reader removes before it adds).
    pub created: Vec<AppCodeRecord>,
    /// Codes deleted after the revision (alone, or with their app) that existed at it or were
    /// created after it, oldest first.
    pub deleted: Vec<DeletedAppCode>,
    /// Apps whose ACL was set or removed after the revision (or that were deleted holding one),
    /// each once, with the ACL it has now (`None`: none). An app whose signing key changed is
    /// here too, with the ACL it has.
    pub acls: Vec<(String, Option<AppAcl>)>,
    /// Apps whose quota changed after the revision (bound, unbound, the quota changed or was
    /// deleted, or the app was deleted bound to one), each once, with the quota it has now.
    pub quotas: Vec<(String, Option<AppQuota>)>,
    /// Apps created, deleted, or whose key or secret changed after the revision (or whose ACL
    /// or quota did), each once, with the signing key and secret they have now (`None`: the
    /// app is gone).
    pub keys: Vec<(String, Option<AppKey>)>,
}

impl AppCodeChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
            && self.deleted.is_empty()
            && self.acls.is_empty()
            && self.quotas.is_empty()
            && self.keys.is_empty()
    }
}

/// An AppCode that was deleted: its IDs (the value is gone with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedAppCode {
    /// The app it belonged to.
    pub app_id: String,
    /// The AppCode's ID.
    pub id: String,
}
