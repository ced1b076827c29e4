//! The concurrent AppCode cache the layer verifies against.
//!
//! # Example
//!
//! ```
//! use apig_appcode::{AppCode, AppCodeCache, AppIdentity};
//!
//! let cache = AppCodeCache::new();
//! let code = AppCode::generate();
//! cache.upsert(&code, AppIdentity::new("app-1", "code-1"));
//! assert_eq!(cache.verify(&code).unwrap().app_id(), "app-1");
//! assert!(cache.remove(&code));
//! assert!(cache.verify(&code).is_none());
//! ```
//!
//! # Concurrency
//!
//! Reads never block on other reads. A write locks one of the map's shards for the time of one
//! insert or remove; [`AppCodeCache::replace_all`] adds the new set before it removes what the new
//! set lacks, so a reader never sees a moment where a code valid in both sets is missing.
//! No lock is held across an `.await`.
//!
//! # What feeds it
//!
//! - `refresher.rs`: the task that loads snapshots, catches up by revision (`delta.rs`) and
//!   applies a provider's change events;
//! - `read_through.rs`: what a request's code stands for, asking the provider after a miss, one
//!   lookup per code at a time (`flight.rs`), checked against the journal of direct changes
//!   (`journal.rs`) before it is written; it owns the refresher;
//! - `negative.rs`: the bounded memory of codes a provider did not know.

mod acls;
mod app_keys;
mod by_app;
mod delta;
mod digest;
mod entry;
mod flight;
mod id_index;
mod journal;
mod negative;
mod quota_calls;
mod quota_flush;
mod quotas;
mod read_through;
pub(crate) mod refresher;
mod snapshot_load;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::acl::AppAcl;
use crate::code::{self, AppCode};
use crate::identity::AppIdentity;
use crate::metrics::{Counters, Metrics};
use crate::provider::CodesDigest;
use crate::quota::{AppQuota, QuotaCounts};
use app_keys::KeyIndex;
use by_app::ByApp;
pub(crate) use digest::Digest;
use digest::{DigestKey, PassThrough};
use entry::{Entry, StoredId};
use flight::Flights;
pub(crate) use flight::Outcome;
use id_index::IdIndex;
use journal::{Journal, Mutation};
use negative::NegativeCache;
pub(crate) use quota_calls::{QuotaAsking, QuotaCharge};
pub(crate) use quotas::Charge;
pub(crate) use read_through::{Answer, Asking, LookupBounds, ReadThrough};

/// Whether the cache may be used to admit requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// No snapshot has been loaded yet: every request is refused with 503.
    Loading,
    /// The snapshot is within the configured maximum staleness.
    Fresh,
    /// The snapshot is older than the maximum staleness, and the layer keeps serving it.
    StaleServing,
    /// The snapshot is older than the maximum staleness: every request is refused with 503.
    StaleClosed,
}

impl CacheStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Fresh,
            2 => Self::StaleServing,
            3 => Self::StaleClosed,
            _ => Self::Loading,
        }
    }

    /// Whether requests may be admitted in this state.
    pub fn admits(self) -> bool {
        matches!(self, Self::Fresh | Self::StaleServing)
    }
}

/// The result of looking a raw header value up.
enum Lookup {
    Hit(AppIdentity),
    Miss(Digest),
    Malformed,
}

/// Caches of fewer codes are indexed on one thread: starting threads would cost more.
const PARALLEL_INDEX_FROM: usize = 1 << 16;

/// A concurrent map from keyed digests of AppCodes to the identities they stand for.
///
/// Cloning is cheap and every clone sees the same entries. See the [module docs](self).
#[derive(Clone)]
pub struct AppCodeCache {
    inner: Arc<Inner>,
}

struct Inner {
    key: DigestKey,
    map: DashMap<Digest, Entry, PassThrough>,
    /// The cached codes by ID (see `id_index.rs`).
    ids: IdIndex,
    /// Held by every writer (never by readers), so snapshots and direct changes apply in order;
    /// the one exception, a first load's threads, is ordered by its replay instead (see
    /// `snapshot_load.rs`).
    journal: Mutex<Journal>,
    /// The digest of the cached codes, kept as they come and go (under the journal's lock):
    /// what the anti-entropy check compares with the provider's.
    codes_digest: Mutex<CodesDigest>,
    negative: NegativeCache,
    acls: ByApp<AppAcl>,
    quotas: ByApp<AppQuota>,
    /// The apps' signing keys, by key and by app.
    keys: KeyIndex,
    quota_counts: QuotaCounts,
    flights: Flights,
    status: AtomicU8,
    status_changed: Notify,
    created: Instant,
    /// Nanoseconds after `created` of the last snapshot or delta; `u64::MAX` before the first.
    loaded_at: AtomicU64,
    counters: Counters,
}

