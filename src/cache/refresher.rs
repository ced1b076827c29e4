//! The background task that keeps a cache in step with its provider.
//!
//! It loads a snapshot at start (retrying with backoff until one succeeds) and catches up on
//! every refresh interval and on [`Change::Resync`]: with the changes since the revision it
//! holds when the provider has revisions, else by reloading the snapshot. It applies change
//! events in the order they arrive, even while a load runs, and on provider failure keeps the
//! last good set. Once that set is older than the maximum staleness, the cache turns
//! [`CacheStatus::StaleClosed`] (requests get 503) or [`CacheStatus::StaleServing`] if
//! configured to keep serving; the next good load makes it fresh again.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

use super::{AppCodeCache, CacheStatus};
use crate::metrics::Counters;
use crate::provider::{
    AppCodeProvider, BoxFuture, Change, ChangeStream, CodesDigest, ProviderError, RevisionDigest,
};

/// How the refresher behaves.
#[derive(Debug, Clone)]
pub(crate) struct RefreshPolicy {
    pub(crate) interval: Duration,
    pub(crate) max_staleness: Option<Duration>,
    pub(crate) serve_stale: bool,
    pub(crate) load_timeout: Duration,
    pub(crate) after_snapshot: Option<AfterSnapshot>,
    /// How often the anti-entropy check runs (`None`: never).
    pub(crate) anti_entropy: Option<Duration>,
}

/// What runs after each snapshot the refresher applies, with the number of codes it held (see
/// `AppCodeAuthLayerBuilder::after_snapshot`).
#[derive(Clone)]
pub(crate) struct AfterSnapshot(pub(crate) Arc<dyn Fn(usize) + Send + Sync>);

impl fmt::Debug for AfterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AfterSnapshot(..)")
    }
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            max_staleness: Some(Duration::from_secs(300)),
            serve_stale: false,
            load_timeout: Duration::from_secs(30),
            after_snapshot: None,
            anti_entropy: Some(DEFAULT_ANTI_ENTROPY),
        }
    }
}

/// Aborts the refresher when the last layer holding it is dropped.
#[derive(Debug)]
pub(crate) struct RefresherHandle(JoinHandle<()>);

impl Drop for RefresherHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn spawn(
    cache: AppCodeCache,
    provider: Arc<dyn AppCodeProvider>,
    policy: RefreshPolicy,
) -> RefresherHandle {
    RefresherHandle(tokio::spawn(run(cache, provider, policy)))
}

const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The default period of the anti-entropy check.
pub(crate) const DEFAULT_ANTI_ENTROPY: Duration = Duration::from_secs(300);

/// How soon a check that found a difference looks again, after a catch-up: a change pushed to
/// the cache between the provider's digest and the cache's can make them differ for a moment.
const RECHECK: Duration = Duration::from_secs(1);

