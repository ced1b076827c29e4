//! [`SnapshotLoad`]: a snapshot taken into the cache as the provider reads it, so that loading
//! millions of codes costs the cache's own memory and little more.
//!
//! Each code is digested as it arrives. Into a cache that was never loaded (a node starting),
//! the codes go into the map a chunk at a time, each chunk under the writers' lock for as long
//! as its puts take, so that changes pushed meanwhile (a revocation) are applied between chunks
//! rather than waiting for the whole load; at the end the codes are indexed by ID in one pass,
//! and every change made since the load began is replayed on top, as for any snapshot. Nobody is admitted before that end: the cache is not
//! loaded until then. Into a loaded cache, the digests are gathered first and swapped in at
//! once (new codes added before stale ones are removed), so that requests never see half a
//! snapshot.

use super::digest::Digest;
use super::entry::Entry;
use super::journal::Mutation;
use super::AppCodeCache;
use crate::code::AppCode;
use crate::identity::AppIdentity;

/// Codes put into a cache that was never loaded per hold of the writers' lock.
const CHUNK: usize = 4096;

/// A snapshot on its way into the cache.
pub(crate) struct SnapshotLoad<'a> {
    cache: &'a AppCodeCache,
    /// The journal's epoch when the load began: the changes to replay after it.
    since: u64,
    /// The cache was never loaded: codes go into the map as they come.
    first: bool,
    pending: Vec<(Digest, Entry)>,
    count: usize,
}

impl AppCodeCache {
    /// Begins loading a snapshot whose read starts now.
    pub(crate) fn load_snapshot(&self) -> SnapshotLoad<'_> {
        let first = self.snapshot_age().is_none()
            && self.inner.map.is_empty()
            && self.inner.negative.is_empty();
        SnapshotLoad {
            cache: self,
            since: self.write_epoch(),
            first,
            pending: Vec::new(),
            count: 0,
        }
    }
}

impl SnapshotLoad<'_> {
    /// Takes one code of the snapshot.
    pub(crate) fn add(&mut self, code: AppCode, identity: AppIdentity) {
        self.pending
            .push((self.cache.digest(&code), Entry::new(&identity)));
        self.count += 1;
        if self.first && self.pending.len() >= CHUNK {
            let journal = self.cache.journal();
            for (digest, entry) in self.pending.drain(..) {
                self.cache.put_unindexed(digest, entry);
            }
            drop(journal);
        }
    }

    /// Codes taken so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Ends the load: the snapshot is the cache's content, with every change made since the
    /// load began replayed on top, and the cache is loaded. `false` (and the cache not marked
    /// loaded) if too many changes happened for the journal to replay: load again.
    pub(crate) fn finish(mut self) -> bool {
        if !self.first {
            let pending = std::mem::take(&mut self.pending);
            return self.cache.apply_snapshot_since(pending, self.since);
        }
        let journal = self.cache.journal();
        let Some(replay) = journal.since(self.since) else {
            return false;
        };
        let replay: Vec<Mutation> = replay.cloned().collect();
        for (digest, entry) in self.pending.drain(..) {
            self.cache.put_unindexed(digest, entry);
        }
        self.cache.index_all();
        for change in &replay {
            self.cache.apply(change);
        }
        self.cache.mark_loaded();
        drop(journal);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(n: usize) -> (AppCode, AppIdentity) {
        (
            AppCode::generate(),
            AppIdentity::new(format!("app-{}", n / 5), format!("code-{n}")),
        )
    }

    #[test]
    fn a_first_load_goes_in_by_chunks_and_a_revocation_meanwhile_holds() {
        let cache = AppCodeCache::new();
        let codes: Vec<_> = (0..CHUNK * 2 + 10).map(code_of).collect();
        let mut load = cache.load_snapshot();
        for (code, identity) in codes[..CHUNK + 1].iter().cloned() {
            load.add(code, identity);
        }
        // A chunk is in, but nobody is admitted until the load ends.
        assert_eq!(cache.len(), CHUNK);
        assert_eq!(cache.status(), crate::cache::CacheStatus::Loading);
        // Revoked while the load runs: the snapshot read it before.
        assert!(cache.remove(&codes[3].0));
        let late = &codes[CHUNK + 5].0;
        assert!(!cache.remove(late), "not in yet");
        cache.remove_by_id("code-20");
        for (code, identity) in codes[CHUNK + 1..].iter().cloned() {
            load.add(code, identity);
        }
        assert_eq!(load.count(), codes.len());
        assert!(load.finish());
        assert_eq!(cache.len(), codes.len() - 3);
        assert!(cache.verify(&codes[3].0).is_none());
        assert!(
            cache.verify(late).is_none(),
            "a revocation overtaken by the load"
        );
        assert!(cache.verify(&codes[20].0).is_none());
        assert!(cache.verify(&codes[21].0).is_some());
        assert_ne!(cache.status(), crate::cache::CacheStatus::Loading);
        // Indexed by ID at the end: a code of the first chunk goes by its ID.
        assert_eq!(cache.remove_by_id("code-30"), 1);
        assert!(cache.verify(&codes[30].0).is_none());
    }

    #[test]
    fn a_reload_swaps_the_whole_snapshot_in_at_the_end() {
        let cache = AppCodeCache::new();
        let (a, b) = (code_of(1), code_of(2));
        cache.replace_all([a.clone()]);
        let mut load = cache.load_snapshot();
        load.add(b.0.clone(), b.1.clone());
        assert!(
            cache.verify(&b.0).is_none(),
            "half a snapshot is never seen"
        );
        assert!(cache.verify(&a.0).is_some());
        assert!(load.finish());
        assert!(cache.verify(&a.0).is_none());
        assert!(cache.verify(&b.0).is_some());
    }
}
