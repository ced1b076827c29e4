//! Rate limits shared through Redis (`--rate-limit-store redis://…`): throttles on separate
//! connections, and `serve` nodes, hold one limit between them; local and Redis counting answer
//! alike; a Redis cut off mid-run gives the local limit, never a 5xx, and is used again once it
//! is back; a password in the URL never shows.
//!
//! Needs `APIG_TEST_REDIS_URL=redis://...` (and `APIG_TEST_DATABASE_URL` for the test of two
//! nodes on one database). Limits are per hour, so no room comes back while a test runs: counts
//! are exact, and nothing depends on how fast the machine is.
//! Run: `cargo test --features gateway --test redis_limits`.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/postgres.rs"]
mod pg;
#[path = "support/redis.rs"]
mod redis_support;
#[path = "redis_limits/serve.rs"]
mod serve;

use std::convert::Infallible;

use apig_appcode::quota::{AppQuota, QuotaCount, SharedCount, SharedQuotaCounts, TimeUnit};
use apig_appcode::throttle::{Quota, RedisRateStore, RedisUrl, ThrottleLayer};
use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity};
use binary::{admitted_until_refused, wait_until, PROPAGATION_TIMEOUT};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use redis_support::TestRedis;
use tower::util::BoxCloneService;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

type Svc = BoxCloneService<Request<()>, Response<Bytes>, Infallible>;

fn service(layer: ThrottleLayer) -> Svc {
    BoxCloneService::new(ServiceBuilder::new().layer(layer).service(service_fn(
        |_: Request<()>| async { Ok::<_, Infallible>(Response::new(Bytes::new())) },
    )))
}

/// Status and `Retry-After` of one request of `app`.
async fn call(svc: &mut Svc, app: &str) -> (StatusCode, Option<String>) {
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(AppIdentity::new(app, format!("{app}-code")));
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), retry_after)
}

/// A store on the test Redis, its keys under the test's prefix.
async fn redis_store(redis: &TestRedis) -> RedisRateStore {
    let url = RedisUrl::parse(&redis.url).unwrap();
    RedisRateStore::connect(&url, &redis.prefix).await.unwrap()
}

async fn redis_layer(redis: &TestRedis, quota: Quota) -> ThrottleLayer {
    limited(redis_store(redis).await, quota)
}

/// The test Redis for `test` and a service throttled by `quota` counted there, or `None`
/// (after saying so) without Redis.
async fn throttled_in_redis(test: &str, quota: Quota) -> Option<(TestRedis, Svc)> {
    let redis = TestRedis::connect(test).await?;
    let svc = service(redis_layer(&redis, quota).await);
    Some((redis, svc))
}

/// A throttle holding `quota` in `store`, which falls back only when Redis fails.
fn limited(store: RedisRateStore, quota: Quota) -> ThrottleLayer {
    ThrottleLayer::builder()
        .default_limit(quota)
        .store(store)
        .store_timeout(SLOW_MACHINE)
        .build()
}

/// A store deadline far above a loopback round trip, even on a loaded machine: a throttle with
/// it falls back only when Redis fails.
const SLOW_MACHINE: std::time::Duration = std::time::Duration::from_secs(5);

