//! [`SnapshotLoad`]: a snapshot taken into the cache as the provider reads it, so that loading
//! millions of codes costs the cache's own memory and little more.
//!
//! Into a cache that was never loaded (a node starting), the codes go into the map as they
//! come, a chunk at a time, by one thread per core ([`Loaders`]) while the provider's task reads
//! and decodes the next rows: digesting a code and writing it into a map of millions are most
//! of a load's work, and a node starting has nothing else to do with its cores. These writes
//! do not wait on the writers' lock, so changes pushed meanwhile (a revocation) are applied at
//! once. At the end the codes are indexed by ID in one pass (on every core too), and every
//! change made since the load began is replayed on top, as for any snapshot. Nobody is admitted
//! before that end: the cache is not loaded until then. A first load given up half-way takes
//! back what it put, so the next one starts from an empty cache again.
//!
//! Into a loaded cache, the digests are gathered first and swapped in at once (new codes added
//! before stale ones are removed), so that requests never see half a snapshot.
//!
//! The loading threads are plain threads rather than the runtime's: they run for seconds of
//! CPU each, which would hold up the tasks of a runtime worker, and a channel of bounded
//! length in `std` is all they need.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use super::digest::Digest;
use super::entry::Entry;
use super::journal::Mutation;
use super::AppCodeCache;
use crate::code::AppCode;
use crate::identity::AppIdentity;

/// Codes handed to a loading thread at once, and put into the map per chunk.
const CHUNK: usize = 4096;

/// Chunks waiting for each loading thread: enough to keep it busy while the reader decodes
/// the next, few enough that a reader faster than the threads waits rather than piles up.
const QUEUED: usize = 2;

/// A snapshot on its way into the cache.
pub(crate) struct SnapshotLoad<'a> {
    cache: &'a AppCodeCache,
    /// The journal's epoch when the load began: the changes to replay after it.
    since: u64,
    /// The cache was never loaded: codes go into the map as they come, by these threads.
    first: Option<Loaders>,
    /// Threads a first load may use.
    threads: usize,
    /// A reload's digested codes, swapped in at its end.
    pending: Vec<(Digest, Entry)>,
    count: usize,
}

impl AppCodeCache {
    /// Begins loading a snapshot whose read starts now.
    pub(crate) fn load_snapshot(&self) -> SnapshotLoad<'_> {
        self.load_snapshot_on(threads())
    }

    /// Begins loading a snapshot, a first load on up to `threads` threads.
    fn load_snapshot_on(&self, threads: usize) -> SnapshotLoad<'_> {
        let first = self.snapshot_age().is_none()
            && self.inner.map.is_empty()
            && self.inner.negative.is_empty();
        SnapshotLoad {
            cache: self,
            since: self.write_epoch(),
            first: first.then(|| Loaders::start(self, threads)),
            threads,
            pending: Vec::new(),
            count: 0,
        }
    }
}

/// Threads for a first load: one per core. The reading task decodes rows on its own thread
/// meanwhile; the digests and the map's writes, most of a load's work, are spread over these.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl SnapshotLoad<'_> {
    /// Takes one code of the snapshot.
    pub(crate) fn add(&mut self, code: AppCode, identity: AppIdentity) {
        self.count += 1;
        match &mut self.first {
            Some(loaders) => loaders.add(code, identity),
            None => self
                .pending
                .push((self.cache.digest(&code), Entry::new(&identity))),
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
        let Some(mut loaders) = self.first.take() else {
            let pending = std::mem::take(&mut self.pending);
            return self.cache.apply_snapshot_since(pending, self.since);
        };
        loaders.flush();
        let complete = loaders.join();
        let journal = self.cache.journal();
        let replay: Option<Vec<Mutation>> = journal
            .since(self.since)
            .filter(|_| complete)
            .map(|changes| changes.cloned().collect());
        let Some(replay) = replay else {
            self.cache.forget_first_load();
            return false;
        };
        self.cache.index_all(self.threads);
        for change in &replay {
            self.cache.apply(change);
        }
        self.cache.mark_loaded();
        drop(journal);
        true
    }
}

impl Drop for SnapshotLoad<'_> {
    /// A first load given up half-way (the provider failed, the read stalled) takes back what
    /// it put: those codes are not indexed by ID, and the next load would keep them so.
    fn drop(&mut self) {
        if let Some(mut loaders) = self.first.take() {
            loaders.join();
            let _journal = self.cache.journal();
            self.cache.forget_first_load();
        }
    }
}

/// Codes of a snapshot, handed to a loading thread together.
type Chunk = Vec<(AppCode, AppIdentity)>;

/// The threads putting a first load's codes into the map, each fed chunks in turn. Without
/// threads (one core, or none to be had), the reading task puts each chunk itself.
struct Loaders {
    cache: AppCodeCache,
    chunk: Chunk,
    lanes: Vec<(SyncSender<Chunk>, JoinHandle<()>)>,
    next: usize,
}

