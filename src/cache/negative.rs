//! A bounded, time-limited memory of codes a provider said it does not know.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use dashmap::DashMap;

use super::digest::{Digest, PassThrough};

/// Remembers unknown digests for `ttl`, holding at most `capacity` of them.
///
/// Every entry lives for the same `ttl`, so the order of insertion is the order of expiry: a
/// queue of insertions, oldest first, finds what to drop in O(1). When full, the oldest entry
/// goes, expired or not, so a flood of distinct random codes costs a fixed amount of memory and
/// a fixed amount of work per code. Within the bound, each distinct unknown code reaches the
/// provider at most once per `ttl`.
pub(crate) struct NegativeCache {
    /// Digest → expiry. The expiry also names the insertion, so that a queue entry left by an
    /// earlier insertion of the same digest cannot remove a later one.
    map: DashMap<Digest, Instant, PassThrough>,
    /// Insertions, oldest first; some may be stale (removed or inserted again since).
    order: Mutex<VecDeque<(Digest, Instant)>>,
    capacity: usize,
    ttl: Duration,
}

impl NegativeCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: DashMap::with_hasher(PassThrough),
            order: Mutex::new(VecDeque::new()),
            capacity,
            ttl,
        }
    }

    /// Whether `digest` is known to be unknown right now.
    pub(crate) fn contains(&self, digest: &Digest, now: Instant) -> bool {
        matches!(self.map.get(digest), Some(expiry) if *expiry > now)
    }

    pub(crate) fn insert(&self, digest: Digest, now: Instant) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let expiry = now + self.ttl;
        let mut order = self.order.lock().unwrap_or_else(PoisonError::into_inner);
        // Expired entries first, then the oldest while there is no room: each pop is O(1).
        while let Some(&(oldest, at)) = order.front() {
            if at > now && order.len() < self.capacity {
                break;
            }
            order.pop_front();
            self.map.remove_if(&oldest, |_, current| *current == at);
        }
        order.push_back((digest, expiry));
        self.map.insert(digest, expiry);
    }

    pub(crate) fn remove(&self, digest: &Digest) {
        // Its queue entry stays until it reaches the front; the map no longer matches it.
        self.map.remove(digest);
    }

    /// Whether nothing is remembered.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::super::digest::DigestKey;
    use super::*;

    /// The digest of code `i`, all under one key.
    fn digest(i: u32) -> Digest {
        static KEY: LazyLock<DigestKey> = LazyLock::new(DigestKey::random);
        KEY.digest(&i.to_le_bytes())
    }

    #[test]
    fn stays_within_capacity_and_forgets_after_ttl() {
        let cache = NegativeCache::new(8, Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..100 {
            cache.insert(digest(i), now);
            assert!(cache.len() <= 8);
        }
        let d = digest(100);
        cache.insert(d, now);
        assert!(cache.contains(&d, now + Duration::from_secs(9)));
        assert!(!cache.contains(&d, now + Duration::from_secs(10)));
    }

    #[test]
    fn the_oldest_goes_first_and_a_stale_insertion_never_removes_a_newer_one() {
        let cache = NegativeCache::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        cache.insert(digest(1), at(0));
        cache.insert(digest(2), at(1));
        // 1 again while it is still there: its first insertion, at the front, is now stale.
        cache.insert(digest(1), at(2));
        // Full: the stale insertion of 1 is popped, and must not take the newer one with it.
        cache.insert(digest(3), at(3));
        assert!(
            cache.contains(&digest(1), at(4)),
            "the newer insertion of 1 survives"
        );
        assert!(cache.contains(&digest(2), at(4)) && cache.contains(&digest(3), at(4)));
        // Full again: now the oldest live entry, 2, goes.
        cache.insert(digest(4), at(5));
        assert!(!cache.contains(&digest(2), at(6)));
        assert!(cache.contains(&digest(1), at(6)) && cache.contains(&digest(4), at(6)));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_dropped() {
        let cache = NegativeCache::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        cache.insert(digest(1), t0);
        cache.insert(digest(2), t0 + Duration::from_millis(900));
        // At 1.5 s the first has expired: it goes, the second stays.
        cache.insert(digest(3), t0 + Duration::from_millis(1500));
        assert!(cache.contains(&digest(2), t0 + Duration::from_millis(1600)));
        assert!(cache.contains(&digest(3), t0 + Duration::from_millis(1600)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_flood_of_distinct_codes_keeps_both_structures_bounded() {
        let cache = NegativeCache::new(100, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..10_000 {
            let d = digest(i);
            cache.insert(d, now);
            if i % 3 == 0 {
                cache.remove(&d);
            }
        }
        assert!(cache.len() <= 100);
        assert!(cache.order.lock().unwrap().len() <= 100);
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let cache = NegativeCache::new(0, Duration::from_secs(10));
        let d = digest(0);
        cache.insert(d, Instant::now());
        assert!(!cache.contains(&d, Instant::now()));
    }
}
