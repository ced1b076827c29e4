//! [`ReadThrough`]: the cache with the provider behind it, answering one question per request.
//!
//! A code the cache holds is answered at once. On a miss, a provider that can look single codes
//! up is asked, unless it said recently that it does not know the code (the negative cache).
//! The lookup runs as its own task, started by the first request that misses on a code and
//! joined by every other one (see [`flight`](super::flight)). Its answer goes into the cache, or
//! into the negative cache, only after it is checked against the journal of direct changes: a
//! lookup that began before a code was revoked must not write the revoked code back.
//!
//! The refresher that keeps the cache in step with the same provider belongs here too, and
//! stops when the last holder of the `ReadThrough` lets go of it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::digest::Digest;
use super::entry::{Entry, StoredId};
use super::flight::{Flight, Flights, Outcome};
use super::journal::Mutation;
use super::quota_calls::{QuotaCalls, QuotaCharge};
use super::quota_flush::{self, FlusherHandle, ThroughProvider};
use super::refresher::{self, RefreshPolicy, RefresherHandle};
use super::{AppCodeCache, Lookup};
use crate::code::AppCode;
use crate::identity::AppIdentity;
use crate::metrics::Counters;
use crate::provider::{AppCodeProvider, BoxFuture, ProviderError};
use crate::quota::SharedQuotaCounts;

/// A cache, the provider it asks about codes it lacks, and the refresher that fills it.
pub(crate) struct ReadThrough {
    cache: AppCodeCache,
    /// A provider that can look single codes up, and how lookups are bounded.
    lookups: Option<(Arc<dyn AppCodeProvider>, LookupBounds)>,
    /// Held, never read: dropping it stops the refresher.
    _refresher: Option<RefresherHandle>,
    /// Where each call under a quota is counted before it goes on, when calls are counted
    /// one by one in the shared counts.
    quota_calls: Option<Arc<QuotaCalls>>,
    /// Held, never read: dropping it stops the sharing of quota counts.
    _flusher: Option<FlusherHandle>,
}

impl fmt::Debug for ReadThrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadThrough")
            .field("cache", &self.cache)
            .field("lookups", &self.lookups.is_some())
            .field("refresher", &self._refresher.is_some())
            .field("quota_calls", &self.quota_calls.is_some())
            .finish()
    }
}

/// How a node bounds its lookups: each by a deadline, and how many run at a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LookupBounds {
    pub(crate) timeout: Duration,
    pub(crate) max_in_flight: usize,
}

/// What a request's code stands for.
pub(crate) enum Answer {
    /// The cache holds it.
    Known(AppIdentity),
    /// Malformed, or unknown with nobody to ask, or unknown to the provider a moment ago.
    Unknown,
    /// The provider is being asked.
    Asking(Asking),
    /// Not asked: the most lookups the node runs at a time are up.
    Busy,
}

impl ReadThrough {
    /// Reads through `cache` to `provider` (when it can look single codes up, within `bounds`),
    /// and with a provider starts the refresher on the current Tokio
    /// runtime; quota counts are shared in `shared_counts`, else through the provider if it
    /// shares them: in batches, or, with `per_call` (the deadline of one call), each call.
    ///
    /// # Panics
    ///
    /// With a provider, if called outside a Tokio runtime.
    pub(crate) fn new(
        cache: AppCodeCache,
        provider: Option<Arc<dyn AppCodeProvider>>,
        policy: RefreshPolicy,
        bounds: LookupBounds,
        shared_counts: Option<Arc<dyn SharedQuotaCounts>>,
        per_call: Option<Duration>,
    ) -> Self {
        let refresher = provider
            .as_ref()
            .map(|p| refresher::spawn(cache.clone(), Arc::clone(p), policy));
        let shared_counts = shared_counts.or_else(|| {
            provider
                .as_ref()
                .filter(|p| p.shares_quota_counts())
                .map(|p| Arc::new(ThroughProvider(Arc::clone(p))) as Arc<dyn SharedQuotaCounts>)
        });
        let quota_calls = shared_counts
            .as_ref()
            .zip(per_call)
            .map(|(shared, timeout)| Arc::new(QuotaCalls::new(Arc::clone(shared), timeout)));
        let flusher = shared_counts.map(|shared| quota_flush::spawn(&cache, shared));
        let lookups = provider
            .filter(|p| p.supports_lookup())
            .map(|p| (p, bounds));
        Self {
            cache,
            lookups,
            _refresher: refresher,
            quota_calls,
            _flusher: flusher,
        }
    }