fn per_hour(n: u32) -> Quota {
    format!("{n}/h").parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The layer

#[tokio::test]
async fn two_throttles_on_their_own_connections_share_one_limit() {
    let test = "two_throttles_on_their_own_connections_share_one_limit";
    let Some(redis) = TestRedis::connect(test).await else {
        return;
    };
    let (one, two) = (
        redis_layer(&redis, per_hour(10)).await,
        redis_layer(&redis, per_hour(10)).await,
    );
    let (mut a, mut b) = (service(one.clone()), service(two.clone()));
    let mut admitted = 0;
    for _ in 0..15 {
        for svc in [&mut a, &mut b] {
            if call(svc, "app-1").await.0 == StatusCode::OK {
                admitted += 1;
            }
        }
    }
    assert_eq!(admitted, 10, "one limit for both, not one each");
    assert_eq!(one.throttled() + two.throttled(), 20);
    assert_eq!(one.store_fallbacks() + two.store_fallbacks(), 0);
    // Another app has a limit of its own.
    assert_eq!(call(&mut a, "app-2").await.0, StatusCode::OK);
}

#[tokio::test]
async fn batched_throttles_take_several_requests_at_once_and_never_exceed_the_limit() {
    let test = "batched_throttles_take_several_requests_at_once_and_never_exceed_the_limit";
    let Some(redis) = TestRedis::connect(test).await else {
        return;
    };
    let batched = || async {
        let store = redis_store(&redis)
            .await
            .batch(std::num::NonZeroU32::new(4).unwrap());
        limited(store, per_hour(10))
    };
    let (mut a, mut b) = (service(batched().await), service(batched().await));
    assert_eq!(call(&mut a, "app-1").await.0, StatusCode::OK);
    // One request, four taken: Redis's arrival time is four intervals (of 6 minutes) ahead.
    let ttl = redis.pttl(&format!("{}app-1", redis.prefix)).await;
    assert!(ttl > 3 * 360_000 && ttl <= 4 * 360_000, "{ttl}");
    let mut admitted = 1;
    for round in 0..15 {
        for (i, svc) in [&mut a, &mut b].into_iter().enumerate() {
            if round == 0 && i == 0 {
                continue;
            }
            if call(svc, "app-1").await.0 == StatusCode::OK {
                admitted += 1;
            }
        }
    }
    // A and B took 4 each, then A the last 2: every one was used.
    assert_eq!(admitted, 10);
}

#[tokio::test]
async fn redis_and_local_counting_answer_alike() {
    let test = "redis_and_local_counting_answer_alike";
    let Some(redis) = TestRedis::connect(test).await else {
        return;
    };
    for quota in [
        per_hour(3),
        per_hour(3).with_burst(1).unwrap(),
        "7/d".parse().unwrap(),
    ] {
        let mut local = service(ThrottleLayer::new(quota));
        let mut shared = service(redis_layer(&redis, quota).await);
        let app = format!("app-{}", quota.to_string().replace(' ', "-"));
        let mut answers = (Vec::new(), Vec::new());
        for _ in 0..quota.burst() + 2 {
            answers.0.push(call(&mut local, &app).await);
            answers.1.push(call(&mut shared, &app).await);
        }
        assert_eq!(answers.0, answers.1, "{quota}");
        let passed = answers.1.iter().filter(|a| a.0 == StatusCode::OK).count();
        assert_eq!(passed, quota.burst() as usize, "{quota}");
        // The first refusal waits one emission interval, less the moment the calls took.
        let wait = quota.emission_interval().as_secs_f64().ceil().to_string();
        assert_eq!(
            answers.1[passed].1.as_deref(),
            Some(wait.as_str()),
            "{quota}"
        );
    }
}

#[tokio::test]
async fn a_debug_request_sees_what_redis_says_is_left() {
    let test = "a_debug_request_sees_what_redis_says_is_left";
    let Some((_redis, mut svc)) = throttled_in_redis(test, per_hour(3)).await else {
        return;
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(AppIdentity::new("app-1", "app-1-code"));
        req.headers_mut()
            .insert("x-apig-mode", http::HeaderValue::from_static("debug"));
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        let header = res.headers()["x-apig-ratelimit-app"]
            .to_str()
            .unwrap()
            .to_owned();
        seen.push((res.status().as_u16(), header));
    }
    let left = |n| format!("remain:{n},limit:3,time:1 hour");
    assert_eq!(
        seen,
        [
            (200, left(2)),
            (200, left(1)),
            (200, left(0)),
            (429, left(0))
        ]
    );
}

#[tokio::test]
async fn keys_are_prefixed_and_expire_when_their_state_is_fresh_again() {
    let test = "keys_are_prefixed_and_expire_when_their_state_is_fresh_again";
    let Some((redis, mut svc)) = throttled_in_redis(test, per_hour(3)).await else {
        return;
    };
    assert_eq!(call(&mut svc, "app-1").await.0, StatusCode::OK);
    let key = format!("{}app-1", redis.prefix);
    assert_eq!(redis.keys().await, vec![key.clone()]);
    // One request of 3/h: the state is fresh again after one interval, 20 minutes.
    let ttl = redis.pttl(&key).await;
    assert!(ttl > 0 && ttl <= 1_200_000, "{ttl}");
}

#[tokio::test]
async fn app_quota_counts_add_up_in_redis_by_window_and_expire_after_it() {
    let test = "app_quota_counts_add_up_in_redis_by_window_and_expire_after_it";
    let Some(redis) = TestRedis::connect(test).await else {
        return;
    };
    let store = redis_store(&redis).await;
    let counts = store.quota_counts(&format!("{}q:", redis.prefix));
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let count = |app: &str, first_call, window_start: i64, calls| QuotaCount {
        app_id: app.into(),
        first_call,
        window_start,
        window_end: window_start + 3_600,
        calls,
    };
    let shared = |first_call, window_start, calls| SharedCount {
        first_call,
        window_start,
        calls,
    };
    let (w1, w2) = (now - 100, now + 3_500);
    let added = counts
        .add(vec![count("a", w1, w1, 3), count("b", 7, w1, 1)])
        .await
        .unwrap();
    assert_eq!(added, [shared(w1, w1, 3), shared(7, w1, 1)]);
    // The same window adds up (the first call reported first stays); an older one is dropped;
    // a newer one starts over.
    let added = counts
        .add(vec![
            count("a", 1, w1, 4),
            count("a", 1, w1 - 3_600, 9),
            count("b", 7, w2, 2),
        ])
        .await
        .unwrap();
    assert_eq!(
        added,
        [shared(w1, w1, 7), shared(w1, w1, 7), shared(7, w2, 2)]
    );
    // Each key expires a minute after its window ends.
    let ttl = redis.pttl(&format!("{}q:a", redis.prefix)).await;
    assert!(ttl > 3_000_000 && ttl <= 3_660_000, "{ttl}");
}

#[tokio::test]
async fn a_quota_batch_whose_answer_was_lost_is_counted_once() {
    let test = "a_quota_batch_whose_answer_was_lost_is_counted_once";
    let Some(redis) = TestRedis::connect(test).await else {
        return;
    };
    let forwarder = redis_support::Forwarder::start(redis.addr).await;
    let url = RedisUrl::parse(&redis.url_via(forwarder.addr)).unwrap();
    let store = RedisRateStore::connect(&url, &redis.prefix).await.unwrap();
    let counts = store.quota_counts(&format!("{}q:", redis.prefix));
    let window_start = 1_800_000_000;
    let batch = |calls| {
        vec![QuotaCount {
            app_id: "a".into(),
            first_call: window_start,
            window_start,
            window_end: window_start + 3_600,
            calls,
        }]
    };

    // Redis runs the batch, then the connection drops before its answer arrives: the call is
    // made again on a new connection, and must not count the batch twice.
    forwarder.lose_next_array_reply();
    let added = counts.add(batch(3)).await.unwrap();
    assert!(forwarder.lost_a_reply(), "no answer was lost");
    assert_eq!(added[0].calls, 3);
    assert_eq!(
        redis.hget(&format!("{}q:a", redis.prefix), "c").await,
        Some(3)
    );

    // Two batches alike are two batches: each counts.
    assert_eq!(counts.add(batch(3)).await.unwrap()[0].calls, 6);
    assert_eq!(counts.add(batch(3)).await.unwrap()[0].calls, 9);
    // A single call is not marked.
    assert_eq!(counts.add(batch(1)).await.unwrap()[0].calls, 10);

    // A mark per batch of calls (the repeat reused its batch's), each kept for seconds only.
    let marks: Vec<String> = redis
        .keys()
        .await
        .into_iter()
        .filter(|key| key.starts_with(&format!("{}q:~batch~", redis.prefix)))
        .collect();
    assert_eq!(marks.len(), 3, "{marks:?}");
    for mark in marks {
        let ttl = redis.pttl(&mark).await;
        assert!(ttl > 0 && ttl <= 10_000, "{mark}: {ttl} ms");
    }
}

/// A node of its own (its cache, its Redis connection) holding `code` of `app-1`, whose quota of
/// `limit` calls a day is counted in `redis`: in batches, or each call with `each_call`.
async fn quota_node(
    redis: &TestRedis,
    code: &AppCode,
    limit: u64,
    each_call: bool,
) -> (AppCodeAuthLayer, Svc) {
    let store = redis_store(redis).await;
    let cache = AppCodeCache::new();
    cache.replace_all([(code.clone(), AppIdentity::new("app-1", "code-1"))]);
    let quota = AppQuota::new(limit, TimeUnit::Day, 1)
        .unwrap()
        .reset_time(std::time::UNIX_EPOCH);
    cache.set_app_quota("app-1", std::sync::Arc::new(quota));
    let builder = AppCodeAuthLayer::builder()
        .cache(cache)
        .shared_quota_counts(store.quota_counts(&format!("{}q:", redis.prefix)));
    let layer = if each_call {
        builder.count_each_quota_call(SLOW_MACHINE).build()
    } else {
        builder.build()
    };
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Bytes::new()))
        }));
    (layer, BoxCloneService::new(svc))
}

