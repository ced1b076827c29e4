//! The background task that keeps a cache in step with its provider.
//!
//! It loads a snapshot at start (retrying with backoff until one succeeds), reloads on every
//! refresh interval and on [`Change::Resync`], applies change events in the order they arrive,
//! and on provider failure keeps the last good snapshot. Once that snapshot is older than the
//! maximum staleness, the cache turns [`CacheStatus::StaleClosed`] (requests get 503) or
//! [`CacheStatus::StaleServing`] if configured to keep serving; the next good load makes it
//! fresh again.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

use crate::cache::{AppCodeCache, CacheStatus};
use crate::metrics::Counters;
use crate::provider::{AppCodeProvider, Change, ChangeStream, ProviderError};

/// How the refresher behaves.
#[derive(Debug, Clone)]
pub(crate) struct RefreshPolicy {
    pub(crate) interval: Duration,
    pub(crate) max_staleness: Option<Duration>,
    pub(crate) serve_stale: bool,
    pub(crate) load_timeout: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            max_staleness: Some(Duration::from_secs(300)),
            serve_stale: false,
            load_timeout: Duration::from_secs(30),
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

async fn run(cache: AppCodeCache, provider: Arc<dyn AppCodeProvider>, policy: RefreshPolicy) {
    let mut changes: Option<ChangeStream> = provider.changes();
    let mut next_load = Instant::now();
    let mut retry = FIRST_RETRY;
    let mut last_good: Option<Instant> = None;
    loop {
        let stale_at = match (last_good, policy.max_staleness) {
            (Some(at), Some(max)) if cache.status() == CacheStatus::Fresh => Some(at + max),
            _ => None,
        };
        tokio::select! {
            biased;
            () = sleep_until(next_load) => {
                match load(&cache, &*provider, policy.load_timeout).await {
                    Ok(n) => {
                        tracing::debug!(codes = n, "AppCode snapshot loaded");
                        last_good = Some(Instant::now());
                        retry = FIRST_RETRY;
                        next_load = Instant::now() + policy.interval;
                    }
                    Err(e) => {
                        Counters::add(&cache.counters().provider_errors);
                        tracing::warn!(error = %e, retry_in = ?retry, "AppCode snapshot failed; keeping the last good set");
                        next_load = Instant::now() + retry;
                        retry = (retry * 2).min(policy.interval.max(FIRST_RETRY));
                    }
                }
            }
            () = async { sleep_until(stale_at.expect("guarded")).await }, if stale_at.is_some() => {
                let status = if policy.serve_stale { CacheStatus::StaleServing } else { CacheStatus::StaleClosed };
                tracing::warn!(?status, "AppCode snapshot is older than the maximum staleness");
                cache.set_status(status);
            }
            change = next_change(&mut changes), if changes.is_some() => match change {
                Some(Change::Resync) => next_load = Instant::now(),
                Some(change) => apply(&cache, change),
                None => {
                    tracing::warn!("AppCode change stream ended; relying on periodic refresh");
                    changes = None;
                }
            },
        }
    }
}

async fn next_change(changes: &mut Option<ChangeStream>) -> Option<Change> {
    match changes {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn load(
    cache: &AppCodeCache,
    provider: &dyn AppCodeProvider,
    limit: Duration,
) -> Result<usize, ProviderError> {
    let snapshot = timeout(limit, provider.snapshot())
        .await
        .map_err(|_| ProviderError::Unavailable(format!("snapshot took longer than {limit:?}").into()))??;
    let n = snapshot.len();
    cache.replace_all(snapshot);
    Ok(n)
}

/// Applies one change event to the cache.
pub(crate) fn apply(cache: &AppCodeCache, change: Change) {
    match change {
        Change::Upsert { code, identity } => {
            tracing::debug!(app_id = identity.app_id(), app_code_id = identity.app_code_id(), "AppCode upserted");
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
        Change::Resync => return,
    }
    Counters::add(&cache.counters().changes_applied);
}
