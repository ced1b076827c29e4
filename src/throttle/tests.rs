//! The throttle with tokio's clock paused: bursts, refills, overrides and separate apps.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};

use super::{Quota, ThrottleLayer};
use crate::AppIdentity;

type Svc = tower::util::BoxCloneService<Request<()>, Response<Bytes>, Infallible>;

fn service(layer: ThrottleLayer) -> Svc {
    tower::util::BoxCloneService::new(ServiceBuilder::new().layer(layer).service(service_fn(
        |_: Request<()>| async { Ok::<_, Infallible>(Response::new(Bytes::from_static(b"ok"))) },
    )))
}

fn request(app: Option<&str>) -> Request<()> {
    let mut req = Request::builder()
        .header("x-request-id", "req-1")
        .body(())
        .unwrap();
    if let Some(app) = app {
        req.extensions_mut()
            .insert(AppIdentity::new(app, format!("{app}-code")));
    }
    req
}

async fn send(svc: &mut Svc, req: Request<()>) -> Response<Bytes> {
    svc.ready().await.unwrap().call(req).await.unwrap()
}

async fn status(svc: &mut Svc, app: &str) -> StatusCode {
    send(svc, request(Some(app))).await.status()
}

/// What the throttle answers past an app's limit.
const THROTTLED: StatusCode = StatusCode::TOO_MANY_REQUESTS;

/// Sends `n` calls of `app`, each let through, then one more, throttled: `app` had exactly `n`
/// calls of room.
async fn burst(svc: &mut Svc, app: &str, n: usize) {
    for call in 0..n {
        assert_eq!(
            status(svc, app).await,
            StatusCode::OK,
            "call {call} of {app}"
        );
    }
    assert_eq!(status(svc, app).await, THROTTLED, "call {n} of {app}");
}

fn per_second(n: u32) -> Quota {
    Quota::per_second(n).unwrap()
}

#[tokio::test(start_paused = true)]
async fn burst_then_429_apig_0308_with_retry_after() {
    let layer = ThrottleLayer::new(per_second(2));
    let mut svc = service(layer.clone());
    assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
    assert_eq!(status(&mut svc, "a").await, StatusCode::OK);

    let res = send(&mut svc, request(Some("a"))).await;
    assert_eq!(res.status(), THROTTLED);
    let h = res.headers();
    assert_eq!(h["retry-after"], "1", "0.5 s rounded up");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-request-id"], "req-1");
    let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "error_code": "APIG.0308",
            "error_msg": "The throttling threshold has been reached",
            "request_id": "req-1",
        })
    );
    assert_eq!(layer.throttled(), 1);
}

