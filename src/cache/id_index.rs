//! The index by AppCode ID: removing a code whose value is not known (a deletion another node
//! announced, or one read from a store's change log) without a pass over the whole cache.
//!
//! It is a table of the cached codes' digests, each placed by a keyed 64-bit hash of the code's
//! ID: 16 bytes a slot, because the ID itself is not copied. Whoever asks names a digest by a
//! test that reads the code's entry in the cache, and the table asks the cache for an entry's
//! ID hash when it grows. Codes that share an ID (or IDs whose hashes collide) each have a slot.
//!
//! Every cache write holds the journal's lock, so the index and the map change together, one
//! writer at a time. The index's own mutex is therefore never contended; it may be held while
//! the map is read, never while a lock of the map is held first.

use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use super::digest::Digest;

pub(super) struct IdIndex {
    table: Mutex<HashTable<Digest>>,
}

impl IdIndex {
    pub(super) fn new() -> Self {
        Self {
            table: Mutex::new(HashTable::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashTable<Digest>> {
        // A panic cannot leave the table half-changed: hashbrown restores it on unwind.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Indexes `digest` under `hash`, its ID's hash, unless it is there already. `hash_of`
    /// gives the hash of a digest already indexed, for when the table grows.
    pub(super) fn insert(&self, hash: u64, digest: Digest, hash_of: impl Fn(&Digest) -> u64) {
        let mut table = self.table();
        if table.find(hash, |d| *d == digest).is_none() {
            table.insert_unique(hash, digest, hash_of);
        }
    }

    /// Makes room for `additional` more digests at once, so a first load of many codes does
    /// not grow the table (and ask `hash_of` again for every code) step by step.
    pub(super) fn reserve(&self, additional: usize, hash_of: impl Fn(&Digest) -> u64) {
        self.table().reserve(additional, hash_of);
    }

    /// Forgets `digest`, indexed under `hash`.
    pub(super) fn remove(&self, hash: u64, digest: &Digest) {
        if let Ok(slot) = self.table().find_entry(hash, |d| d == digest) {
            slot.remove();
        }
    }

    /// Removes and returns a digest indexed under `hash` that `is_it` accepts.
    pub(super) fn take(&self, hash: u64, is_it: impl FnMut(&Digest) -> bool) -> Option<Digest> {
        let mut table = self.table();
        let slot = table.find_entry(hash, is_it).ok()?;
        Some(slot.remove().0)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table().len()
    }
}
