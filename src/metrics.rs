//! Counters of what the layer and its cache did, readable at any time.
//!
//! # Example
//!
//! ```
//! use apig_appcode::AppCodeCache;
//!
//! let cache = AppCodeCache::new();
//! let m = cache.metrics();
//! assert_eq!(m.hits, 0);
//! assert_eq!(m.cache_size, 0);
//! assert!(m.snapshot_age.is_none());
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::layer::RejectionKind;

/// Live counters, shared by the layer, the cache and the refresher.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) provider_lookups: AtomicU64,
    pub(crate) provider_errors: AtomicU64,
    pub(crate) snapshots_loaded: AtomicU64,
    pub(crate) changes_applied: AtomicU64,
    rejected: [AtomicU64; RejectionKind::COUNT],
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, kind: RejectionKind) {
        Self::add(&self.rejected[kind as usize]);
    }

    pub(crate) fn read(&self, cache_size: usize, snapshot_age: Option<Duration>) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let r = |k: RejectionKind| get(&self.rejected[k as usize]);
        Metrics {
            hits: get(&self.hits),
            misses: get(&self.misses),
            provider_lookups: get(&self.provider_lookups),
            provider_errors: get(&self.provider_errors),
            snapshots_loaded: get(&self.snapshots_loaded),
            changes_applied: get(&self.changes_applied),
            rejected_missing: r(RejectionKind::Missing),
            rejected_invalid: r(RejectionKind::Invalid),
            rejected_forbidden: r(RejectionKind::Forbidden),
            rejected_unavailable: r(RejectionKind::Unavailable),
            rejected_https_required: r(RejectionKind::HttpsRequired),
            cache_size,
            snapshot_age,
        }
    }
}

/// A reading of the counters. Counts are totals since the cache was created.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Requests whose AppCode was found in the cache.
    pub hits: u64,
    /// Requests with a well-formed AppCode that the cache did not hold.
    pub misses: u64,
    /// Point lookups sent to the provider on a miss.
    pub provider_lookups: u64,
    /// Failed provider calls (snapshots, lookups, change streams).
    pub provider_errors: u64,
    /// Full snapshots applied.
    pub snapshots_loaded: u64,
    /// Change events applied.
    pub changes_applied: u64,
    /// Rejections: no AppCode header.
    pub rejected_missing: u64,
    /// Rejections: malformed, repeated or unknown AppCode.
    pub rejected_invalid: u64,
    /// Rejections: the app may not call this route.
    pub rejected_forbidden: u64,
    /// Rejections: no usable snapshot (not loaded yet, or too old).
    pub rejected_unavailable: u64,
    /// Rejections: plain HTTP where HTTPS is required.
    pub rejected_https_required: u64,
    /// AppCodes in the cache now.
    pub cache_size: usize,
    /// Time since the last full snapshot was applied; `None` before the first.
    pub snapshot_age: Option<Duration>,
}