async fn run(cache: AppCodeCache, provider: Arc<dyn AppCodeProvider>, policy: RefreshPolicy) {
    let mut changes: Option<ChangeStream> = provider.changes();
    let mut next_load = Instant::now();
    let mut retry = FIRST_RETRY;
    let mut last_good: Option<Instant> = None;
    // The load in progress. Change events go on being applied while it runs: a revocation must
    // not wait for a snapshot of a million codes, and the journal replays it on top of the
    // snapshot when that arrives.
    let mut loading: Option<BoxFuture<'_, Result<Synced, ProviderError>>> = None;
    // The provider's revision the cache holds, once a snapshot said; then a refresh asks for
    // what changed since, instead of every code.
    let mut revision: Option<u64> = None;
    // A resync asked for during a load: that load may have read the store before the events
    // that were lost, so another one follows it.
    let mut resync_after_load = false;
    // The next load is to be a full snapshot, whatever revision the cache holds.
    let mut reload = false;
    // The anti-entropy check: when it runs next, the one in flight, whether the last one found
    // a difference (a second one in a row reloads), and whether it waits for a catch-up to
    // bring the cache to the provider's revision (once per period).
    let mut next_check = policy.anti_entropy.map(|every| Instant::now() + every);
    let mut checking: Option<BoxFuture<'_, Result<Option<RevisionDigest>, ProviderError>>> = None;
    let mut suspect = false;
    let mut check_after_load = false;
    let mut caught_up_for_check = false;
    loop {
        let stale_at = match (last_good, policy.max_staleness) {
            (Some(at), Some(max)) if cache.status() == CacheStatus::Fresh => Some(at + max),
            _ => None,
        };
        tokio::select! {
            biased;
            change = next_change(&mut changes), if changes.is_some() => match change {
                Some(Change::Reload) if loading.is_some() => (reload, resync_after_load) = (true, true),
                Some(Change::Reload) => (reload, next_load) = (true, Instant::now()),
                Some(Change::Resync) if loading.is_some() => resync_after_load = true,
                Some(Change::Resync) => next_load = Instant::now(),
                Some(change) => apply(&cache, change),
                None => {
                    tracing::warn!("AppCode change stream ended; relying on periodic refresh");
                    changes = None;
                }
            },
            result = async { loading.as_mut().expect("guarded").await }, if loading.is_some() => {
                loading = None;
                match result {
                    Ok(synced) => {
                        match synced.how {
                            How::Snapshot => {
                                tracing::debug!(codes = synced.count, revision = ?synced.revision, "AppCode snapshot loaded");
                                if let Some(hook) = &policy.after_snapshot {
                                    (hook.0)(synced.count);
                                }
                            }
                            How::Delta => tracing::debug!(changes = synced.count, revision = ?synced.revision, "AppCode changes applied"),
                        }
                        revision = synced.revision;
                        last_good = Some(Instant::now());
                        retry = FIRST_RETRY;
                        next_load = Instant::now() + policy.interval;
                    }
                    Err(e) => {
                        Counters::add(&cache.counters().provider_errors);
                        let transient = e.is_transient();
                        let retry_in = if transient { retry } else { policy.interval };
                        let holding = if last_good.is_some() {
                            "keeping the last good set"
                        } else {
                            "the cache has no AppCodes yet, requests get 503"
                        };
                        if transient {
                            tracing::warn!(error = %e, ?retry_in, "AppCode refresh failed; {holding}");
                            retry = (retry * 2).min(policy.interval.max(FIRST_RETRY));
                        } else {
                            tracing::error!(error = %e, ?retry_in, "AppCode provider cannot serve until this is fixed; {holding}");
                        }
                        next_load = Instant::now() + retry_in;
                    }
                }
                if std::mem::take(&mut resync_after_load) {
                    next_load = Instant::now();
                } else if std::mem::take(&mut check_after_load) {
                    next_check = Some(Instant::now());
                }
            }
            () = sleep_until(next_load), if loading.is_none() => {
                let from = if std::mem::take(&mut reload) { None } else { revision };
                loading = Some(Box::pin(sync(&cache, &*provider, from, policy.load_timeout)));
            }
            () = async { sleep_until(next_check.expect("guarded")).await }, if next_check.is_some() && checking.is_none() && loading.is_none() => {
                next_check = None;
                checking = Some(provider.digest());
            }
            result = async { checking.as_mut().expect("guarded").await }, if checking.is_some() => {
                checking = None;
                let verdict = match result {
                    Ok(Some(theirs)) => compare(&cache, revision, theirs),
                    Ok(None) => Verdict::Unchecked,
                    Err(e) => {
                        tracing::warn!(error = %e, "the anti-entropy check could not read the provider's digest");
                        Verdict::Unchecked
                    }
                };
                let every = policy.anti_entropy.unwrap_or(DEFAULT_ANTI_ENTROPY);
                next_check = Some(Instant::now() + every);
                let behind = matches!(verdict, Verdict::Behind);
                match verdict {
                    Verdict::Differs { held, theirs } if suspect => {
                        suspect = false;
                        Counters::add(&cache.counters().anti_entropy_repairs);
                        tracing::warn!(
                            revision = ?revision,
                            cached = held.count,
                            provider = theirs.count,
                            "the AppCode cache differs from its provider at the same revision; reloading every code"
                        );
                        (reload, next_load) = (true, Instant::now());
                    }
                    Verdict::Differs { .. } => {
                        suspect = true;
                        next_load = Instant::now();
                        next_check = Some(Instant::now() + RECHECK);
                    }
                    // The cache holds an older revision (changes pushed to it move its content,
                    // not its revision): catch up, then compare at once, once a period.
                    Verdict::Behind if !caught_up_for_check => {
                        (next_load, next_check) = (Instant::now(), None);
                        check_after_load = true;
                    }
                    Verdict::Same | Verdict::Behind | Verdict::Unchecked => suspect = false,
                }
                caught_up_for_check = behind && !caught_up_for_check;
            }
            () = async { sleep_until(stale_at.expect("guarded")).await }, if stale_at.is_some() => {
                let status = if policy.serve_stale { CacheStatus::StaleServing } else { CacheStatus::StaleClosed };
                tracing::warn!(?status, "AppCode snapshot is older than the maximum staleness");
                cache.set_status(status);
            }
        }
    }
}

