//! App quotas counted call by call in shared counts
//! (`AppCodeAuthLayerBuilder::count_each_quota_call`): nodes admit exactly the quota between
//! them, a call known to be over it costs no round trip, shared counts that fail or stall give
//! way to the node's own count, and a request that goes away gives its call back.
//!
//! The shared counts here are in memory, with [`SharedCount::add`]'s rule, so that failures and
//! stalls can be staged; `redis_limits.rs` runs the same mode against Redis.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::{Duration, UNIX_EPOCH};

use apig_appcode::provider::{BoxError, BoxFuture};
use apig_appcode::quota::{AppQuota, QuotaCount, SharedCount, SharedQuotaCounts, TimeUnit};
use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

const ANSWER: u8 = 0;
const FAIL: u8 = 1;
const STALL: u8 = 2;

/// Counts shared by the nodes of a test, answering, failing or stalling as told.
#[derive(Default)]
struct Counts {
    held: Mutex<HashMap<String, SharedCount>>,
    asked: AtomicUsize,
    mode: AtomicU8,
}

impl Counts {
    fn calls(&self, app: &str) -> u64 {
        self.held.lock().unwrap().get(app).map_or(0, |c| c.calls)
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct Shared(Arc<Counts>);

impl SharedQuotaCounts for Shared {
    fn add(&self, counts: Vec<QuotaCount>) -> BoxFuture<'_, Result<Vec<SharedCount>, BoxError>> {
        self.0.asked.fetch_add(1, Ordering::SeqCst);
        match self.0.mode.load(Ordering::SeqCst) {
            FAIL => return Box::pin(async { Err("the shared counts are down".into()) }),
            STALL => return Box::pin(std::future::pending()),
            _ => {}
        }
        let mut held = self.0.held.lock().unwrap();
        let totals = counts
            .iter()
            .map(|count| {
                let total = SharedCount::add(held.get(&count.app_id).copied(), count);
                held.insert(count.app_id.clone(), total);
                total
            })
            .collect();
        Box::pin(async move {
            // A round trip: the other node's calls go on meanwhile.
            tokio::task::yield_now().await;
            Ok(totals)
        })
    }
}

/// Fresh shared counts (answering) and the AppCode of `app-1`: where every case starts.
fn shared_and_code() -> (Shared, AppCode) {
    (Shared(Arc::default()), AppCode::generate())
}

type Svc = tower::util::BoxCloneService<Request<()>, Response<Bytes>, Infallible>;

/// A node counting each call of `app-1` (quota `limit` a day) in `shared`, deadline `timeout`.
fn node(shared: &Shared, code: &AppCode, limit: u64, timeout: Duration) -> (AppCodeAuthLayer, Svc) {
    let cache = AppCodeCache::new();
    cache.replace_all([(code.clone(), AppIdentity::new("app-1", "code-1"))]);
    let quota = AppQuota::new(limit, TimeUnit::Day, 1)
        .unwrap()
        .reset_time(UNIX_EPOCH);
    cache.set_app_quota("app-1", Arc::new(quota));
    let layer = AppCodeAuthLayer::builder()
        .cache(cache)
        .shared_quota_counts(shared.clone())
        .count_each_quota_call(timeout)
        .build();
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Bytes::new()))
        }));
    (layer, tower::util::BoxCloneService::new(svc))
}

fn ask(code: &AppCode, debug: bool) -> Request<()> {
    let mut req = Request::builder().header("x-apig-appcode", code.expose());
    if debug {
        req = req.header("x-apig-mode", "debug");
    }
    req.body(()).unwrap()
}

