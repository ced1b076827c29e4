//! The GCRA state: one theoretical arrival time (TAT) per app, an atomic in a [`DashMap`].
//!
//! For a quota with emission interval `T` and tolerance `tau = (burst - 1) * T`, a request at
//! time `now` passes if `max(TAT, now) - now <= tau`, and moves the TAT to `max(TAT, now) + T`.
//! Otherwise it may come back at `TAT - tau`. One compare-and-swap per request; no lock is
//! held beyond the map's shard read lock, and no timer runs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use super::quota::Quota;

/// Entries kept before the first sweep.
const MIN_SWEEP: usize = 1024;

/// Per-app TATs, in nanoseconds since `base`.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// tokio's clock rather than std's, so that tests with paused time are exact.
    base: Instant,
    tats: DashMap<Box<str>, AtomicU64>,
    /// The map size at which a new app triggers a sweep.
    next_sweep: AtomicUsize,
}

impl Limiter {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            tats: DashMap::new(),
            next_sweep: AtomicUsize::new(MIN_SWEEP),
        }
    }

    /// `Ok` if `app` may send a request now under `quota`, else how long until it may.
    pub(crate) fn check(&self, app: &str, quota: &Quota) -> Result<u64, Duration> {
        // A fresh cell holds 0, a TAT long past: it reads as "no request yet".
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(tat) = self.tats.get(app) {
            return gcra(tat.value(), now, quota);
        }
        self.sweep_if_full(now);
        // `entry` rather than `insert`: two first requests of one app at once share one cell.
        let tat = self.tats.entry(app.into()).or_insert(AtomicU64::new(0));
        gcra(tat.value(), now, quota)
    }

    /// Drops the apps whose TAT has passed: their state equals a fresh one, so forgetting them
    /// changes no decision. The map thus holds only apps that sent a request within their
    /// last burst window, and an app deleted from the store leaves it within that window plus
    /// one sweep. Sweeps run when the map doubles, so their cost is amortised over the
    /// insertions (each sweep is linear in the map).
    fn sweep_if_full(&self, now: u64) {
        let limit = self.next_sweep.load(Ordering::Relaxed);
        if self.tats.len() < limit {
            return;
        }
        // One thread sweeps; the others go on (a few more entries meanwhile are harmless).
        if self
            .next_sweep
            .compare_exchange(limit, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.tats.retain(|_, tat| tat.load(Ordering::Acquire) > now);
        let next = (self.tats.len() * 2).max(MIN_SWEEP);
        self.next_sweep.store(next, Ordering::Release);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tats.len()
    }
}

/// How many more requests would pass at once once the arrival time is `due` ahead of now: the
/// `remain` of the debug header.
pub(crate) fn left_after(due: u64, interval: u64, tolerance: u64) -> u64 {
    if due > tolerance {
        return 0;
    }
    (tolerance - due) / interval.max(1) + 1
}

fn gcra(tat: &AtomicU64, now: u64, quota: &Quota) -> Result<u64, Duration> {
    let interval = quota.interval_ns();
    let tolerance = quota.tolerance_ns();
    let mut current = tat.load(Ordering::Acquire);
    loop {
        let start = current.max(now);
        let ahead = start - now;
        if ahead > tolerance {
            return Err(Duration::from_nanos(ahead - tolerance));
        }
        match tat.compare_exchange_weak(
            current,
            start.saturating_add(interval),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                return Ok(left_after(
                    ahead.saturating_add(interval),
                    interval,
                    tolerance,
                ))
            }
            Err(seen) => current = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let q = Quota::per_second(2).unwrap();
        let tat = AtomicU64::new(0);
        let s = 1_000_000_000;
        assert_eq!(gcra(&tat, s, &q), Ok(1));
        assert_eq!(gcra(&tat, s, &q), Ok(0));
        assert_eq!(gcra(&tat, s, &q), Err(Duration::from_millis(500)));
        assert_eq!(
            gcra(&tat, s + 100_000_000, &q),
            Err(Duration::from_millis(400))
        );
        assert_eq!(gcra(&tat, s + 500_000_000, &q), Ok(0));
        assert!(gcra(&tat, s + 500_000_000, &q).is_err());
        // A long pause refills up to the burst, not beyond.
        let later = s + 60 * s;
        assert_eq!(gcra(&tat, later, &q), Ok(1));
        assert_eq!(gcra(&tat, later, &q), Ok(0));
        assert!(gcra(&tat, later, &q).is_err());
    }

    #[test]
    fn burst_one_spaces_requests_evenly() {
        let q = Quota::per_second(10).unwrap().with_burst(1).unwrap();
        let tat = AtomicU64::new(0);
        assert_eq!(gcra(&tat, 0, &q), Ok(0));
        assert_eq!(gcra(&tat, 0, &q), Err(Duration::from_millis(100)));
        assert_eq!(gcra(&tat, 100_000_000, &q), Ok(0));
    }

    #[tokio::test(start_paused = true)]
    async fn sweeps_forget_apps_whose_state_has_expired() {
        let l = Limiter::new();
        let q = Quota::per_second(1).unwrap();
        for i in 0..MIN_SWEEP {
            l.check(&format!("app-{i}"), &q).unwrap();
        }
        assert_eq!(l.len(), MIN_SWEEP);
        // Still within their interval: a sweep keeps them all.
        l.check("one-more", &q).unwrap();
        assert_eq!(l.len(), MIN_SWEEP + 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        // The map doubled its threshold, so fill it to the next sweep.
        let threshold = l.next_sweep.load(Ordering::Relaxed);
        for i in 0..threshold - l.len() {
            l.check(&format!("new-{i}"), &q).unwrap();
        }
        l.check("trigger", &q).unwrap();
        // Only the apps of the last second remain (the old ones expired).
        assert!(l.len() <= threshold - MIN_SWEEP, "{}", l.len());
        assert!(l.tats.get("app-0").is_none());
        assert!(l.tats.get("trigger").is_some());
    }
}