/// What an anti-entropy check found.
enum Verdict {
    Same,
    /// At the same revision, the cache holds other codes than the provider.
    Differs {
        held: CodesDigest,
        theirs: CodesDigest,
    },
    /// The provider's digest is of another revision than the cache's.
    Behind,
    /// Nothing to compare: the provider gave no digest.
    Unchecked,
}

fn compare(cache: &AppCodeCache, revision: Option<u64>, theirs: RevisionDigest) -> Verdict {
    if revision != Some(theirs.revision) {
        return Verdict::Behind;
    }
    let held = cache.codes_digest();
    if held == theirs.codes {
        Verdict::Same
    } else {
        Verdict::Differs {
            held,
            theirs: theirs.codes,
        }
    }
}

async fn next_change(changes: &mut Option<ChangeStream>) -> Option<Change> {
    match changes {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// How a sync caught the cache up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Snapshot,
    Delta,
}

/// A successful sync: how, how many codes or changes, and the provider's revision now held.
struct Synced {
    how: How,
    count: usize,
    revision: Option<u64>,
}

/// Catches the cache up with the provider: with the changes since `revision` when there is one
/// and the provider still has them, else with a full snapshot. Each provider call is bounded by
/// `limit`.
async fn sync(
    cache: &AppCodeCache,
    provider: &dyn AppCodeProvider,
    revision: Option<u64>,
    limit: Duration,
) -> Result<Synced, ProviderError> {
    if let Some(revision) = revision {
        // Changes the cache receives while the delta is in flight are replayed on top of it.
        let since = cache.write_epoch();
        match bounded(limit, "the changes", provider.changes_since(revision)).await? {
            Some(delta) => {
                let count = delta.changes.len();
                if cache.apply_delta_since(delta.changes, since) {
                    return Ok(Synced {
                        how: How::Delta,
                        count,
                        revision: Some(delta.revision),
                    });
                }
                tracing::debug!("the cache changed too often while the changes loaded; loading a snapshot");
            }
            None => tracing::info!(
                revision,
                "the provider no longer holds the changes since the cache's revision; loading a snapshot"
            ),
        }
    }
    // Changes the cache receives while the snapshot is in flight are replayed on top of it.
    let since = cache.write_epoch();
    let mut load = cache.load_snapshot();
    let revision = {
        let started = Instant::now();
        let progress = AtomicU64::new(0);
        let mut sink = |code, identity| {
            load.add(code, identity);
            progress.store(nanos_since(started), Ordering::Relaxed);
        };
        let call = provider.snapshot_into(&mut sink);
        while_progressing(limit, started, &progress, call).await?
    };
    // Read after the codes: an ACL that changed in between is newer here, and the changes
    // since the snapshot's revision bring it again. Applied before the codes, so the first
    // load never admits a request its app's ACL refuses.
    let acls = bounded(limit, "the app ACLs", provider.app_acls()).await?;
    if let Some(acls) = acls {
        if !cache.replace_app_acls_since(acls, since) {
            return Err(ProviderError::Unavailable(
                "the cache changed too often while the app ACLs loaded; loading again".into(),
            ));
        }
    }
    let quotas = bounded(limit, "the app quotas", provider.app_quotas()).await?;
    if let Some(quotas) = quotas {
        if !cache.replace_app_quotas_since(quotas, since) {
            return Err(ProviderError::Unavailable(
                "the cache changed too often while the app quotas loaded; loading again".into(),
            ));
        }
    }
    let keys = bounded(limit, "the app keys", provider.app_keys()).await?;
    if let Some(keys) = keys {
        if !cache.replace_app_keys_since(keys, since) {
            return Err(ProviderError::Unavailable(
                "the cache changed too often while the app keys loaded; loading again".into(),
            ));
        }
    }
    let count = load.count();
    if !load.finish() {
        return Err(ProviderError::Unavailable(
            "the cache changed too often while the snapshot loaded; loading again".into(),
        ));
    }
    Ok(Synced {
        how: How::Snapshot,
        count,
        revision,
    })
}

fn nanos_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `call` for as long as `progress` (when the last code came, in ns after `started`)
/// moves within `limit`: a snapshot of any size loads, one that stalls fails.
async fn while_progressing<T>(
    limit: Duration,
    started: Instant,
    progress: &AtomicU64,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let mut call = std::pin::pin!(call);
    loop {
        let last = started + Duration::from_nanos(progress.load(Ordering::Relaxed));
        tokio::select! {
            result = &mut call => return result,
            () = sleep_until(last + limit) => {
                let last = started + Duration::from_nanos(progress.load(Ordering::Relaxed));
                if last + limit <= Instant::now() {
                    return Err(ProviderError::Unavailable(
                        format!("the snapshot brought no code for {limit:?}").into(),
                    ));
                }
            }
        }
    }
}

async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    timeout(limit, call).await.map_err(|_| {
        ProviderError::Unavailable(format!("{what} took longer than {limit:?}").into())
    })?
}

