//! App quotas as the store keeps them: [`AppQuotaRecord`], their bindings to apps
//! ([`QuotaBinding`], [`QuotaApp`]) and the counts nodes share ([`QuotaCount`]).
//!
//! A quota is bound to many apps, an app to at most one quota; deleting either removes their
//! bindings. Each binding, and each change to a bound quota, is logged for every app it touches,
//! so that gateways learn an app's quota the way they learn its ACL
//! ([`AppCodeChanges::quotas`](super::AppCodeChanges::quotas)).

use super::{App, Timestamp};
use crate::quota::AppQuota;

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

/// One node's calls of one app in one quota window, added to the shared count by
/// [`Store::add_quota_counts`](super::Store::add_quota_counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaCount {
    /// The app.
    pub app_id: String,
    /// The node's first call of the app, in seconds since the Unix epoch: the anchor of a quota
    /// without a reset time, kept by the store from the first node that reports one.
    pub first_call: i64,
    /// The window's start, in seconds since the Unix epoch.
    pub window_start: i64,
    /// The node's calls in it not yet added.
    pub calls: u64,
}

/// The shared count of one app, as a store holds it after an addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedCount {
    /// The app's first call in the cluster, in seconds since the Unix epoch.
    pub first_call: i64,
    /// The window the count is for, in seconds since the Unix epoch: the newest any node
    /// reported. A node still in an older window learns that it ended.
    pub window_start: i64,
    /// Calls counted in it by every node.
    pub calls: u64,
}

impl SharedCount {
    /// Adds `count` to `self`, the count held so far (`None`: none yet), as every store does: a
    /// newer window replaces the count, an older one leaves it alone.
    pub(crate) fn add(held: Option<Self>, count: &QuotaCount) -> Self {
        match held {
            Some(held) if held.window_start > count.window_start => held,
            Some(held) if held.window_start == count.window_start => Self {
                calls: held.calls.saturating_add(count.calls),
                ..held
            },
            held => Self {
                first_call: held.map_or(count.first_call, |h| h.first_call),
                window_start: count.window_start,
                calls: count.calls,
            },
        }
    }
}