async fn status(svc: &Svc, code: &AppCode) -> StatusCode {
    svc.clone()
        .oneshot(ask(code, false))
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_admit_exactly_the_quota_between_them() {
    let (shared, code) = shared_and_code();
    let a = node(&shared, &code, 50, Duration::from_secs(5));
    let b = node(&shared, &code, 50, Duration::from_secs(5));
    // Twice the quota, all at once, half on each node.
    let calls: Vec<_> = (0..100)
        .map(|n| {
            let svc = if n % 2 == 0 { a.1.clone() } else { b.1.clone() };
            let req = ask(&code, false);
            tokio::spawn(async move { svc.oneshot(req).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for call in calls {
        let res = call.await.unwrap();
        match res.status() {
            StatusCode::OK => admitted += 1,
            StatusCode::METHOD_NOT_ALLOWED => assert!(res.headers().contains_key("retry-after")),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 50);
    assert_eq!(a.0.quota_count_fallbacks() + b.0.quota_count_fallbacks(), 0);
    // Nothing waits to be flushed: every call went to the shared counts at once.
    assert_eq!(a.0.cache().quota_calls_unflushed(), 0);
}

#[tokio::test]
async fn the_debug_header_shows_what_the_cluster_left() {
    let (shared, code) = shared_and_code();
    let (_, a) = node(&shared, &code, 5, Duration::from_secs(5));
    let (_, b) = node(&shared, &code, 5, Duration::from_secs(5));
    for _ in 0..3 {
        assert_eq!(status(&a, &code).await, StatusCode::OK);
    }
    let res = b.clone().oneshot(ask(&code, true)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["x-apig-quota-app"],
        "remain:1,limit:5,time:1 day"
    );
}

#[tokio::test]
async fn a_call_known_to_be_over_the_quota_is_refused_without_asking() {
    let (shared, code) = shared_and_code();
    let (_, svc) = node(&shared, &code, 2, Duration::from_secs(5));
    assert_eq!(status(&svc, &code).await, StatusCode::OK);
    assert_eq!(status(&svc, &code).await, StatusCode::OK);
    assert_eq!(shared.0.asked(), 2);
    // The last answer said the window is used up: the node refuses on its own from now on.
    for _ in 0..10 {
        assert_eq!(status(&svc, &code).await, StatusCode::METHOD_NOT_ALLOWED);
    }
    assert_eq!(
        shared.0.asked(),
        2,
        "a refused flood went to the shared counts"
    );
    assert_eq!(shared.0.calls("app-1"), 2);
}

#[tokio::test(start_paused = true)]
async fn failing_shared_counts_give_way_to_the_nodes_own_count_then_get_its_calls() {
    let (shared, code) = shared_and_code();
    let (layer, svc) = node(&shared, &code, 3, Duration::from_millis(50));
    shared.0.set(FAIL);
    // Let through on the node's own count, which still holds the quota.
    for _ in 0..3 {
        assert_eq!(status(&svc, &code).await, StatusCode::OK);
    }
    assert_eq!(status(&svc, &code).await, StatusCode::METHOD_NOT_ALLOWED);
    assert!(layer.quota_count_fallbacks() >= 1);
    // The breaker keeps later calls from asking: one ask, then one flush attempt at most.
    assert!(shared.0.asked() <= 2, "asked {} times", shared.0.asked());
    assert_eq!(layer.cache().quota_calls_unflushed(), 3);
    // Once the counts answer again, the flusher adds what the node counted alone.
    shared.0.set(ANSWER);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(shared.0.calls("app-1"), 3);
    assert_eq!(layer.cache().quota_calls_unflushed(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_ask_is_given_up_at_its_deadline() {
    let (shared, code) = shared_and_code();
    let (layer, svc) = node(&shared, &code, 10, Duration::from_millis(50));
    shared.0.set(STALL);
    let started = tokio::time::Instant::now();
    assert_eq!(status(&svc, &code).await, StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(layer.quota_count_fallbacks(), 1);
    // While the breaker is open, calls are counted here without waiting.
    let started = tokio::time::Instant::now();
    assert_eq!(status(&svc, &code).await, StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn a_request_that_goes_away_while_asked_gives_its_call_back() {
    let (shared, code) = shared_and_code();
    let (layer, mut svc) = node(&shared, &code, 1, Duration::from_secs(3600));
    shared.0.set(STALL);
    let mut pending = Box::pin(
        std::future::poll_fn(|cx| svc.poll_ready(cx))
            .await
            .map(|()| svc.call(ask(&code, false)))
            .unwrap(),
    );
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(pending.as_mut().poll(&mut cx).is_pending());
    assert_eq!(shared.0.asked(), 1);
    // The client hangs up: the one call of the quota is free again.
    drop(pending);
    shared.0.set(ANSWER);
    drop(layer);
    assert_eq!(status(&svc, &code).await, StatusCode::OK);
    assert_eq!(status(&svc, &code).await, StatusCode::METHOD_NOT_ALLOWED);
}
