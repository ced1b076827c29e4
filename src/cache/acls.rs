//! The cache's methods that read and change app ACLs, held in a [`ByApp`](super::by_app::ByApp).

use std::sync::Arc;

use super::journal::Mutation;
use super::AppCodeCache;
use crate::acl::AppAcl;
use crate::provider::AppAcls;

impl AppCodeCache {
    /// Sets the ACL of the app `app_id` (see [`acl`](crate::acl)), replacing any it had. Takes
    /// effect for the next request of any of its codes.
    pub fn set_app_acl(&self, app_id: &str, acl: Arc<AppAcl>) {
        self.record_and_apply(Mutation::Acl(app_id.into(), Some(acl)));
    }

    /// Removes the ACL of the app `app_id`; `true` if it had one.
    pub fn remove_app_acl(&self, app_id: &str) -> bool {
        self.record_and_apply(Mutation::Acl(app_id.into(), None)) > 0
    }

    /// The ACL of the app `app_id`, if it has one.
    ///
    /// ```
    /// let cache = apig_appcode::AppCodeCache::new();
    /// assert!(cache.app_acl("app-1").is_none());
    /// ```
    pub fn app_acl(&self, app_id: &str) -> Option<Arc<AppAcl>> {
        self.inner.acls.get(app_id)
    }

    /// How many apps have an ACL.
    pub fn app_acls(&self) -> usize {
        self.inner.acls.len()
    }

    /// Sets or removes one app's ACL; returns 1 if that changed anything.
    pub(super) fn apply_acl(&self, app_id: &str, acl: Option<&Arc<AppAcl>>) -> usize {
        self.inner.acls.apply(app_id, acl)
    }

    /// Replaces every app's ACL with `acls` (a provider's, whose load started at `since`), then
    /// replays the ACL changes made since, so an ACL set or removed while the list was in
    /// flight keeps its newer state. `false` (nothing applied) if the journal no longer reaches
    /// back to `since`.
    pub(crate) fn replace_app_acls_since(&self, acls: AppAcls, since: u64) -> bool {
        let journal = self.journal();
        self.inner
            .acls
            .replace_since(&acls, &journal, since, |change| match change {
                Mutation::Acl(app, acl) => Some((&**app, acl.as_ref())),
                _ => None,
            })
    }
}