#[tokio::test(start_paused = true)]
async fn room_comes_back_one_interval_at_a_time() {
    let mut svc = service(ThrottleLayer::new(per_second(2)));
    burst(&mut svc, "a", 2).await;
    tokio::time::advance(Duration::from_millis(499)).await;
    assert_eq!(status(&mut svc, "a").await, THROTTLED);
    tokio::time::advance(Duration::from_millis(1)).await;
    burst(&mut svc, "a", 1).await;
    // A whole period refills the whole burst, and no more.
    tokio::time::advance(Duration::from_secs(10)).await;
    burst(&mut svc, "a", 2).await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_counts_whole_seconds_up() {
    let mut svc = service(ThrottleLayer::new("1/m".parse().unwrap()));
    assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
    tokio::time::advance(Duration::from_millis(10_500)).await;
    let res = send(&mut svc, request(Some("a"))).await;
    assert_eq!(res.status(), THROTTLED);
    assert_eq!(res.headers()["retry-after"], "50", "49.5 s rounded up");
}

#[tokio::test(start_paused = true)]
async fn an_app_override_beats_the_default() {
    let layer = ThrottleLayer::builder()
        .default_limit(per_second(1))
        .app_limit("vip", per_second(5))
        .app_limit("slow", Quota::new(1, Duration::from_secs(60)).unwrap())
        .build();
    let mut svc = service(layer);
    burst(&mut svc, "vip", 5).await;
    burst(&mut svc, "other", 1).await;
    assert_eq!(status(&mut svc, "slow").await, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(status(&mut svc, "other").await, StatusCode::OK);
    assert_eq!(status(&mut svc, "slow").await, THROTTLED);
}

#[tokio::test(start_paused = true)]
async fn apps_are_independent_and_clones_share_state() {
    let layer = ThrottleLayer::new(per_second(1));
    let mut one = service(layer.clone());
    let mut two = service(layer.clone());
    assert_eq!(status(&mut one, "a").await, StatusCode::OK);
    assert_eq!(status(&mut one, "b").await, StatusCode::OK);
    // Another service from the same layer (another worker) sees a's spent quota.
    assert_eq!(status(&mut two, "a").await, THROTTLED);
    assert_eq!(status(&mut two, "c").await, StatusCode::OK);
    assert_eq!(layer.throttled(), 1);
}

#[tokio::test(start_paused = true)]
async fn only_overridden_apps_are_limited_without_a_default() {
    let layer = ThrottleLayer::builder()
        .app_limit("limited", per_second(1))
        .build();
    let mut svc = service(layer);
    for _ in 0..10 {
        assert_eq!(status(&mut svc, "free").await, StatusCode::OK);
    }
    burst(&mut svc, "limited", 1).await;
}

#[tokio::test(start_paused = true)]
async fn requests_without_an_identity_pass_through() {
    let layer = ThrottleLayer::new(per_second(1));
    let mut svc = service(layer.clone());
    for _ in 0..5 {
        let res = send(&mut svc, request(None)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(layer.throttled(), 0);
}

#[tokio::test(start_paused = true)]
async fn behind_the_appcode_layer_it_keys_on_the_verified_app() -> Result<(), BoxError> {
    use crate::provider::StaticProvider;
    use crate::{AppCode, AppCodeAuthLayer};

    let (c1, c2) = (AppCode::generate(), AppCode::generate());
    let auth = AppCodeAuthLayer::builder()
        .provider(
            StaticProvider::builder()
                .app_code("app-1", "code-1", c1.clone())
                .app_code("app-1", "code-2", c2.clone())
                .build(),
        )
        .build();
    auth.cache().loaded().await;
    let mut svc = ServiceBuilder::new()
        .layer(auth)
        .layer(ThrottleLayer::new(per_second(1)))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Bytes::new()))
        }));
    let with = |code: &AppCode| {
        Request::builder()
            .header("x-apig-appcode", code.to_header_value())
            .body(())
            .unwrap()
    };
    let first = svc.ready().await?.call(with(&c1)).await?;
    assert_eq!(first.status(), StatusCode::OK);
    // Another AppCode of the same app shares the app's quota.
    let second = svc.ready().await?.call(with(&c2)).await?;
    assert_eq!(second.status(), THROTTLED);
    // An unauthenticated request is refused by the AppCode layer before it is counted.
    let anon = svc.ready().await?.call(Request::new(())).await?;
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

/// A debug request (`X-Apig-Mode: debug`) of `app`.
fn debug_request(app: &str) -> Request<()> {
    let mut req = request(Some(app));
    req.headers_mut()
        .insert("x-apig-mode", http::HeaderValue::from_static("debug"));
    req
}

async fn rate_header(svc: &mut Svc, req: Request<()>) -> (StatusCode, Option<String>) {
    let res = send(svc, req).await;
    let header = res
        .headers()
        .get("x-apig-ratelimit-app")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), header)
}

#[tokio::test(start_paused = true)]
async fn a_debug_request_sees_its_apps_rate_limit() {
    let mut svc = service(ThrottleLayer::new(
        Quota::new(3, Duration::from_secs(60)).unwrap(),
    ));
    let seen = |left: u64| Some(format!("remain:{left},limit:3,time:1 minute"));
    assert_eq!(
        rate_header(&mut svc, debug_request("a")).await,
        (StatusCode::OK, seen(2))
    );
    // Without debug mode, no header; the request still counts.
    assert_eq!(
        rate_header(&mut svc, request(Some("a"))).await,
        (StatusCode::OK, None)
    );
    assert_eq!(
        rate_header(&mut svc, debug_request("a")).await,
        (StatusCode::OK, seen(0))
    );
    assert_eq!(
        rate_header(&mut svc, debug_request("a")).await,
        (THROTTLED, seen(0))
    );
    // An app without a limit gets none.
    let mut open = service(
        ThrottleLayer::builder()
            .app_limit("b", per_second(1))
            .build(),
    );
    assert_eq!(
        rate_header(&mut open, debug_request("a")).await,
        (StatusCode::OK, None)
    );
}

mod with_a_store {
    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::throttle::{RateCheck, RateStore, RateStoreError, STORE_RETRY};

    const PASS: u8 = 0;
    const THROTTLE: u8 = 1;
    const FAIL: u8 = 2;
    const HANG: u8 = 3;

    /// A store told what to answer, counting its calls.
    #[derive(Debug, Default)]
    struct Fake {
        mode: AtomicU8,
        calls: AtomicUsize,
        /// Requests it admits without a call.
        held: AtomicUsize,
    }

    #[derive(Debug, Clone)]
    struct Store(Arc<Fake>);

    impl RateStore for Store {
        fn admit_held(&self, _app_id: &str) -> Option<u64> {
            let held = &self.0.held;
            held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .ok()
                .map(|before| (before - 1) as u64)
        }

