//! The index by AppCode ID: removing a code whose value is not known (a deletion another node
//! announced, or one read from a store's change log) without a pass over the whole cache.
//!
//! It maps a keyed 64-bit hash of each cached code's ID to the code's digest: 24 bytes a slot,
//! paid for by the digest's halving (see [`Digest`]). Every cache write holds the journal's lock,
//! so the index and the map change together, one writer at a time; neither map's lock is ever
//! taken while the other's is held.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use super::digest::{Digest, PassThrough};

pub(super) struct IdIndex {
    map: DashMap<u64, Digest, PassThrough>,
    /// Codes the index could not take because their ID's hash was held by another cached code
    /// (two codes with one ID, or two IDs whose hashes collide). While there are any, a removal
    /// by ID also looks through the whole cache, so no code escapes it.
    unindexed: AtomicUsize,
}

impl IdIndex {
    pub(super) fn new() -> Self {
        Self {
            map: DashMap::with_hasher(PassThrough),
            unindexed: AtomicUsize::new(0),
        }
    }

    /// Indexes `digest` under `key`, unless `key` belongs to another digest for which
    /// `still_holds` (asked without any lock of the index held) says it is still cached with an
    /// ID of this hash.
    pub(super) fn insert(&self, key: u64, digest: Digest, still_holds: impl Fn(&Digest) -> bool) {
        let other = self.map.get(&key).map(|d| *d);
        match other {
            Some(other) if other == digest => {}
            Some(other) if still_holds(&other) => {
                self.unindexed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.map.insert(key, digest);
            }
        }
    }

    /// Forgets `key` if it names `digest`.
    pub(super) fn remove(&self, key: u64, digest: &Digest) {
        self.map.remove_if(&key, |_, d| d == digest);
    }

    /// The digest indexed under `key`.
    pub(super) fn find(&self, key: u64) -> Option<Digest> {
        self.map.get(&key).map(|d| *d)
    }

    /// Whether some cached code is not in the index (see the field).
    pub(super) fn is_partial(&self) -> bool {
        self.unindexed.load(Ordering::Relaxed) > 0
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
