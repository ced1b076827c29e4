//! The cache's methods that read, change and charge app quotas (see [`quota`](crate::quota)).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::journal::Mutation;
use super::AppCodeCache;
use crate::provider::AppQuotas;
use crate::quota::AppQuota;

/// What [`AppCodeCache::charge_quota`] made of a call.
pub(crate) enum Charge {
    /// The app has no quota.
    NoQuota,
    /// Counted: `left` calls remain in the window.
    Counted { quota: Arc<AppQuota>, left: u64 },
    /// Refused: the window ends in `wait`.
    UsedUp {
        quota: Arc<AppQuota>,
        wait: Duration,
    },
}

impl AppCodeCache {
    /// Sets the quota of the app `app_id`, replacing any it had. Its calls in the current window
    /// stay counted.
    pub fn set_app_quota(&self, app_id: &str, quota: Arc<AppQuota>) {
        self.record_and_apply(Mutation::Quota(app_id.into(), Some(quota)));
    }

    /// Removes the quota of the app `app_id`, and its count; `true` if it had one.
    pub fn remove_app_quota(&self, app_id: &str) -> bool {
        self.record_and_apply(Mutation::Quota(app_id.into(), None)) > 0
    }

    /// Calls counted against app quotas on this node and not yet added to the counts shared
    /// between nodes (0 when the provider shares none: nothing is waiting).
    pub fn quota_calls_unflushed(&self) -> u64 {
        self.inner.quota_counts.pending()
    }

    /// Sends the calls counted here and not yet shared (see
    /// [`quota_calls_unflushed`](Self::quota_calls_unflushed)) at once, and waits until they are,
    /// for at most `within`: `false` if some are still waiting then. For a graceful shutdown, so
    /// that a restart loses no count. Without shared counts there is nothing to send.
    pub async fn flush_quota_counts(&self, within: std::time::Duration) -> bool {
        let counts = &self.inner.quota_counts;
        counts.flush_now();
        let deadline = tokio::time::Instant::now() + within;
        while counts.pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        true
    }

    /// How many apps have a quota.
    pub fn app_quotas(&self) -> usize {
        self.inner.quotas.len()
    }

    /// Sets or removes one app's quota; returns 1 if it had or now has one.
    pub(super) fn apply_quota(&self, app_id: &str, quota: Option<&Arc<AppQuota>>) -> usize {
        if quota.is_none() {
            self.inner.quota_counts.forget(app_id);
        }
        self.inner.quotas.apply(app_id, quota)
    }

    /// Replaces every app's quota with `quotas` (a provider's, whose load started at `since`),
    /// then replays the quota changes made since, as
    /// [`replace_app_acls_since`](Self::replace_app_acls_since) does for ACLs. The counts of
    /// apps left without a quota go.
    pub(crate) fn replace_app_quotas_since(&self, quotas: AppQuotas, since: u64) -> bool {
        let journal = self.journal();
        let replaced = self
            .inner
            .quotas
            .replace_since(&quotas, &journal, since, |change| match change {
                Mutation::Quota(app, quota) => Some((&**app, quota.as_ref())),
                _ => None,
            });
        if !replaced {
            return false;
        }
        let quotas = &self.inner.quotas;
        self.inner
            .quota_counts
            .retain(|app| quotas.get(app).is_some());
        true
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

    /// Counts a call of `app_id` now against its quota, if it has one: then the quota and the
    /// calls left in its window; how long until the window ends when the quota is used up. The
    /// clock is read only for an app with a quota.
    pub(crate) fn charge_quota(&self, app_id: &str) -> Charge {
        let Some(quota) = self.inner.quotas.get(app_id) else {
            return Charge::NoQuota;
        };
        match self
            .inner
            .quota_counts
            .charge(app_id, &quota, SystemTime::now())
        {
            Ok(left) => Charge::Counted { quota, left },
            Err(wait) => Charge::UsedUp { quota, wait },
        }
    }

    /// Drops the quota and count of an app that left.
    pub(super) fn forget_quota(&self, app_id: &str) {
        self.inner.quotas.remove(app_id);
        self.inner.quota_counts.forget(app_id);
    }
}
