//! App quotas (APIG's "client quotas"): how many calls each app may make per period.
//!
//! An [`AppQuota`] allows `call_limits` calls per period of `time_interval` [`TimeUnit`]s, in
//! fixed windows anchored at its reset time or at each app's first call. The cache holds the
//! quota of each app that has one ([`AppCodeCache::set_app_quota`]); once a request's AppCode is
//! verified (and its app's ACL and authorization passed), the
//! [`AppCodeAuth`](crate::AppCodeAuth) layer counts the call against its app's quota, and
//! refuses a call over it with `405 APIG.0501` and `Retry-After` (the window's end).
//!
//! The counts are this node's: N nodes allow an app N times its quota, and a restart starts
//! them anew.
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
pub use shared::{QuotaCount, SharedCount};
