//! App quotas (APIG's "client quotas"): how many calls each app may make per period.
//!
//! An [`AppQuota`] allows `call_limits` calls per period of `time_interval` [`TimeUnit`]s, in
//! fixed windows anchored at its reset time or at each app's first call (a store anchors a quota
//! without one at the app's binding). The cache holds the
//! quota of each app that has one ([`AppCodeCache::set_app_quota`]); once a request's AppCode is
//! verified (and its app's ACL and authorization passed), the
//! [`AppCodeAuth`](crate::AppCodeAuth) layer counts the call against its app's quota, and
//! refuses a call over it with `405 APIG.0501` and `Retry-After` (the window's end).
//!
//! Where the counts live depends on the layer's setup. With a provider that shares them (a
//! [`StoreProvider`](crate::store::StoreProvider): SQLite for the processes of one machine,
//! PostgreSQL for a cluster), or any [`SharedQuotaCounts`] set with
//! [`AppCodeAuthLayerBuilder::shared_quota_counts`](crate::layer::AppCodeAuthLayerBuilder::shared_quota_counts)
//! (Redis: `throttle::RedisQuotaCounts`, feature `redis`), every node counts in memory, never
//! waiting on the store, and adds its counts to the shared ones at most once a second (at once
//! for an app's first call here, and while the cluster's rate could use up what is left within
//! two seconds); it refuses from the shared total plus its own calls not yet added. A day's count
//! then survives restarts. With
//! [`count_each_quota_call`](crate::layer::AppCodeAuthLayerBuilder::count_each_quota_call)
//! (Redis's "high precision") every call is added to the shared counts before it goes on, and
//! the total they answer decides it: the cluster admits at most the quota, for a round trip per
//! call; a node that knows the window used up refuses without one. Otherwise each node counts
//! its own calls: N nodes allow N times the quota, and a restart starts anew.
//!
//! [`AppCodeCache::set_app_quota`]: crate::AppCodeCache::set_app_quota
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use apig_appcode::quota::{AppQuota, TimeUnit};
//! use apig_appcode::AppCodeCache;
//!
//! let cache = AppCodeCache::new();
//! let quota = AppQuota::new(10_000, TimeUnit::Day, 1).unwrap();
//! cache.set_app_quota("app-1", Arc::new(quota));
//! assert_eq!(cache.app_quota("app-1").unwrap().call_limits(), 10_000);
//! ```

mod counts;
mod policy;
mod shared;

pub(crate) use counts::QuotaCounts;
#[cfg(any(feature = "store", test))]
pub(crate) use policy::at;
#[cfg(any(feature = "admin", feature = "sqlite", feature = "postgres", test))]
pub(crate) use policy::secs;
pub use policy::{AppQuota, QuotaError, TimeUnit};
pub use shared::{QuotaCount, SharedCount, SharedQuotaCounts};
