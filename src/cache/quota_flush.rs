//! The task that adds this node's quota counts to the counts its provider shares between
//! nodes, and brings back what every node counted.
//!
//! Calls are counted in memory on the request path, which never waits on the store. The task
//! sleeps until a call is counted, then sends every count not yet sent in one batch, at most
//! once per [`FLUSH_INTERVAL`]; at once when an app is counted here for the first time (a node
//! that just started, or an app just bound, learns the cluster's count quickly) or comes within
//! the last tenth of its limit (then as often as the store answers, until the limit refuses
//! calls). A node refuses from the shared total plus its own calls not yet added: beyond the
//! limit, the cluster admits at most what each node lets through while its last flush is on
//! its way. While nothing is counted, the task costs nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

use super::AppCodeCache;
use crate::provider::{AppCodeProvider, BoxError, BoxFuture};
use crate::quota::{QuotaCount, SharedCount, SharedQuotaCounts};

/// How often, at most, a node adds its counts to the shared ones.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The longest one addition may take before it counts as failed (its calls are sent again).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Apps per addition: one transaction stays short whatever the number of busy apps.
const MAX_APPS_PER_FLUSH: usize = 1_000;

/// Aborts the task when the last layer holding it is dropped.
#[derive(Debug)]
pub(crate) struct FlusherHandle(JoinHandle<()>);

impl Drop for FlusherHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A provider that shares quota counts, as the place to share them.
pub(crate) struct ThroughProvider(pub(crate) Arc<dyn AppCodeProvider>);

impl SharedQuotaCounts for ThroughProvider {
    fn add(&self, counts: Vec<QuotaCount>) -> BoxFuture<'_, Result<Vec<SharedCount>, BoxError>> {
        Box::pin(async move { Ok(self.0.add_quota_counts(counts).await?) })
    }
}

/// Starts sharing `cache`'s quota counts in `shared`.
pub(crate) fn spawn(cache: &AppCodeCache, shared: Arc<dyn SharedQuotaCounts>) -> FlusherHandle {
    cache.inner.quota_counts.share();
    FlusherHandle(tokio::spawn(run(cache.clone(), shared)))
}

async fn run(cache: AppCodeCache, provider: Arc<dyn SharedQuotaCounts>) {
    let counts = &cache.inner.quota_counts;
    let mut failing = false;
    loop {
        counts.unflushed().await;
        if failing {
            // A store that fails is asked once an interval, however urgent the counts.
            sleep(FLUSH_INTERVAL).await;
        } else {
            tokio::select! {
                () = sleep(FLUSH_INTERVAL) => {}
                () = counts.urgent() => {}
            }
        }
        loop {
            let sent = counts.take_unflushed(MAX_APPS_PER_FLUSH);
            if sent.is_empty() {
                break;
            }
            let more = sent.len() == MAX_APPS_PER_FLUSH;
            let answer = timeout(FLUSH_TIMEOUT, provider.add(sent.clone())).await;
            let error = match answer {
                Ok(Ok(shared)) if shared.len() == sent.len() => {
                    counts.settle(&sent, Some(&shared));
                    None
                }
                Ok(Ok(shared)) => Some(format!(
                    "the shared counts answered {} counts for {}",
                    shared.len(),
                    sent.len()
                )),
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {FLUSH_TIMEOUT:?}")),
            };
            match error {
                None if failing => {
                    failing = false;
                    tracing::info!("app quota counts are shared again");
                }
                None => {}
                Some(error) => {
                    counts.settle(&sent, None);
                    // Once per outage: the next tries follow every interval.
                    if !failing {
                        tracing::warn!(
                            %error,
                            "app quota counts could not be shared; each node counts its own \
                             calls until the store answers"
                        );
                    }
                    failing = true;
                    break;
                }
            }
            if !more {
                break;
            }
        }
    }
}