/// The test Redis for `test` and two [`quota_node`]s holding one new AppCode (also returned),
/// or `None` (after saying so) without Redis.
async fn two_quota_nodes(
    test: &str,
    limit: u64,
    each_call: bool,
) -> Option<(TestRedis, AppCode, [(AppCodeAuthLayer, Svc); 2])> {
    let redis = TestRedis::connect(test).await?;
    let code = AppCode::generate();
    let nodes = [
        quota_node(&redis, &code, limit, each_call).await,
        quota_node(&redis, &code, limit, each_call).await,
    ];
    Some((redis, code, nodes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_layers_share_one_app_quota_through_redis() {
    let test = "two_layers_share_one_app_quota_through_redis";
    let Some((_redis, code, nodes)) = two_quota_nodes(test, 10, false).await else {
        return;
    };
    let ask = || {
        Request::builder()
            .header("x-apig-appcode", code.expose())
            .body(())
            .unwrap()
    };
    let flushed = |cache: AppCodeCache| async move {
        let what = "the node's quota counts are in Redis";
        wait_until(PROPAGATION_TIMEOUT, what, || {
            let cache = cache.clone();
            async move { (cache.quota_calls_unflushed() == 0).then_some(()) }
        })
        .await;
    };
    // Six calls on the first node, then the second admits the four left, and no more.
    for _ in 0..6 {
        let res = nodes[0].1.clone().oneshot(ask()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    flushed(nodes[0].0.cache().clone()).await;
    let (layer, svc) = &nodes[1];
    let admitted = admitted_until_refused(
        || async { svc.clone().oneshot(ask()).await.unwrap().status() },
        || flushed(layer.cache().clone()),
    )
    .await;
    assert_eq!(
        admitted, 4,
        "the second node admitted past the shared count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_layers_counting_each_call_in_redis_admit_exactly_the_quota() {
    let test = "two_layers_counting_each_call_in_redis_admit_exactly_the_quota";
    let Some((_redis, code, nodes)) = two_quota_nodes(test, 30, true).await else {
        return;
    };
    // Three times the quota at once, spread over both nodes.
    let calls: Vec<_> = (0..90)
        .map(|n| {
            let svc = nodes[n % 2].1.clone();
            let req = Request::builder()
                .header("x-apig-appcode", code.expose())
                .body(())
                .unwrap();
            tokio::spawn(async move { svc.oneshot(req).await.unwrap().status() })
        })
        .collect();
    let mut admitted = 0;
    for call in calls {
        match call.await.unwrap() {
            StatusCode::OK => admitted += 1,
            StatusCode::METHOD_NOT_ALLOWED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 30, "the nodes admitted other than the quota");
    for (layer, _) in &nodes {
        assert_eq!(layer.quota_count_fallbacks(), 0);
        assert_eq!(layer.cache().quota_calls_unflushed(), 0);
    }
}

/// A private `redis-server` on a port of its own, killed on drop: for what the shared one must
/// not be put through (another password, TLS, a pause).
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
    /// With TLS, the self-signed certificate: its own CA.
    cert: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Plain TCP, no password.
    fn start() -> Self {
        Self::spawn(|_, port| vec!["--port".into(), port.to_string()])
    }

    /// TLS only, with `password`.
    fn start_tls(password: &str) -> Self {
        Self::spawn(|dir, port| {
            let cert = dir.join("cert.pem").to_str().unwrap().to_owned();
            let key = dir.join("key.pem").to_str().unwrap().to_owned();
            [
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-auth-clients",
                "no",
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--requirepass",
                password,
            ]
            .map(String::from)
            .to_vec()
        })
    }

    fn spawn(args: impl FnOnce(&std::path::Path, u16) -> Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let generated = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            generated.key_pair.serialize_pem(),
        )
        .unwrap();
        // A port the system just gave out; Redis takes it over a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(args(dir.path(), port))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) runs");
        Self {
            child,
            port,
            cert: generated.cert.pem().into_bytes(),
            _dir: dir,
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store on `url` once Redis answers through it (a fresh server may still be starting).
async fn answering_store(url: &RedisUrl) -> RedisRateStore {
    wait_until(PROPAGATION_TIMEOUT, "the private Redis answers", || {
        let url = url.clone();
        async move {
            let store = RedisRateStore::connect(&url, "apig:test:private:")
                .await
                .ok()?;
            let layer = limited(store.clone(), per_hour(1));
            // Unconnected (Redis still starting) counts locally: wait for a real answer.
            let answered = call(&mut service(layer.clone()), "probe").await.0 == StatusCode::OK;
            (answered && layer.store_fallbacks() == 0).then_some(store)
        }
    })
    .await
}

#[tokio::test]
async fn a_paused_redis_is_given_up_for_the_local_limit_then_used_again() {
    // A private server: a pause would stall every other test on the shared one.
    let test = "a_paused_redis_is_given_up_for_the_local_limit_then_used_again";
    let Some(_redis) = TestRedis::connect(test).await else {
        return;
    };
    let server = PrivateRedis::start();
    let url = RedisUrl::parse(&format!("redis://127.0.0.1:{}/0", server.port)).unwrap();
    let store = answering_store(&url).await;
    let layer = ThrottleLayer::builder()
        .default_limit(per_hour(3))
        .store(store)
        // Long enough that only the pause makes a call late, even on a loaded machine.
        .store_timeout(std::time::Duration::from_secs(1))
        .build();
    let mut svc = service(layer.clone());
    assert_eq!(call(&mut svc, "app-1").await.0, StatusCode::OK);
    assert_eq!(layer.store_fallbacks(), 0);

    // Redis holds every command for 4 s: the first call passes its deadline, the next ones are
    // not sent while the breaker is open, and the node counts alone (a fresh local state: the
    // burst of 3, then 429), never failing a request.
    let mut admin = redis::Client::open(url.to_string())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(4000)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(call(&mut svc, "app-2").await.0);
    }
    use StatusCode as S;
    assert_eq!(answers, [S::OK, S::OK, S::OK, S::TOO_MANY_REQUESTS]);
    assert_eq!(layer.store_fallbacks(), 4);

    // Once a call no longer falls back, Redis counts again: app-1 has 2 requests left there,
    // where its untouched local state would allow 3.
    wait_until(PROPAGATION_TIMEOUT, "Redis answers again", || {
        let (layer, mut svc) = (layer.clone(), service(layer.clone()));
        async move {
            let before = layer.store_fallbacks();
            let (status, _) = call(&mut svc, "app-3").await;
            assert!(!status.is_server_error(), "{status}");
            (layer.store_fallbacks() == before).then_some(())
        }
    })
    .await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(call(&mut svc, "app-1").await.0);
    }
    assert_eq!(answers, [S::OK, S::OK, S::TOO_MANY_REQUESTS]);
}

#[tokio::test]
async fn a_rediss_url_with_a_password_counts_over_tls() {
    // Needs no shared Redis, only its server binary; run where the Redis tests run.
    let test = "a_rediss_url_with_a_password_counts_over_tls";
    let Some(_redis) = TestRedis::connect(test).await else {
        return;
    };
    let password = "tls-pa55word";
    let server = PrivateRedis::start_tls(password);
    let url = format!("rediss://:{password}@127.0.0.1:{}/0", server.port);
    let url = RedisUrl::parse(&url).unwrap();
    assert_eq!(
        url.to_string(),
        format!("rediss://:***@127.0.0.1:{}/0", server.port)
    );
    let untrusted = url.clone();
    let url = url.root_certificates(server.cert.clone()).unwrap();
    let store = answering_store(&url).await;
    assert!(!format!("{store:?}").contains(password));
    // The server's certificate is not one the system trusts: a setting to fix, at start.
    let err = RedisRateStore::connect(&untrusted, "apig:test:tls:")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certificate") && !err.contains(password),
        "{err}"
    );
    let other = RedisRateStore::connect(&url, "apig:test:private:")
        .await
        .unwrap();
    let layers = [limited(store, per_hour(2)), limited(other, per_hour(2))];
    let mut admitted = 0;
    for _ in 0..3 {
        for layer in &layers {
            if call(&mut service(layer.clone()), "app-1").await.0 == StatusCode::OK {
                admitted += 1;
            }
        }
    }
    assert_eq!(admitted, 2);
    assert_eq!(layers[0].store_fallbacks() + layers[1].store_fallbacks(), 0);
}
