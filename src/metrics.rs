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

use crate::rejection_kind::RejectionKind;

/// A counter split over cache lines, so threads counting at once do not fight over one line.
/// Each thread adds to its own stripe; a reading sums them.
#[derive(Debug, Default)]
pub(crate) struct Striped([Padded; STRIPES]);

const STRIPES: usize = 8;

/// One stripe on its own 128-byte block (two cache lines, which the adjacent-line prefetcher
/// of x86 fetches together).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl Striped {
    pub(crate) fn add(&self) {
        thread_local! {
            static STRIPE: usize = {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % STRIPES
            };
        }
        let i = STRIPE.with(|s| *s);
        self.0[i].0.fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

/// Live counters, shared by the layer, the cache and the refresher.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Counted on every accepted request, from every thread: striped.
    pub(crate) hits: Striped,
    pub(crate) misses: AtomicU64,
    pub(crate) provider_lookups: AtomicU64,
    /// Misses answered at once because the most lookups a node runs at a time were up.
    pub(crate) lookups_shed: AtomicU64,
    pub(crate) provider_errors: AtomicU64,
    pub(crate) snapshots_loaded: AtomicU64,
    pub(crate) deltas_applied: AtomicU64,
    pub(crate) changes_applied: AtomicU64,
    pub(crate) anti_entropy_repairs: AtomicU64,
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
            hits: self.hits.sum(),
            misses: get(&self.misses),
            provider_lookups: get(&self.provider_lookups),
            lookups_shed: get(&self.lookups_shed),
            provider_errors: get(&self.provider_errors),
            snapshots_loaded: get(&self.snapshots_loaded),
            deltas_applied: get(&self.deltas_applied),
            changes_applied: get(&self.changes_applied),
            anti_entropy_repairs: get(&self.anti_entropy_repairs),
            rejected_missing: r(RejectionKind::Missing),
            rejected_invalid: r(RejectionKind::Invalid),
            rejected_forbidden: r(RejectionKind::Forbidden),
            rejected_unavailable: r(RejectionKind::Unavailable),
            rejected_https_required: r(RejectionKind::HttpsRequired),
            rejected_ip_denied: r(RejectionKind::IpDenied),
            rejected_unknown_client_ip: r(RejectionKind::UnknownClientIp),
            rejected_quota: r(RejectionKind::QuotaExhausted),
            rejected_signature: RejectionKind::ALL
                .into_iter()
                .filter(|k| k.is_signature())
                .map(r)
                .sum(),
            rejected_body: r(RejectionKind::BodyTooLarge)
                + r(RejectionKind::BodyIncomplete)
                + r(RejectionKind::BodyTimeout)
                + r(RejectionKind::BodiesBusy),
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
    /// Misses answered `503` at once, without a lookup, because the most lookups the layer runs
    /// at a time ([`max_lookups`](crate::layer::AppCodeAuthLayerBuilder::max_lookups)) were up.
    pub lookups_shed: u64,
    /// Failed provider calls (snapshots, lookups, change streams).
    pub provider_errors: u64,
    /// Full snapshots applied.
    pub snapshots_loaded: u64,
    /// Refreshes that applied what changed since a revision instead of a full snapshot.
    pub deltas_applied: u64,
    /// Change events applied.
    pub changes_applied: u64,
    /// Full reloads after the anti-entropy check found the cache's codes differ from the
    /// provider's at the same revision.
    pub anti_entropy_repairs: u64,
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
    /// Rejections: the app's ACL refuses the client's address.
    pub rejected_ip_denied: u64,
    /// Rejections: the app has an ACL and the client's address could not be told.
    pub rejected_unknown_client_ip: u64,
    /// Rejections: the app's quota for the period is used up.
    pub rejected_quota: u64,
    /// Rejections of signed requests: no or a malformed `Authorization`, another algorithm, a
    /// missing or stale date, a signature that does not verify.
    pub rejected_signature: u64,
    /// Rejections of signed bodies: too large, broken off, stalled while being hashed, or over
    /// the cap of bodies held at once.
    pub rejected_body: u64,
    /// AppCodes in the cache now.
    pub cache_size: usize,
    /// Time since the cache last caught up with its provider (a full snapshot, or the changes
    /// since its revision); `None` before the first snapshot.
    pub snapshot_age: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counts_add_up_across_threads() {
        let c = std::sync::Arc::new(Striped::default());
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || (0..1000).for_each(|_| c.add()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.sum(), 6000);
    }
}