    pub(crate) fn cache(&self) -> &AppCodeCache {
        &self.cache
    }

    /// Charges a call of `app_id` to its quota: on this node, or, when calls are counted one
    /// by one, in the shared counts.
    pub(crate) fn charge_quota(&self, app_id: &str) -> QuotaCharge {
        match &self.quota_calls {
            None => QuotaCharge::Now(self.cache.charge_quota(app_id)),
            Some(calls) => self.cache.charge_quota_per_call(app_id, calls),
        }
    }

    /// The per-call counting's breaker, when calls are counted one by one.
    pub(crate) fn quota_calls(&self) -> Option<&QuotaCalls> {
        self.quota_calls.as_deref()
    }

    /// Whether the app key `key` may sign a request that verifies: the cache holds it, or a
    /// provider that looks keys up has not said a moment ago that it does not know it.
    pub(crate) fn may_know_key(&self, key: &str) -> bool {
        self.cache.app_key(key).is_some()
            || (self.lookups.is_some() && !self.cache.is_known_unknown(&self.cache.key_digest(key)))
    }

    /// The provider's lookup of the app key `key`, which the cache lacks: `None` when there is
    /// nobody to ask or the provider said a moment ago that it does not know the key (the
    /// negative cache). Concurrent requests for one key share one call, as for codes, within
    /// the same bound on lookups at a time: past it, [`Answer::Busy`] at once.
    pub(crate) fn ask_key(&self, key: &str) -> Option<Answer> {
        let (provider, bounds) = self.lookups.as_ref()?;
        let digest = self.cache.key_digest(key);
        if self.cache.is_known_unknown(&digest) {
            return None;
        }
        let ask = Ask::Key(key.to_owned());
        Some(
            match self.cache.ask(Arc::clone(provider), digest, ask, *bounds) {
                Some(flight) => {
                    Answer::Asking(Asking(Box::pin(async move { flight.outcome().await })))
                }
                None => {
                    self.cache.shed_lookup(bounds.max_in_flight);
                    Answer::Busy
                }
            },
        )
    }

    /// What the raw header value `raw` stands for. Allocation free unless the provider must be
    /// asked.
    pub(crate) fn answer(&self, raw: &[u8]) -> Answer {
        let cache = &self.cache;
        let counters = cache.counters();
        let digest = match cache.lookup(raw) {
            Lookup::Hit(identity) => {
                counters.hits.add();
                return Answer::Known(identity);
            }
            Lookup::Malformed => return Answer::Unknown,
            Lookup::Miss(digest) => digest,
        };
        Counters::add(&counters.misses);
        let Some((provider, bounds)) = &self.lookups else {
            return Answer::Unknown;
        };
        if cache.is_known_unknown(&digest) {
            return Answer::Unknown;
        }
        let code = AppCode::from_validated(raw);
        match cache.ask(Arc::clone(provider), digest, Ask::Code(code), *bounds) {
            Some(flight) => Answer::Asking(Asking(Box::pin(async move { flight.outcome().await }))),
            None => {
                cache.shed_lookup(bounds.max_in_flight);
                Answer::Busy
            }
        }
    }
}

/// One request's wait for a provider lookup, shared with every concurrent request for the same
/// code.
pub(crate) struct Asking(BoxFuture<'static, Outcome>);

impl Future for Asking {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        self.0.as_mut().poll(cx)
    }
}

impl AppCodeCache {
    /// What `code` (whose digest is `digest`) stands for, asking `provider`: at most one call at
    /// a time per code, bounded by `timeout`, whose outcome every concurrent request for the
    /// code shares.
    ///
    /// `None` when `bounds.max_in_flight` lookups of other codes are up: none is started.
    ///
    /// Must be called within a tokio runtime: the lookup is a task of its own, started here, so
    /// that it lands even when every request waiting on it is dropped, polled or not.
    fn ask(
        &self,
        provider: Arc<dyn AppCodeProvider>,
        digest: Digest,
        ask: Ask,
        bounds: LookupBounds,
    ) -> Option<Arc<Flight>> {
        let (flight, started) = self.inner.flights.join(digest, bounds.max_in_flight)?;
        if started {
            let landing = Landing {
                cache: self.clone(),
                digest,
                flight: Arc::clone(&flight),
            };
            tokio::spawn(landing.fly(provider, ask, bounds.timeout));
        }
        Some(flight)
    }

