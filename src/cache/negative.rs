//! A bounded, time-limited memory of codes a provider said it does not know.

use std::time::Duration;

use tokio::time::Instant;

use dashmap::DashMap;

use super::digest::{Digest, PassThrough};

/// Remembers unknown digests for `ttl`, holding at most `capacity` of them.
///
/// When full, expired entries go first; if none has expired an arbitrary one is dropped, so a
/// flood of distinct random codes costs a fixed amount of memory. Within the bound, each distinct
/// unknown code reaches the provider at most once per `ttl`.
pub(crate) struct NegativeCache {
    map: DashMap<Digest, Instant, PassThrough>,
    capacity: usize,
    ttl: Duration,
}

impl NegativeCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: DashMap::with_hasher(PassThrough),
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
        if self.map.len() >= self.capacity && !self.map.contains_key(&digest) {
            self.map.retain(|_, expiry| *expiry > now);
            while self.map.len() >= self.capacity {
                let Some(victim) = self.map.iter().next().map(|e| *e.key()) else {
                    break;
                };
                self.map.remove(&victim);
            }
        }
        self.map.insert(digest, now + self.ttl);
    }

    pub(crate) fn remove(&self, digest: &Digest) {
        self.map.remove(digest);
    }

    pub(crate) fn clear(&self) {
        self.map.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::digest::DigestKey;
    use super::*;

    #[test]
    fn stays_within_capacity_and_forgets_after_ttl() {
        let key = DigestKey::random();
        let cache = NegativeCache::new(8, Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..100u32 {
            cache.insert(key.digest(&i.to_le_bytes()), now);
            assert!(cache.len() <= 8);
        }
        let d = key.digest(b"last");
        cache.insert(d, now);
        assert!(cache.contains(&d, now + Duration::from_secs(9)));
        assert!(!cache.contains(&d, now + Duration::from_secs(10)));
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let key = DigestKey::random();
        let cache = NegativeCache::new(0, Duration::from_secs(10));
        let d = key.digest(b"x");
        cache.insert(d, Instant::now());
        assert!(!cache.contains(&d, Instant::now()));
    }
}
