//! [`QuotaCount`] and [`SharedCount`]: what nodes add to, and read back from, the counts they
//! share, and [`SharedQuotaCounts`]: where they share them (a store, through its provider, or
//! Redis).

use crate::boxed::{BoxError, BoxFuture};

/// Where the nodes of a cluster share their app quota counts: each node adds its calls in
/// batches and reads back every node's total (see [`quota`](crate::quota)).
///
/// [`AppCodeAuthLayerBuilder::shared_quota_counts`](crate::layer::AppCodeAuthLayerBuilder::shared_quota_counts)
/// sets one; without it, a provider that [shares counts](crate::provider::AppCodeProvider::shares_quota_counts)
/// is used.
pub trait SharedQuotaCounts: Send + Sync + 'static {
    /// Adds `counts` to the shared ones by [`SharedCount::add`]'s rule, atomically, and returns
    /// each app's count after the addition, in the same order.
    fn add(&self, counts: Vec<QuotaCount>) -> BoxFuture<'_, Result<Vec<SharedCount>, BoxError>>;
}

/// One node's calls of one app in one quota window, added to the shared count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaCount {
    /// The app.
    pub app_id: String,
    /// The node's first call of the app, in seconds since the Unix epoch: the anchor of a quota
    /// without a reset time, kept from the first node that reports one.
    pub first_call: i64,
    /// The window's start, in seconds since the Unix epoch.
    pub window_start: i64,
    /// The window's end, in seconds since the Unix epoch: a shared count may be forgotten after.
    pub window_end: i64,
    /// The node's calls in it not yet added.
    pub calls: u64,
}

/// The shared count of one app after an addition.
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
    /// Adds `count` to `held`, the count held so far (`None`: none yet): a newer window
    /// replaces the count, the same window adds to it, an older one leaves it alone. The first
    /// `first_call` stays. Every store follows this rule.
    ///
    /// ```
    /// use apig_appcode::quota::{QuotaCount, SharedCount};
    ///
    /// let count = |window_start, calls| QuotaCount {
    ///     app_id: "a".into(), first_call: 0, window_start, window_end: window_start + 60, calls,
    /// };
    /// let held = SharedCount::add(None, &count(60, 2));
    /// assert_eq!(SharedCount::add(Some(held), &count(60, 3)).calls, 5);
    /// assert_eq!(SharedCount::add(Some(held), &count(0, 3)), held);
    /// assert_eq!(SharedCount::add(Some(held), &count(120, 1)).calls, 1);
    /// ```
    pub fn add(held: Option<Self>, count: &QuotaCount) -> Self {
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