impl fmt::Debug for AppCodeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCodeCache")
            .field("len", &self.len())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Default for AppCodeCache {
    fn default() -> Self {
        Self::new()
    }
}

impl AppCodeCache {
    /// An empty cache in the [`CacheStatus::Loading`] state, with the default negative cache
    /// (100 000 entries, 30 seconds).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for the negative cache's bounds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use apig_appcode::AppCodeCache;
    ///
    /// let cache = AppCodeCache::builder()
    ///     .negative_capacity(10_000)
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build();
    /// assert!(cache.is_empty());
    /// ```
    pub fn builder() -> AppCodeCacheBuilder {
        AppCodeCacheBuilder {
            negative_capacity: 100_000,
            negative_ttl: Duration::from_secs(30),
        }
    }

    /// The identity `code` stands for, if the cache holds it.
    pub fn verify(&self, code: &AppCode) -> Option<AppIdentity> {
        match self.lookup(code.expose().as_bytes()) {
            Lookup::Hit(identity) => Some(identity),
            _ => None,
        }
    }

    /// Validates raw header bytes and looks their digest up. Allocation free.
    fn lookup(&self, raw: &[u8]) -> Lookup {
        if code::validate(raw).is_err() {
            return Lookup::Malformed;
        }
        let digest = self.inner.key.digest(raw);
        match self.inner.map.get(&digest) {
            Some(entry) => Lookup::Hit(entry.value().identity()),
            None => Lookup::Miss(digest),
        }
    }

    /// Adds or replaces one code. Takes effect for the next request.
    pub fn upsert(&self, code: &AppCode, identity: AppIdentity) {
        self.insert_digest(self.digest(code), &identity);
    }

    /// Removes one code; `true` if it was cached. Takes effect for the next request.
    pub fn remove(&self, code: &AppCode) -> bool {
        self.record_and_apply(Mutation::Remove(self.digest(code))) > 0
    }

    /// Removes the code with this AppCode ID. Returns how many entries went (0 or 1 unless IDs
    /// repeat). Found through an index by ID, without a pass over the cache.
    pub fn remove_by_id(&self, app_code_id: &str) -> usize {
        self.record_and_apply(Mutation::RemoveId(app_code_id.into()))
    }

