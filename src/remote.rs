//! [`Breaker`]: how a node asks a shared store (Redis, say) on the request path without letting
//! a store in trouble slow every request, and how long the store takes to answer.
//!
//! A failed or late answer opens the breaker: for [`STORE_RETRY`] the node counts on its own,
//! without asking, so that a store that is down costs no deadline per request; then one
//! request probes the store, and its answer closes the breaker or keeps it open. The throttle's
//! rate limits and the per-call app quota counts each have one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long a node counts on its own after the store failed, before it asks again.
pub const STORE_RETRY: Duration = Duration::from_secs(1);

/// Upper bounds of the store latency buckets: 50 µs doubling to about 1.6 s.
pub(crate) const STORE_LATENCY_BOUNDS_NS: [u64; 16] = {
    let mut b = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        b[i] = 50_000 << i;
        i += 1;
    }
    b
};

/// A reading of a store's round-trip latencies.
#[cfg_attr(not(feature = "gateway"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreLatency {
    /// Per bucket of [`STORE_LATENCY_BOUNDS_NS`] (not cumulative), then above them all.
    pub(crate) buckets: [u64; STORE_LATENCY_BOUNDS_NS.len() + 1],
    pub(crate) sum_ns: u64,
}

/// The breaker of one store, with its fallback count and latency histogram.
pub(crate) struct Breaker {
    base: Instant,
    /// 0 while the store is asked; else the time (ns since `base`) from which one request may
    /// probe it.
    open_until: AtomicU64,
    fallbacks: AtomicU64,
    /// Per bucket (not cumulative); the last is above every bound.
    latency: [AtomicU64; STORE_LATENCY_BOUNDS_NS.len() + 1],
    latency_sum_ns: AtomicU64,
}

impl Breaker {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            open_until: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            latency: Default::default(),
            latency_sum_ns: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        // Counted from 1: 0 means "closed".
        u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Whether this request may ask the store: always while the breaker is closed; while it is
    /// open, only the one request that finds the retry time passed (it probes). A request not
    /// let through is a fallback, counted.
    pub(crate) fn may_ask(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ns();
        // Only the request that moves the deadline forward probes; the others stay local.
        let probe = now >= until
            && self
                .open_until
                .compare_exchange(until, now + retry_ns(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        if !probe {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        probe
    }

    /// The store answered after `took`: the breaker closes. `true` if it was open (the caller
    /// says once that the store is back).
    pub(crate) fn answered(&self, took: Duration) -> bool {
        self.record_latency(took);
        self.open_until.swap(0, Ordering::AcqRel) != 0
    }

    /// The store failed or was late after `took`: the request is a fallback, and the breaker
    /// opens for [`STORE_RETRY`]. `true` if it was closed (the caller warns once an outage).
    pub(crate) fn failed(&self, took: Duration) -> bool {
        self.record_latency(took);
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let until = self.now_ns() + retry_ns();
        self.open_until.fetch_max(until, Ordering::AcqRel) == 0
    }

    fn record_latency(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = STORE_LATENCY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(STORE_LATENCY_BOUNDS_NS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Requests answered without the store: it failed, was late, or was left alone while it
    /// recovers.
    pub(crate) fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn latency(&self) -> StoreLatency {
        StoreLatency {
            buckets: std::array::from_fn(|i| self.latency[i].load(Ordering::Relaxed)),
            sum_ns: self.latency_sum_ns.load(Ordering::Relaxed),
        }
    }
}

fn retry_ns() -> u64 {
    STORE_RETRY.as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failure_leaves_the_store_alone_for_a_second_then_one_request_probes() {
        let breaker = Breaker::new();
        assert!(breaker.may_ask());
        assert!(breaker.failed(Duration::from_millis(50)), "opens");
        assert!(!breaker.failed(Duration::from_millis(50)), "already open");
        assert!(!breaker.may_ask());
        assert_eq!(breaker.fallbacks(), 3);
        tokio::time::advance(STORE_RETRY).await;
        assert!(
            breaker.may_ask(),
            "the first request after the pause probes"
        );
        assert!(!breaker.may_ask(), "the others wait for its answer");
        assert!(breaker.answered(Duration::from_micros(100)), "closes");
        assert!(breaker.may_ask());
        assert!(!breaker.answered(Duration::from_micros(100)));
        let latency = breaker.latency();
        assert_eq!(latency.buckets.iter().sum::<u64>(), 4);
        assert_eq!(latency.buckets[STORE_LATENCY_BOUNDS_NS.len()], 0);
        assert_eq!(latency.sum_ns, 100_200_000);
    }
}