/// Applies one change event to the cache.
pub(crate) fn apply(cache: &AppCodeCache, change: Change) {
    match change {
        Change::Upsert { code, identity } => {
            tracing::debug!(
                app_id = identity.app_id(),
                app_code_id = identity.app_code_id(),
                "AppCode upserted"
            );
            cache.upsert(&code, identity);
        }
        Change::Remove(code) => {
            cache.remove(&code);
        }
        Change::RemoveId(id) => {
            let n = cache.remove_by_id(&id);
            tracing::debug!(app_code_id = %id, removed = n, "AppCode removed");
        }
        Change::RemoveApp(app) => {
            let n = cache.remove_app(&app);
            tracing::debug!(app_id = %app, removed = n, "app's AppCodes removed");
        }
        Change::AppAcl { app_id, acl } => {
            tracing::debug!(app_id = %app_id, set = acl.is_some(), "app's ACL changed");
            match acl {
                Some(acl) => cache.set_app_acl(&app_id, acl),
                None => drop(cache.remove_app_acl(&app_id)),
            }
        }
        Change::AppQuota { app_id, quota } => {
            tracing::debug!(app_id = %app_id, set = quota.is_some(), "app's quota changed");
            match quota {
                Some(quota) => cache.set_app_quota(&app_id, quota),
                None => drop(cache.remove_app_quota(&app_id)),
            }
        }
        Change::AppKey { app_id, key } => {
            // The app and whether it has a key; never the key's secret.
            tracing::debug!(app_id = %app_id, set = key.is_some(), "app's signing key changed");
            match key {
                Some(key) => cache.set_app_key(&app_id, key),
                None => drop(cache.remove_app_key(&app_id)),
            }
        }
        Change::Resync | Change::Reload => return,
    }
    Counters::add(&cache.counters().changes_applied);
}

#[cfg(test)]
#[path = "refresher_tests.rs"]
mod tests;