#[cfg(all(test, feature = "store"))]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::cache::Charge;
    use crate::provider::ProviderError;
    use crate::quota::{AppQuota, TimeUnit};
    use crate::store::{MemoryStore, Store, StoreProvider};

    /// A node: its own cache, sharing counts through `store`.
    fn node(store: &Arc<MemoryStore>) -> (AppCodeCache, FlusherHandle) {
        let store: Arc<dyn Store> = Arc::clone(store) as Arc<dyn Store>;
        let provider: Arc<dyn AppCodeProvider> = Arc::new(StoreProvider::new(store, "i1"));
        assert!(provider.shares_quota_counts());
        let cache = AppCodeCache::new();
        let flusher = spawn(&cache, Arc::new(ThroughProvider(provider)));
        (cache, flusher)
    }

    /// Whether a call of `app` now is admitted under its quota.
    fn admits(cache: &AppCodeCache, app: &str) -> bool {
        match cache.charge_quota(app) {
            Charge::Counted { .. } => true,
            Charge::UsedUp { .. } => false,
            Charge::NoQuota => panic!("{app} has no quota"),
        }
    }

    async fn flushed(cache: &AppCodeCache) {
        while cache.quota_calls_unflushed() > 0 {
            sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_nodes_share_one_quota_through_the_store() {
        let store = Arc::new(MemoryStore::new());
        let (a, _a) = node(&store);
        let (b, _b) = node(&store);
        let quota = Arc::new(
            AppQuota::new(10, TimeUnit::Day, 1)
                .unwrap()
                .reset_time(UNIX_EPOCH),
        );
        a.set_app_quota("app", Arc::clone(&quota));
        b.set_app_quota("app", quota);

        for _ in 0..6 {
            assert!(admits(&a, "app"));
        }
        assert_eq!(a.quota_calls_unflushed(), 6);
        flushed(&a).await;
        // B's first call is admitted on its own count, then B learns A's six.
        assert!(admits(&b, "app"));
        flushed(&b).await;
        for _ in 0..3 {
            assert!(admits(&b, "app"));
        }
        assert!(!admits(&b, "app"), "B admitted past the shared limit");
        flushed(&b).await;
        // A still counts 6: its next call is admitted (the bound: what a node admits in one
        // interval), and its flush brings B's calls back.
        assert!(admits(&a, "app"));
        flushed(&a).await;
        assert!(!admits(&a, "app"), "A did not learn B's calls");
        let shared = store
            .add_quota_counts(
                "i1",
                &[crate::quota::QuotaCount {
                    app_id: "app".into(),
                    first_call: 0,
                    window_start: a_window(),
                    window_end: a_window() + 86_400,
                    calls: 0,
                }],
            )
            .await
            .unwrap();
        assert_eq!(shared[0].calls, 11);
    }

    /// The start of today's window of a daily quota anchored at the epoch.
    fn a_window() -> i64 {
        let now = crate::quota::secs(std::time::SystemTime::now());
        now - now.rem_euclid(86_400)
    }

    /// A provider whose shared counts always fail, counting the attempts.
    #[derive(Default)]
    struct Failing(std::sync::atomic::AtomicUsize);

    impl AppCodeProvider for Failing {
        fn snapshot(
            &self,
        ) -> crate::provider::BoxFuture<'_, Result<crate::provider::Snapshot, ProviderError>>
        {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn shares_quota_counts(&self) -> bool {
            true
        }

        fn add_quota_counts(
            &self,
            _: Vec<crate::quota::QuotaCount>,
        ) -> crate::provider::BoxFuture<'_, Result<Vec<crate::quota::SharedCount>, ProviderError>>
        {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(async { Err(ProviderError::Unavailable("store down".into())) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_store_is_asked_once_an_interval_however_urgent_the_counts() {
        let failing = Arc::new(Failing::default());
        let provider: Arc<dyn AppCodeProvider> = Arc::clone(&failing) as _;
        let cache = AppCodeCache::new();
        let _flusher = spawn(&cache, Arc::new(ThroughProvider(provider)));
        let quota = Arc::new(
            AppQuota::new(10, TimeUnit::Day, 1)
                .unwrap()
                .reset_time(UNIX_EPOCH),
        );
        // Fifty apps' first calls over half a second: each would have the counts read at once.
        for n in 0..50 {
            let app = format!("app-{n}");
            cache.set_app_quota(&app, Arc::clone(&quota));
            assert!(admits(&cache, &app));
            sleep(Duration::from_millis(10)).await;
        }
        let attempts = failing.0.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (1..=2).contains(&attempts),
            "{attempts} attempts in half a second"
        );
        // The calls wait to be sent, counted here meanwhile.
        assert_eq!(cache.quota_calls_unflushed(), 50);
    }

    /// Shared counts that never answer, counting the attempts.
    #[derive(Default)]
    struct Stalling(std::sync::atomic::AtomicUsize);

    impl SharedQuotaCounts for Stalling {
        fn add(&self, _: Vec<QuotaCount>) -> BoxFuture<'_, Result<Vec<SharedCount>, BoxError>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_stalls_is_given_up_and_asked_again_while_calls_go_on() {
        let stalling = Arc::new(Stalling::default());
        let cache = AppCodeCache::new();
        let _flusher = spawn(&cache, Arc::clone(&stalling) as Arc<dyn SharedQuotaCounts>);
        let quota = Arc::new(
            AppQuota::new(10, TimeUnit::Day, 1)
                .unwrap()
                .reset_time(UNIX_EPOCH),
        );
        cache.set_app_quota("app", quota);
        assert!(admits(&cache, "app"));
        // Asked at once, given up after FLUSH_TIMEOUT, asked again an interval later, ...
        sleep(Duration::from_secs(12)).await;
        let attempts = stalling.0.load(std::sync::atomic::Ordering::Relaxed);
        assert!((2..=3).contains(&attempts), "{attempts} attempts in 12 s");
        // The call waits to be sent; the request path never waits on the store.
        assert_eq!(cache.quota_calls_unflushed(), 1);
        assert!(admits(&cache, "app"));
    }
}