    /// Removes every code of one app, its ACL, quota and signing key. Scans the whole cache.
    pub fn remove_app(&self, app_id: &str) -> usize {
        self.record_and_apply(Mutation::RemoveApp(app_id.into()))
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        // The journal holds no invariant a panic could break half-way.
        self.inner.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_and_apply(&self, change: Mutation) -> usize {
        let mut journal = self.journal();
        let n = self.apply(&change);
        journal.record(change);
        n
    }

    /// Applies one change to the map; returns how many entries went or came.
    fn apply(&self, change: &Mutation) -> usize {
        match change {
            Mutation::Upsert(digest, entry) => {
                self.inner.negative.remove(digest);
                self.put(*digest, entry.clone());
                1
            }
            Mutation::Remove(digest) => usize::from(self.take(digest)),
            Mutation::RemoveApp(app) => {
                self.inner.acls.remove(app);
                self.forget_quota(app);
                self.apply_key(app, None);
                let app = StoredId::of(app);
                self.remove_where(|_, entry| entry.app_id_is(&app))
            }
            Mutation::RemoveId(id) => self.remove_id(&StoredId::of(id)),
            Mutation::Acl(app, acl) => self.apply_acl(app, acl.as_ref()),
            Mutation::Quota(app, quota) => self.apply_quota(app, quota.as_ref()),
            Mutation::Key(app, key) => self.apply_key(app, key.as_ref()),
        }
    }

    /// The key of `entry`'s ID in the index by ID.
    fn id_key(&self, entry: &Entry) -> u64 {
        self.inner.key.id_hash(entry.app_code_id())
    }

    /// The index key of the code cached under `digest`, for the index when it grows.
    fn id_key_of(&self, digest: &Digest) -> u64 {
        // Every indexed digest is cached: both change together under the journal's lock.
        self.inner.map.get(digest).map_or(0, |e| self.id_key(&e))
    }

    /// Caches a chunk of a first load without indexing it by ID: such a load indexes every code
    /// at once at its end ([`index_all`](Self::index_all)) rather than growing the index a
    /// doubling at a time, each growth reading every indexed code's entry again. The chunk is
    /// counted into the codes' digest at once, so that loading threads do not meet on its lock
    /// for every code.
    ///
    /// Unlike every other write, this one does not hold the journal's lock: only a first load
    /// calls it, before the cache admits anyone, and the load replays every change made since
    /// it began on top of what it put, under that lock, before it marks the cache loaded.
    fn put_chunk_unindexed(&self, chunk: impl IntoIterator<Item = (Digest, Entry)>) {
        let (mut added, mut replaced) = (CodesDigest::default(), CodesDigest::default());
        for (digest, entry) in chunk {
            added.add_hash(entry.digest_hash());
            if let Some(old) = self.inner.map.insert(digest, entry) {
                replaced.add_hash(old.digest_hash());
            }
        }
        let mut codes_digest = self.codes_digest_mut();
        codes_digest.add_all(&added);
        codes_digest.remove_all(&replaced);
    }

    /// Indexes every cached code by ID, the index sized once, with up to `threads` threads
    /// each taking its share of the codes. The caller holds the journal's lock, so nothing
    /// writes the map meanwhile.
    fn index_all(&self, threads: usize) {
        let (map, ids) = (&self.inner.map, &self.inner.ids);
        ids.reserve(map.len(), |other| self.id_key_of(other));
        // Each thread reads the whole map (a sequential pass, cheap beside the index's writes)
        // and keeps the codes of its lane. The map's read locks are let go before the index's
        // mutexes are taken.
        let index_share = |share: usize, shares: usize| {
            let mine: Vec<(u64, Digest)> = map
                .iter()
                .filter(|c| c.key().lane(shares as u64) == share as u64)
                .map(|c| (self.id_key(c.value()), *c.key()))
                .collect();
            ids.insert_all(mine, (share, shares), |other| self.id_key_of(other));
        };
        let threads = threads.clamp(1, 64);
        if threads == 1 || map.len() < PARALLEL_INDEX_FROM {
            return index_share(0, 1);
        }
        std::thread::scope(|scope| {
            for share in 1..threads {
                let index_share = &index_share;
                let spawned = std::thread::Builder::new()
                    .name("apig-cache-index".into())
                    .spawn_scoped(scope, move || index_share(share, threads));
                if spawned.is_err() {
                    // No thread to be had: this one takes that share too.
                    index_share(share, threads);
                }
            }
            index_share(0, threads);
        });
    }

    /// Forgets every code: what a first load given up half-way had put (not indexed by ID),
    /// and whatever changes put meanwhile, which the next load reads again. The caller holds
    /// the journal's lock; the cache was never loaded, so nobody was admitted by these codes.
    fn forget_first_load(&self) {
        self.inner.map.clear();
        self.inner.ids.clear();
        *self.codes_digest_mut() = CodesDigest::default();
    }

    fn codes_digest_mut(&self) -> MutexGuard<'_, CodesDigest> {
        // Two words, each written in one step.
        self.inner
            .codes_digest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The digest of the codes the cache holds (see
    /// [`CodesDigest`]): their app and AppCode IDs, never a value.
    pub fn codes_digest(&self) -> CodesDigest {
        *self.codes_digest_mut()
    }

    /// Caches `entry` under `digest`, and indexes it by ID.
    fn put(&self, digest: Digest, entry: Entry) {
        let key = self.id_key(&entry);
        let hash = entry.digest_hash();
        if let Some(old) = self.inner.map.insert(digest, entry) {
            self.codes_digest_mut().remove_hash(old.digest_hash());
            let old_key = self.id_key(&old);
            if old_key != key {
                self.inner.ids.remove(old_key, &digest);
            }
        }
        self.codes_digest_mut().add_hash(hash);
        self.inner
            .ids
            .insert(key, digest, |other| self.id_key_of(other));
    }

    /// Removes the code under `digest`, and its index entry; `true` if it was cached.
    fn take(&self, digest: &Digest) -> bool {
        match self.inner.map.remove(digest) {
            Some((_, entry)) => {
                self.codes_digest_mut().remove_hash(entry.digest_hash());
                self.inner.ids.remove(self.id_key(&entry), digest);
                true
            }
            None => false,
        }
    }

    /// Removes every code with this ID (there may be several: IDs are unique per instance, a
    /// cache may hold more than one).
    fn remove_id(&self, id: &StoredId) -> usize {
        let (map, key) = (&self.inner.map, self.inner.key.id_hash(id));
        let mut removed = 0;
        while let Some(digest) = self
            .inner
            .ids
            .take(key, |d| map.get(d).is_some_and(|e| e.app_code_id_is(id)))
        {
            if let Some((_, entry)) = map.remove(&digest) {
                self.codes_digest_mut().remove_hash(entry.digest_hash());
                removed += 1;
            }
        }
        removed
    }

    /// Removes every code `matches` selects, in one pass over the cache.
    fn remove_where(&self, matches: impl Fn(&Digest, &Entry) -> bool) -> usize {
        let mut gone = Vec::new();
        self.inner.map.retain(|digest, entry| {
            let hit = matches(digest, entry);
            if hit {
                gone.push((self.id_key(entry), *digest, entry.digest_hash()));
            }
            !hit
        });
        // Outside the pass: no lock of the index is taken while one of the map is held.
        let mut codes_digest = self.codes_digest_mut();
        for (key, digest, hash) in &gone {
            self.inner.ids.remove(*key, digest);
            codes_digest.remove_hash(*hash);
        }
        drop(codes_digest);
        gone.len()
    }

    /// Replaces the whole content with `entries` and marks the cache loaded.
    ///
    /// New codes are added before stale ones are removed, so no code valid in both the old and
    /// the new set is ever missing. Entries that did not change are not rewritten.
    pub fn replace_all<I>(&self, entries: I)
    where
        I: IntoIterator<Item = (AppCode, AppIdentity)>,
    {
        let digested = self.digest_all(entries);
        let journal = self.journal();
        self.apply_snapshot(digested);
        drop(journal);
    }

    /// The journal's epoch now: note it before asking the provider for anything that will be
    /// applied with the changes made since replayed on top.
    pub(crate) fn write_epoch(&self) -> u64 {
        self.journal().epoch()
    }

    /// Replaces the whole content with a digested snapshot whose load started at the journal's
    /// epoch `since`, then replays every direct change made since, so a code removed while the
    /// snapshot was in flight stays removed. `false` (and nothing applied) if too many changes
    /// happened for the journal to replay: load again.
    pub(crate) fn apply_snapshot_since(&self, digested: Vec<(Digest, Entry)>, since: u64) -> bool {
        let journal = self.journal();
        let Some(replay) = journal.since(since) else {
            return false;
        };
        let replay: Vec<Mutation> = replay.cloned().collect();
        self.apply_snapshot(digested);
        for change in &replay {
            self.apply(change);
        }
        drop(journal);
        true
    }

    fn digest_all<I>(&self, entries: I) -> Vec<(Digest, Entry)>
    where
        I: IntoIterator<Item = (AppCode, AppIdentity)>,
    {
        entries
            .into_iter()
            .map(|(code, identity)| (self.digest(&code), Entry::new(&identity)))
            .collect()
    }

    /// Applies a digested snapshot; the caller holds the journal lock.
    fn apply_snapshot(&self, entries: Vec<(Digest, Entry)>) {
        let map = &self.inner.map;
        if map.is_empty() && self.inner.negative.is_empty() {
            // The first load (the usual case for a large set): nothing to compare with, keep
            // or forget, so no set of what to keep and no pass over the map.
            self.inner
                .ids
                .reserve(entries.len(), |other| self.id_key_of(other));
            for (digest, entry) in entries {
                self.put(digest, entry);
            }
            self.mark_loaded();
            return;
        }
        let mut keep: HashSet<Digest, PassThrough> =
            HashSet::with_capacity_and_hasher(entries.len(), PassThrough);
        // A code the provider did not know a moment ago may be in this snapshot: it is
        // forgotten as unknown. The other unknown codes stay so for their whole TTL.
        let negative = &self.inner.negative;
        let forget_unknown = !negative.is_empty();
        for (digest, entry) in entries {
            keep.insert(digest);
            if forget_unknown {
                negative.remove(&digest);
            }
            let unchanged = map.get(&digest).is_some_and(|old| *old == entry);
            if !unchanged {
                self.put(digest, entry);
            }
        }
        self.remove_where(|digest, _| !keep.contains(digest));
        self.mark_loaded();
    }

    /// Number of codes cached.
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether no code is cached.
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    /// The current status.
    pub fn status(&self) -> CacheStatus {
        CacheStatus::from_u8(self.inner.status.load(Ordering::Acquire))
    }

    /// Time since the cache last caught up with its provider (a full snapshot, or the changes
    /// since its revision), `None` before the first snapshot.
    pub fn snapshot_age(&self) -> Option<Duration> {
        let at = self.inner.loaded_at.load(Ordering::Acquire);
        (at != u64::MAX).then(|| {
            self.inner
                .created
                .elapsed()
                .saturating_sub(Duration::from_nanos(at))
        })
    }

    /// Waits until the cache has been loaded once (its status left [`CacheStatus::Loading`]).
    pub async fn loaded(&self) {
        loop {
            let notified = self.inner.status_changed.notified();
            if self.status() != CacheStatus::Loading {
                return;
            }
            notified.await;
        }
    }

    /// Counters of the cache and of the layers using it.
    pub fn metrics(&self) -> Metrics {
        self.inner.counters.read(self.len(), self.snapshot_age())
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn set_status(&self, status: CacheStatus) {
        let v = match status {
            CacheStatus::Loading => 0,
            CacheStatus::Fresh => 1,
            CacheStatus::StaleServing => 2,
            CacheStatus::StaleClosed => 3,
        };
        if self.inner.status.swap(v, Ordering::AcqRel) != v {
            self.inner.status_changed.notify_waiters();
        }
    }

    fn mark_loaded(&self) {
        Counters::add(&self.inner.counters.snapshots_loaded);
        self.mark_synced();
    }

    /// The cache caught up with its provider: its age restarts and it is fresh.
    fn mark_synced(&self) {
        let nanos = u64::try_from(self.inner.created.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.inner.loaded_at.store(nanos, Ordering::Release);
        self.set_status(CacheStatus::Fresh);
    }

    fn digest(&self, code: &AppCode) -> Digest {
        self.inner.key.digest(code.expose().as_bytes())
    }

    pub(crate) fn is_known_unknown(&self, digest: &Digest) -> bool {
        self.inner.negative.contains(digest, Instant::now())
    }

    pub(crate) fn remember_unknown(&self, digest: Digest) {
        self.inner.negative.insert(digest, Instant::now());
    }

    /// The cache entry for `digest` if present (a re-check after waiting on a provider).
    pub(crate) fn get(&self, digest: &Digest) -> Option<AppIdentity> {
        self.inner.map.get(digest).map(|e| e.value().identity())
    }

    fn insert_digest(&self, digest: Digest, identity: &AppIdentity) {
        self.record_and_apply(Mutation::Upsert(digest, Entry::new(identity)));
    }
}

/// Configures an [`AppCodeCache`].
#[derive(Debug, Clone)]
pub struct AppCodeCacheBuilder {
    negative_capacity: usize,
    negative_ttl: Duration,
}

impl AppCodeCacheBuilder {
    /// Most unknown codes remembered at once (default 100 000; 0 turns the negative cache off).
    pub fn negative_capacity(mut self, capacity: usize) -> Self {
        self.negative_capacity = capacity;
        self
    }

    /// How long an unknown code is remembered (default 30 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> AppCodeCache {
        AppCodeCache {
            inner: Arc::new(Inner {
                key: DigestKey::random(),
                map: DashMap::with_hasher(PassThrough),
                ids: IdIndex::new(),
                journal: Mutex::default(),
                codes_digest: Mutex::default(),
                negative: NegativeCache::new(self.negative_capacity, self.negative_ttl),
                acls: ByApp::default(),
                keys: KeyIndex::default(),
                quotas: ByApp::default(),
                quota_counts: QuotaCounts::default(),
                flights: Flights::new(),
                status: AtomicU8::new(0),
                status_changed: Notify::new(),
                created: Instant::now(),
                loaded_at: AtomicU64::new(u64::MAX),
                counters: Counters::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