    /// Counts a miss answered without a lookup, and says so in the log at most once every
    /// [`SHED_LOG_INTERVAL`](super::flight::SHED_LOG_INTERVAL): under a flood, one line, not
    /// one per request.
    fn shed_lookup(&self, max_in_flight: usize) {
        let counters = self.counters();
        Counters::add(&counters.lookups_shed);
        if self.inner.flights.log_shed() {
            tracing::warn!(
                max_in_flight,
                shed = counters
                    .lookups_shed
                    .load(std::sync::atomic::Ordering::Relaxed),
                "AppCode lookups at their limit; misses are answered 503 without one"
            );
        }
    }

    /// Writes what a provider lookup begun at epoch `since` found for `digest` (`None`: the
    /// provider does not know the code), and returns what the requests waiting on it get.
    ///
    /// A direct change recorded since `since` that touches this code (an upsert or removal of
    /// it, the removal of its ID or of its app) is newer than the provider's answer: the cache
    /// already holds the truth, and the answer is dropped. So a lookup that raced a revocation
    /// cannot reinstate the revoked code, and one that raced a creation does not remember the
    /// new code as unknown. When the journal no longer reaches back to `since`, the answer cannot
    /// be checked and the lookup fails (503, try again) rather than risk either.
    fn settle(&self, digest: Digest, found: Option<AppIdentity>, since: u64) -> Outcome {
        let mut journal = self.journal();
        let found_entry = found.as_ref().map(Entry::new);
        let Some(mut changes) = journal.since(since) else {
            return Outcome::Failed;
        };
        let overtaken = changes.any(|change| match change {
            Mutation::Upsert(d, _) | Mutation::Remove(d) => *d == digest,
            Mutation::RemoveId(id) => found_entry
                .as_ref()
                .is_some_and(|e| e.app_code_id_is(&StoredId::of(id))),
            Mutation::RemoveApp(app) => found_entry
                .as_ref()
                .is_some_and(|e| e.app_id_is(&StoredId::of(app))),
            // An app's policies do not decide whether its code exists.
            Mutation::Acl(..) | Mutation::Quota(..) | Mutation::Key(..) => false,
        });
        drop(changes);
        if overtaken {
            return self.get(&digest).map_or(Outcome::Unknown, Outcome::Found);
        }
        match (found, found_entry) {
            (Some(identity), Some(entry)) => {
                let change = Mutation::Upsert(digest, entry);
                self.apply(&change);
                journal.record(change);
                Outcome::Found(identity)
            }
            _ => {
                self.remember_unknown(digest);
                Outcome::Unknown
            }
        }
    }

    /// How many lookups are in flight.
    #[cfg(test)]
    pub(crate) fn flights(&self) -> usize {
        self.inner.flights.len()
    }
}

/// A started flight: lands with [`Outcome::Failed`] if dropped before it could land otherwise
/// (a panicking provider, a runtime shutting down), so no waiter is left hanging.
struct Landing {
    cache: AppCodeCache,
    digest: Digest,
    flight: Arc<Flight>,
}

/// What a flight asks the provider about.
pub(super) enum Ask {
    /// An AppCode.
    Code(AppCode),
    /// An app's signing key.
    Key(String),
}

impl Landing {
    async fn fly(self, provider: Arc<dyn AppCodeProvider>, ask: Ask, timeout: Duration) {
        let outcome = match &ask {
            Ask::Code(code) => self.outcome(&*provider, code, timeout).await,
            Ask::Key(key) => self.key_outcome(&*provider, key, timeout).await,
        };
        self.flights().land(&self.digest, &self.flight, outcome);
        // Landed: the drop below finds nothing left to do.
    }

    fn flights(&self) -> &Flights {
        &self.cache.inner.flights
    }

    /// What the provider says of the app key `key`, written to the cache (see
    /// `AppCodeCache::settle_key`).
    async fn key_outcome(
        &self,
        provider: &dyn AppCodeProvider,
        key: &str,
        timeout: Duration,
    ) -> Outcome {
        if let Some((identity, _)) = self.cache.app_key(key) {
            return Outcome::Found(identity);
        }
        self.ask(
            "app key",
            timeout,
            || provider.lookup_app_key(key),
            |found, since| self.cache.settle_key(self.digest, key, found, since),
        )
        .await
    }

