//! The index by AppCode ID: removing a code whose value is not known (a deletion another node
//! announced, or one read from a store's change log) without a pass over the whole cache.
//!
//! It is a table of the cached codes' digests, each placed by a keyed 64-bit hash of the code's
//! ID: 16 bytes a slot, because the ID itself is not copied. Whoever asks names a digest by a
//! test that reads the code's entry in the cache, and the table asks the cache for an entry's
//! ID hash when it grows. Codes that share an ID (or IDs whose hashes collide) each have a slot.
//!
//! The table is split into [`SHARDS`] parts by bits of the hash that the parts' own tables do
//! not use, so that a first load of millions of codes is indexed by every core at once.
//!
//! Every cache write holds the journal's lock, so the index and the map change together, one
//! writer at a time. The shards' own mutexes are therefore contended only by that first load's
//! indexing threads; one may be held while the map is read, never while a lock of the map is
//! held first.

use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use super::digest::Digest;

/// Parts of the index. A power of two, chosen by bits 32.. of the hash: hashbrown places a slot
/// by the low bits and tags it with the top seven, so these leave both intact within a part.
const SHARDS: usize = 64;

/// The part of the index for `hash`.
fn shard_of(hash: u64) -> usize {
    // The shard count is a power of two below 2^32: the cast keeps the bits chosen.
    (hash >> 32) as usize & (SHARDS - 1)
}

pub(super) struct IdIndex {
    shards: Box<[Mutex<HashTable<Digest>>]>,
}

impl IdIndex {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
        }
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, HashTable<Digest>> {
        self.lock(shard_of(hash))
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, HashTable<Digest>> {
        // A panic cannot leave a table half-changed: hashbrown restores it on unwind.
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Indexes `digest` under `hash`, its ID's hash, unless it is there already. `hash_of`
    /// gives the hash of a digest already indexed, for when the table grows.
    pub(super) fn insert(&self, hash: u64, digest: Digest, hash_of: impl Fn(&Digest) -> u64) {
        let mut table = self.shard(hash);
        if table.find(hash, |d| *d == digest).is_none() {
            table.insert_unique(hash, digest, hash_of);
        }
    }

    /// Indexes every digest of `entries` under its hash, as [`insert`](Self::insert) does one.
    ///
    /// For millions of digests: they are put in the order of their places in the tables
    /// (sorted by the low bits of their hashes, which hashbrown places by), so the writes run
    /// through each table's memory once instead of missing the cache at every digest. Callers
    /// on several threads, the `lane`th of `lanes`, each begin at another part, and meet on
    /// none of the parts' mutexes until they wrap around.
    pub(super) fn insert_all(
        &self,
        mut entries: Vec<(u64, Digest)>,
        (lane, lanes): (usize, usize),
        hash_of: impl Fn(&Digest) -> u64,
    ) {
        // hashbrown fills a table to 7/8 of its slots, a power of two: the slots of a table of
        // `capacity`, the mask of a slot's place. Were it wrong, the order would cost speed,
        // never a digest.
        let capacity = self.lock(0).capacity().max(1);
        let places = (capacity * 8 / 7).next_power_of_two() as u64;
        let start = lane * SHARDS / lanes.max(1) % SHARDS;
        let order = |hash: u64| {
            (
                (shard_of(hash) + SHARDS - start) % SHARDS,
                hash & (places - 1),
            )
        };
        entries.sort_unstable_by_key(|(hash, _)| order(*hash));
        let mut rest = &entries[..];
        while let Some((first, _)) = rest.first() {
            let shard = shard_of(*first);
            let run = rest
                .iter()
                .take_while(|(h, _)| shard_of(*h) == shard)
                .count();
            let mut table = self.lock(shard);
            for (hash, digest) in &rest[..run] {
                if table.find(*hash, |d| d == digest).is_none() {
                    table.insert_unique(*hash, *digest, &hash_of);
                }
            }
            drop(table);
            rest = &rest[run..];
        }
    }

    /// Makes room for `additional` more digests at once, so a first load of many codes does
    /// not grow the tables (and ask `hash_of` again for every code) step by step. Hashes spread
    /// evenly, so each part gets its share and a margin far above the spread of shares.
    pub(super) fn reserve(&self, additional: usize, hash_of: impl Fn(&Digest) -> u64) {
        let share = additional / SHARDS;
        let each = share + share / 16 + 16;
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(each, &hash_of);
        }
    }

    /// Forgets `digest`, indexed under `hash`.
    pub(super) fn remove(&self, hash: u64, digest: &Digest) {
        if let Ok(slot) = self.shard(hash).find_entry(hash, |d| d == digest) {
            slot.remove();
        }
    }

    /// Removes and returns a digest indexed under `hash` that `is_it` accepts.
    pub(super) fn take(&self, hash: u64, is_it: impl FnMut(&Digest) -> bool) -> Option<Digest> {
        let mut table = self.shard(hash);
        let slot = table.find_entry(hash, is_it).ok()?;
        Some(slot.remove().0)
    }

    /// Forgets every digest, and the room the tables took.
    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            *shard.lock().unwrap_or_else(|p| p.into_inner()) = HashTable::new();
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}