        fn check(&self, _app_id: &str, _quota: &Quota) -> RateCheck {
            self.0.calls.fetch_add(1, Ordering::SeqCst);
            match self.0.mode.load(Ordering::SeqCst) {
                PASS => Box::pin(std::future::ready(Ok(Ok(7)))),
                THROTTLE => Box::pin(std::future::ready(Ok(Err(Duration::from_millis(1500))))),
                FAIL => Box::pin(std::future::ready(Err(RateStoreError::new("down")))),
                _ => Box::pin(std::future::pending()),
            }
        }
    }

    fn setup(quota: Quota) -> (Arc<Fake>, ThrottleLayer, Svc) {
        let fake = Arc::new(Fake::default());
        let layer = ThrottleLayer::builder()
            .default_limit(quota)
            .store(Store(Arc::clone(&fake)))
            .store_timeout(Duration::from_millis(50))
            .build();
        let svc = service(layer.clone());
        (fake, layer, svc)
    }

    #[tokio::test(start_paused = true)]
    async fn a_debug_request_sees_what_the_store_says_is_left() {
        let (_, _, mut svc) = setup(per_second(10));
        let (status, header) = super::rate_header(&mut svc, super::debug_request("a")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header.as_deref(), Some("remain:7,limit:10,time:1 second"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_store_decides_while_it_answers() {
        let (fake, layer, mut svc) = setup(per_second(1));
        assert!(layer.has_store());
        // The local limit (1/s) would refuse the second: the store's verdict wins.
        for _ in 0..5 {
            assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
        }
        fake.mode.store(THROTTLE, Ordering::SeqCst);
        let res = send(&mut svc, request(Some("a"))).await;
        assert_eq!(res.status(), THROTTLED);
        assert_eq!(res.headers()["retry-after"], "2", "1.5 s rounded up");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 6);
        assert_eq!((layer.throttled(), layer.store_fallbacks()), (1, 0));
        // A request that is not limited does not reach the store.
        let res = send(&mut svc, request(None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_store_gives_the_local_limit_then_one_probe_brings_it_back() {
        let (fake, layer, mut svc) = setup(per_second(2));
        fake.mode.store(FAIL, Ordering::SeqCst);
        assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
        // The breaker is open: no more calls, the local limit (burst 2) holds.
        assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
        assert_eq!(status(&mut svc, "a").await, THROTTLED);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert_eq!(layer.store_fallbacks(), 3);

        // Still failing after the pause: one probe, then local again.
        tokio::time::advance(STORE_RETRY).await;
        assert_eq!(status(&mut svc, "b").await, StatusCode::OK);
        assert_eq!(status(&mut svc, "b").await, StatusCode::OK);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

        fake.mode.store(PASS, Ordering::SeqCst);
        tokio::time::advance(STORE_RETRY).await;
        for _ in 0..4 {
            assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
        }
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            6,
            "every request asks again"
        );
        assert_eq!(layer.store_fallbacks(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_past_its_deadline_is_given_up_for_the_local_limit() {
        let (fake, layer, mut svc) = setup(per_second(1));
        fake.mode.store(HANG, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::from_millis(50), "the deadline");
        assert_eq!(status(&mut svc, "a").await, THROTTLED);
        assert_eq!(layer.store_fallbacks(), 2);
        let latency = layer.store_latency().unwrap();
        assert_eq!(latency.buckets.iter().sum::<u64>(), 1);
        assert_eq!(latency.sum_ns, 50_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn room_the_store_holds_admits_at_once_even_while_it_fails() {
        let (fake, layer, mut svc) = setup(per_second(1));
        fake.mode.store(FAIL, Ordering::SeqCst);
        fake.held.store(2, Ordering::SeqCst);
        for _ in 0..2 {
            assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
        assert_eq!(layer.store_fallbacks(), 0);
        assert!(layer
            .store_latency()
            .unwrap()
            .buckets
            .iter()
            .all(|&n| n == 0));
        // Used up: the store is asked, fails, and the local limit answers.
        assert_eq!(status(&mut svc, "a").await, StatusCode::OK);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert_eq!(layer.store_fallbacks(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_inner_service_runs_only_for_admitted_requests() {
        let fake = Arc::new(Fake::default());
        let layer = ThrottleLayer::builder()
            .default_limit(per_second(1))
            .store(Store(Arc::clone(&fake)))
            .build();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let mut svc =
            ServiceBuilder::new()
                .layer(layer)
                .service(service_fn(move |_: Request<()>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, Infallible>(Response::new(Bytes::new())) }
                }));
        let mut send = async |mode: u8| {
            fake.mode.store(mode, Ordering::SeqCst);
            let req = request(Some("a"));
            svc.ready().await.unwrap().call(req).await.unwrap().status()
        };
        assert_eq!(send(PASS).await, StatusCode::OK);
        assert_eq!(send(THROTTLE).await, THROTTLED);
        assert_eq!(send(PASS).await, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