    async fn outcome(
        &self,
        provider: &dyn AppCodeProvider,
        code: &AppCode,
        timeout: Duration,
    ) -> Outcome {
        // A flight that landed between this request's miss and its join left its answer behind.
        if let Some(identity) = self.cache.get(&self.digest) {
            return Outcome::Found(identity);
        }
        self.ask(
            "AppCode",
            timeout,
            || provider.lookup(code),
            |found, since| self.cache.settle(self.digest, found, since),
        )
        .await
    }

    /// Unless the digest is known to be unknown, asks the provider with `lookup` within
    /// `timeout`; `settle` writes what it found to the cache, with the cache's write epoch from
    /// before the lookup. A failure is counted, and logged as a failed `what` lookup.
    async fn ask<'a, T>(
        &self,
        what: &str,
        timeout: Duration,
        lookup: impl FnOnce() -> BoxFuture<'a, Result<T, ProviderError>>,
        settle: impl FnOnce(T, u64) -> Outcome,
    ) -> Outcome {
        let cache = &self.cache;
        if cache.is_known_unknown(&self.digest) {
            return Outcome::Unknown;
        }
        let since = cache.write_epoch();
        Counters::add(&cache.counters().provider_lookups);
        match tokio::time::timeout(timeout, lookup()).await {
            Ok(Ok(found)) => settle(found, since),
            Ok(Err(error)) => {
                Counters::add(&cache.counters().provider_errors);
                tracing::warn!(%error, "{what} lookup failed");
                Outcome::Failed
            }
            Err(_) => {
                Counters::add(&cache.counters().provider_errors);
                tracing::warn!(?timeout, "{what} lookup timed out");
                Outcome::Failed
            }
        }
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        // After a normal landing the flight is already gone from the map and has its outcome:
        // both steps below are then no-ops.
        self.flights()
            .land(&self.digest, &self.flight, Outcome::Failed);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::cache::Lookup;
    use crate::identity::AppIdentity;
    use crate::test_support::ScriptedProvider;

    const TIMEOUT: Duration = Duration::from_secs(1);

    fn digest(cache: &AppCodeCache, code: &AppCode) -> Digest {
        match cache.lookup(code.expose().as_bytes()) {
            Lookup::Miss(digest) => digest,
            _ => panic!("expected a miss"),
        }
    }

    /// A provider whose lookups wait at a gate, knowing `known`.
    fn gated(known: &[(&AppCode, &AppIdentity)]) -> (ScriptedProvider, Arc<Semaphore>) {
        let provider = ScriptedProvider::default();
        let gate = Arc::new(Semaphore::new(0));
        let map = known
            .iter()
            .map(|(c, i)| (c.expose().to_owned(), (*i).clone()))
            .collect::<HashMap<_, _>>();
        provider.set(|s| {
            s.lookups = Some(map);
            s.lookup_gate = Some(Arc::clone(&gate));
        });
        (provider, gate)
    }

    /// Starts `n` concurrent read-throughs of `code` as tasks.
    fn readers(
        cache: &AppCodeCache,
        provider: &ScriptedProvider,
        code: &AppCode,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Outcome>> {
        (0..n)
            .map(|_| {
                let (cache, code) = (cache.clone(), code.clone());
                let provider: Arc<dyn AppCodeProvider> = Arc::new(provider.clone());
                tokio::spawn(async move {
                    let digest = digest(&cache, &code);
                    let bounds = LookupBounds {
                        timeout: TIMEOUT,
                        max_in_flight: usize::MAX,
                    };
                    let flight = cache
                        .ask(provider, digest, Ask::Code(code), bounds)
                        .unwrap();
                    flight.outcome().await
                })
            })
            .collect()
    }

    /// Waits (in paused time) until the provider was asked `n` times; panics if it never is.
    async fn wait_for_lookups(provider: &ScriptedProvider, n: usize) {
        for _ in 0..10_000 {
            if provider.lookup_calls() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("{} lookups, expected {n}", provider.lookup_calls());
    }

    /// One reader of `code`, once its lookup is in the provider (the first lookup it had).
    async fn reader_asking(
        cache: &AppCodeCache,
        provider: &ScriptedProvider,
        code: &AppCode,
    ) -> tokio::task::JoinHandle<Outcome> {
        let reader = readers(cache, provider, code, 1).remove(0);
        wait_for_lookups(provider, 1).await;
        reader
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_shared_by_every_waiter() {
        let provider = ScriptedProvider::default();
        provider.set(|s| {
            s.lookups = Some(HashMap::new());
            s.lookup_fails = true;
            s.lookup_delay = Duration::from_millis(100);
        });
        let cache = AppCodeCache::new();
        let code = AppCode::generate();
        for reader in readers(&cache, &provider, &code, 16) {
            assert!(matches!(reader.await.unwrap(), Outcome::Failed));
        }
        assert_eq!(
            provider.lookup_calls(),
            1,
            "waiters retried a failed lookup"
        );
        assert_eq!(cache.flights(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_is_shared_by_every_waiter() {
        let (provider, _gate) = gated(&[]);
        let cache = AppCodeCache::new();
        let code = AppCode::generate();
        for reader in readers(&cache, &provider, &code, 10) {
            assert!(matches!(reader.await.unwrap(), Outcome::Failed));
        }
        // One call: the waiters did not each wait out a timeout of their own.
        assert_eq!(provider.lookup_calls(), 1);
        assert_eq!(cache.metrics().provider_errors, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_lookups_leave_nothing_behind() {
        let (provider, _gate) = gated(&[]);
        let cache = AppCodeCache::new();
        let codes: Vec<AppCode> = (0..1000).map(|_| AppCode::generate()).collect();
        let waiting: Vec<_> = codes
            .iter()
            .flat_map(|code| readers(&cache, &provider, code, 1))
            .collect();
        wait_for_lookups(&provider, codes.len()).await;
        assert_eq!(cache.flights(), codes.len(), "every lookup is up");
        for reader in waiting {
            reader.abort();
        }
        // Nobody waits on them any more; each still ends at its timeout, and takes its entry.
        tokio::time::sleep(TIMEOUT * 2).await;
        assert_eq!(cache.flights(), 0, "abandoned lookups stayed behind");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_first_requester_does_not_cost_a_second_call() {
        let code = AppCode::generate();
        let identity = AppIdentity::new("app", "code");
        let (provider, gate) = gated(&[(&code, &identity)]);
        let cache = AppCodeCache::new();
        let first = reader_asking(&cache, &provider, &code).await;
        let second = readers(&cache, &provider, &code, 1).remove(0);
        first.abort();
        gate.add_permits(1);
        assert!(matches!(second.await.unwrap(), Outcome::Found(i) if i == identity));
        assert_eq!(provider.lookup_calls(), 1);
        assert_eq!(cache.verify(&code), Some(identity));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_raced_a_revocation_does_not_bring_the_code_back() {
        type Revoke = fn(&AppCodeCache, &AppCode);
        let revocations: [(&str, Revoke); 3] = [
            ("by value", |cache, code| {
                cache.remove(code);
            }),
            ("by ID", |cache, _| {
                cache.remove_by_id("code-1");
            }),
            ("by app", |cache, _| {
                cache.remove_app("app-1");
            }),
        ];
        for (how, revoke) in revocations {
            let code = AppCode::generate();
            let identity = AppIdentity::new("app-1", "code-1");
            // The provider read the code before it was revoked, and answers after.
            let (provider, gate) = gated(&[(&code, &identity)]);
            let cache = AppCodeCache::new();
            let reader = reader_asking(&cache, &provider, &code).await;
            revoke(&cache, &code);
            gate.add_permits(1);
            assert!(
                matches!(reader.await.unwrap(), Outcome::Unknown),
                "revoked {how}: the stale answer admitted the request"
            );
            assert!(
                cache.verify(&code).is_none(),
                "revoked {how}: the stale answer was cached"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_raced_a_creation_does_not_remember_the_code_as_unknown() {
        let code = AppCode::generate();
        let identity = AppIdentity::new("app", "new");
        let (provider, gate) = gated(&[]);
        let cache = AppCodeCache::new();
        let reader = reader_asking(&cache, &provider, &code).await;
        cache.upsert(&code, identity.clone());
        gate.add_permits(1);
        assert!(matches!(reader.await.unwrap(), Outcome::Found(i) if i == identity));
        let digest = digest_of(&cache, &code);
        assert!(!cache.is_known_unknown(&digest));
    }

    fn digest_of(cache: &AppCodeCache, code: &AppCode) -> Digest {
        cache.digest(code)
    }
}