impl Loaders {
    fn start(cache: &AppCodeCache, threads: usize) -> Self {
        let mut lanes = Vec::new();
        // One thread would only move the work off the reader's: it puts the chunks itself.
        let wanted = if threads < 2 { 0 } else { threads.min(64) };
        for _ in 0..wanted {
            let (send, receive) = sync_channel::<Chunk>(QUEUED);
            let cache = cache.clone();
            let spawned = std::thread::Builder::new()
                .name("apig-cache-load".into())
                .spawn(move || {
                    for chunk in receive {
                        put_chunk(&cache, chunk);
                    }
                });
            match spawned {
                Ok(handle) => lanes.push((send, handle)),
                Err(_) => break,
            }
        }
        Self {
            cache: cache.clone(),
            chunk: Vec::with_capacity(CHUNK),
            lanes,
            next: 0,
        }
    }

    fn add(&mut self, code: AppCode, identity: AppIdentity) {
        self.chunk.push((code, identity));
        if self.chunk.len() >= CHUNK {
            self.flush();
        }
    }

    /// Hands the codes taken since the last chunk on. Blocks while the next thread has its
    /// fill of chunks waiting: the reader then goes at the threads' pace.
    fn flush(&mut self) {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        if chunk.is_empty() {
            return;
        }
        if self.lanes.is_empty() {
            return put_chunk(&self.cache, chunk);
        }
        self.next = (self.next + 1) % self.lanes.len();
        if let Err(returned) = self.lanes[self.next].0.send(chunk) {
            // Its thread is gone (a panic): this one puts the chunk.
            put_chunk(&self.cache, returned.0);
        }
    }

    /// Waits until every chunk handed on is in the map; `false` if a thread panicked, and
    /// the chunk it held with it.
    fn join(&mut self) -> bool {
        let mut complete = true;
        for (send, handle) in self.lanes.drain(..) {
            drop(send);
            complete &= handle.join().is_ok();
        }
        complete
    }
}

fn put_chunk(cache: &AppCodeCache, chunk: Chunk) {
    cache.put_chunk_unindexed(
        chunk
            .into_iter()
            .map(|(code, identity)| (cache.digest(&code), Entry::new(&identity))),
    );
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
        // On the reader's thread, so that what is in the map at each step is known.
        let mut load = cache.load_snapshot_on(1);
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

    /// Every code of `codes` is cached, and can be removed by its ID alone.
    fn assert_indexed(cache: &AppCodeCache, codes: &[(AppCode, AppIdentity)]) {
        assert_eq!(cache.len(), codes.len());
        assert_eq!(cache.inner.ids.len(), codes.len());
        for (code, identity) in codes.iter().step_by(997) {
            assert!(cache.verify(code).is_some());
            assert_eq!(cache.remove_by_id(identity.app_code_id()), 1);
            assert!(cache.verify(code).is_none());
        }
    }

    #[test]
    fn a_first_load_on_several_threads_holds_every_code_indexed_and_every_revocation() {
        let cache = AppCodeCache::new();
        // Past the size from which the index is built on several threads too.
        let codes: Vec<_> = (0..super::super::PARALLEL_INDEX_FROM + CHUNK + 7)
            .map(code_of)
            .collect();
        let mut load = cache.load_snapshot_on(3);
        let (revoked, revoked_by_id) = (codes[10].0.clone(), codes.len() - 3);
        for (n, (code, identity)) in codes.iter().cloned().enumerate() {
            load.add(code, identity);
            if n == CHUNK * 5 {
                // Whether or not a thread has put them yet, the load must not bring them back.
                cache.remove(&revoked);
                cache.remove_by_id(&format!("code-{revoked_by_id}"));
            }
        }
        assert_eq!(cache.status(), crate::cache::CacheStatus::Loading);
        assert!(load.finish());
        assert!(cache.verify(&revoked).is_none());
        assert!(cache.verify(&codes[revoked_by_id].0).is_none());
        let kept: Vec<_> = codes
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != 10 && *n != revoked_by_id)
            .map(|(_, c)| c.clone())
            .collect();
        let mut expected = crate::provider::CodesDigest::default();
        for (_, identity) in &kept {
            expected.add(identity.app_id(), identity.app_code_id());
        }
        assert_eq!(cache.codes_digest(), expected);
        assert_indexed(&cache, &kept);
    }

    #[test]
    fn a_first_load_given_up_half_way_leaves_the_next_one_a_whole_index() {
        let cache = AppCodeCache::new();
        let codes: Vec<_> = (0..CHUNK * 3).map(code_of).collect();
        let mut load = cache.load_snapshot_on(2);
        for (code, identity) in codes[..CHUNK * 2 + 1].iter().cloned() {
            load.add(code, identity);
        }
        drop(load);
        assert_eq!(cache.len(), 0, "what the given-up load put is taken back");
        assert_eq!(cache.codes_digest(), Default::default());
        let mut load = cache.load_snapshot_on(2);
        for (code, identity) in codes.iter().cloned() {
            load.add(code, identity);
        }
        assert!(load.finish());
        // Had the first codes stayed, unindexed, a deletion by ID would miss them.
        assert_indexed(&cache, &codes);
    }
}
