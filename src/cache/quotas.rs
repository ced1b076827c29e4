//! The cache's methods that read, change and charge app quotas (see [`quota`](crate::quota)).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::AppCodeCache;
use crate::quota::AppQuota;

impl AppCodeCache {
    /// Sets the quota of the app `app_id`, replacing any it had. Its calls in the current window
    /// stay counted.
    pub fn set_app_quota(&self, app_id: &str, quota: Arc<AppQuota>) {
        self.inner.quotas.set(app_id, quota);
    }

    /// Removes the quota of the app `app_id`, and its count; `true` if it had one.
    pub fn remove_app_quota(&self, app_id: &str) -> bool {
        let had = self.inner.quotas.remove(app_id);
        self.inner.quota_counts.forget(app_id);
        had
    }

    /// The quota of the app `app_id`, if it has one.
    ///
    /// ```
    /// let cache = apig_appcode::AppCodeCache::new();
    /// assert!(cache.app_quota("app-1").is_none());
    /// ```
    pub fn app_quota(&self, app_id: &str) -> Option<Arc<AppQuota>> {
        self.inner.quotas.get(app_id)
    }

    /// Counts a call of `app_id` now against its quota, if it has one; how long until its
    /// window ends when the quota is used up. The clock is read only for an app with a quota.
    pub(crate) fn charge_quota(&self, app_id: &str) -> Result<(), Duration> {
        match self.inner.quotas.get(app_id) {
            Some(quota) => self
                .inner
                .quota_counts
                .charge(app_id, &quota, SystemTime::now()),
            None => Ok(()),
        }
    }

    /// Drops the quota and count of an app that left.
    pub(super) fn forget_quota(&self, app_id: &str) {
        self.inner.quotas.remove(app_id);
        self.inner.quota_counts.forget(app_id);
    }
}
