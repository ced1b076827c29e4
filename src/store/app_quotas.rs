//! App quotas as the store keeps them: [`AppQuotaRecord`] and their bindings to apps
//! ([`QuotaBinding`], [`QuotaApp`]). The counts nodes share are
//! [`QuotaCount`](crate::quota::QuotaCount)s.
//!
//! A quota is bound to many apps, an app to at most one quota; deleting either removes their
//! bindings. Each binding, and each change to a bound quota, is logged for every app it touches,
//! so that gateways learn an app's quota the way they learn its ACL
//! ([`AppCodeChanges::quotas`](super::AppCodeChanges::quotas)).

use super::{App, Timestamp};
use crate::quota::AppQuota;

/// Which of a quota's apps [`Store::quota_apps`](super::Store::quota_apps) lists, as the SQL
/// stores' queries take it: those bound to it or to none (`bound`), named like `app_name`, and
/// which page.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, Clone)]
pub(crate) struct QuotaAppsWanted {
    pub(crate) bound: bool,
    pub(crate) app_name: Option<String>,
    pub(crate) offset: u64,
    pub(crate) limit: u64,
}

/// `quota` as it applies to an app bound to it at `bound_time`: anchored there, in whole
/// seconds, when it has no reset time of its own, so that every node counts the same windows.
/// Every store hands gateways quotas this way.
pub(crate) fn anchored_at_binding(quota: &AppQuota, bound_time: Timestamp) -> AppQuota {
    match quota.anchor() {
        Some(_) => quota.clone(),
        None => {
            let secs = bound_time.unix_nanos().div_euclid(1_000_000_000);
            quota.clone().reset_time(crate::quota::at(secs))
        }
    }
}

/// The most apps one binding call may name.
pub const MAX_APPS_PER_BINDING: usize = 100;

/// An app quota with its name and the facts APIG shows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppQuotaRecord {
    /// Its ID.
    pub id: String,
    /// Its name, unique in its instance.
    pub name: String,
    /// The limit it sets.
    pub quota: AppQuota,
    /// A free description.
    pub remark: String,
    /// When it was created.
    pub create_time: Timestamp,
    /// How many apps are bound to it: filled in by reads, ignored by writes.
    pub bound_app_num: u64,
}

/// One app bound to one quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaBinding {
    /// The quota.
    pub app_quota_id: String,
    /// The app.
    pub app_id: String,
    /// When the app was bound.
    pub bound_time: Timestamp,
}

/// An app listed under a quota: bound to it (with the time of the binding), or bindable (no quota
/// yet, `bound_time` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaApp {
    /// The app.
    pub app: App,
    /// When it was bound to the quota.
    pub bound_time: Option<Timestamp>,
}
