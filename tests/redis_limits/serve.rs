//! `apig-appcode serve` nodes counting in Redis: app quotas and rate limits shared through it,
//! local limits while it is cut off, and its password kept out of every output.

use apig_appcode::gateway::config::DEFAULT_INSTANCE_ID;
use http::StatusCode;

use super::binary::{
    self, call_gateway, metrics, run_to_exit, sample, serve_args, serve_command, wait_until, Admin,
    Server, Upstream, PROPAGATION_TIMEOUT, TOKEN,
};
use super::pg;
use super::redis_support::{Forwarder, TestRedis};

/// `serve` on `database` with `--admin-token`, counting `rate_limit` in Redis at `url` under
/// `prefix`.
async fn start_node(
    upstream: &Upstream,
    database: &str,
    url: &str,
    prefix: &str,
    rate_limit: &str,
) -> Server {
    let mut args = serve_args(&upstream.url(), database);
    args.extend(
        [
            "--admin-token",
            TOKEN,
            "--rate-limit",
            rate_limit,
            "--rate-limit-store-prefix",
            prefix,
            // Far above a loopback round trip even on a loaded machine: only a cut Redis
            // makes these nodes fall back.
            "--rate-limit-store-timeout-ms",
            "5000",
        ]
        .map(String::from),
    );
    let mut cmd = serve_command(&args);
    // The environment rather than the flag, as the documentation advises for a password.
    cmd.env("APIG_RATE_LIMIT_STORE", url);
    Server::start(cmd).await.expect("the node starts")
}

/// What nodes on PostgreSQL counting in Redis need for `test`: the test Redis, a database
/// schema and an upstream; `None` (after saying so) without Redis or PostgreSQL.
async fn redis_db_and_upstream(test: &str) -> Option<(TestRedis, pg::TestDb, Upstream)> {
    let redis = TestRedis::connect(test).await?;
    let db = pg::TestDb::create(test).await?;
    Some((redis, db, Upstream::start().await))
}

/// The test Redis for `test`, a node on a SQLite file of its own (kept, with its upstream, in
/// the last value) whose Redis connection goes through a forwarder the test can cut, and that
/// forwarder; `None` (after saying so) without Redis.
async fn node_behind_forwarder(
    test: &str,
    rate_limit: &str,
) -> Option<(TestRedis, Forwarder, Server, (Upstream, tempfile::TempDir))> {
    let redis = TestRedis::connect(test).await?;
    let forwarder = Forwarder::start(redis.addr).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let database = binary::database_url(dir.path());
    let url = redis.url_via(forwarder.addr);
    let node = start_node(&upstream, &database, &url, &redis.prefix, rate_limit).await;
    Some((redis, forwarder, node, (upstream, dir)))
}

/// The status of a call with `code` through `node`'s gateway.
async fn order_status(node: &Server, code: &str) -> StatusCode {
    call_gateway(node.gateway, "/orders", Some(code))
        .await
        .status
}

fn fallbacks(text: &str) -> f64 {
    sample(text, "apig_appcode_rate_limit_store_fallbacks_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_node_with_redis_counts_app_quotas_there() {
    let test = "a_serve_node_with_redis_counts_app_quotas_there";
    let Some((redis, db, upstream)) = redis_db_and_upstream(test).await else {
        return;
    };
    let node = start_node(&upstream, db.url(), &redis.url, &redis.prefix, "1000/h").await;
    let admin = Admin::new(node.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("counted").await;
    admin.bind_daily_quota(&app, 2).await;
    assert_eq!(order_status(&node, &code).await, StatusCode::OK);
    let key = format!("{}q:{DEFAULT_INSTANCE_ID}:{app}", redis.prefix);
    wait_until(PROPAGATION_TIMEOUT, "the quota count is in Redis", || {
        let redis = &redis;
        let key = key.clone();
        async move { redis.keys().await.contains(&key).then_some(()) }
    })
    .await;
    assert_eq!(order_status(&node, &code).await, StatusCode::OK);
    call_gateway(node.gateway, "/orders", Some(&code))
        .await
        .assert_apig_error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0501");
    // Each admitted call was a round trip to Redis (batches of one, the default); the refused
    // one was refused from the last answer, without one.
    let text = metrics(&node).await;
    assert_eq!(
        sample(&text, "apig_appcode_quota_count_latency_seconds_count"),
        2.0
    );
    assert_eq!(
        sample(&text, "apig_appcode_quota_count_fallbacks_total"),
        0.0
    );
    // The database holds no count: Redis does.
    let client = db.client().await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM app_quota_counts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_nodes_share_one_redis_limit() {
    let test = "two_serve_nodes_share_one_redis_limit";
    let Some((redis, db, upstream)) = redis_db_and_upstream(test).await else {
        return;
    };
    let (a, b) = tokio::join!(
        start_node(&upstream, db.url(), &redis.url, &redis.prefix, "10/h"),
        start_node(&upstream, db.url(), &redis.url, &redis.prefix, "10/h"),
    );
    let (_, _, code) = Admin::new(a.admin, TOKEN).app_with_code("shared").await;
    // Every answer counts, those that waited for B to learn the code included.
    let mut admitted = 0;
    let mut throttled = 0;
    let mut tally = |status: StatusCode| match status {
        StatusCode::OK => admitted += 1,
        StatusCode::TOO_MANY_REQUESTS => throttled += 1,
        StatusCode::UNAUTHORIZED => {}
        other => panic!("unexpected {other}"),
    };
    let first = wait_until(PROPAGATION_TIMEOUT, "node B knows the code", || {
        let (code, gateway) = (code.clone(), b.gateway);
        async move {
            let status = call_gateway(gateway, "/orders", Some(&code)).await.status;
            (status != StatusCode::UNAUTHORIZED).then_some(status)
        }
    })
    .await;
    tally(first);
    for _ in 0..12 {
        for node in [&a, &b] {
            tally(order_status(node, &code).await);
        }
    }
    assert_eq!(
        admitted, 10,
        "the nodes together admit the limit, not twice it"
    );
    assert_eq!(throttled, 15);
    let (ma, mb) = (metrics(&a).await, metrics(&b).await);
    assert_eq!(fallbacks(&ma) + fallbacks(&mb), 0.0);
    assert_eq!(
        sample(&ma, "apig_appcode_throttled_total") + sample(&mb, "apig_appcode_throttled_total"),
        15.0
    );
    let keys = redis.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with(&format!("{}{DEFAULT_INSTANCE_ID}:", redis.prefix)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cut_off_gives_local_limits_and_no_5xx_then_serves_again() {
    let test = "a_redis_cut_off_gives_local_limits_and_no_5xx_then_serves_again";
    let Some((redis, forwarder, node, _keep)) = node_behind_forwarder(test, "3/h").await else {
        return;
    };
    let (_, _, code) = Admin::new(node.admin, TOKEN).app_with_code("cut").await;
    let status = || order_status(&node, &code);

    // Through Redis: the burst of 3, then 429.
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(status().await);
    }
    use StatusCode as S;
    let burst = [
        S::OK,
        S::OK,
        S::OK,
        S::TOO_MANY_REQUESTS,
        S::TOO_MANY_REQUESTS,
    ];
    assert_eq!(answers, burst);
    assert_eq!(fallbacks(&metrics(&node).await), 0.0);
    let keys = redis.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");

    // Cut off: the node counts alone, from a fresh local state, and never answers 5xx.
    forwarder.cut().await;
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(status().await);
    }
    assert_eq!(answers, burst, "the local limit");
    let during = fallbacks(&metrics(&node).await);
    assert_eq!(during, 5.0);
    let log = node.stderr_containing(&["rate limit store failed"]).await;
    assert_eq!(log.matches("rate limit store failed").count(), 1, "{log}");

    // Back: once a request no longer falls back, the node counts in Redis again. The app's
    // key is deleted, so only Redis can admit it now: its local burst is spent.
    forwarder.restore();
    wait_until(PROPAGATION_TIMEOUT, "the node asks Redis again", || {
        let (node, status) = (&node, &status);
        async move {
            let before = fallbacks(&metrics(node).await);
            let answer = status().await;
            assert!(!answer.is_server_error(), "{answer}");
            (fallbacks(&metrics(node).await) == before).then_some(())
        }
    })
    .await;
    redis.delete(&keys[0]).await;
    assert_eq!(status().await, S::OK, "a fresh state in Redis");
    node.stderr_containing(&["rate limit store answers again"])
        .await;
    assert_eq!(
        sample(
            &metrics(&node).await,
            "apig_appcode_gateway_requests_total{class=\"5xx\"}"
        ),
        0.0
    );
    let latency = "apig_appcode_rate_limit_store_latency_seconds_count";
    assert!(sample(&metrics(&node).await, latency) >= 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cut_off_counts_quota_calls_on_the_node_then_adds_them_there() {
    let test = "a_redis_cut_off_counts_quota_calls_on_the_node_then_adds_them_there";
    let Some((redis, forwarder, node, _keep)) = node_behind_forwarder(test, "1000/h").await else {
        return;
    };
    let admin = Admin::new(node.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("cut_quota").await;
    admin.bind_daily_quota(&app, 4).await;
    let status = || order_status(&node, &code);
    let key = format!("{}q:{DEFAULT_INSTANCE_ID}:{app}", redis.prefix);
    let quota_fallbacks = |text: &str| sample(text, "apig_appcode_quota_count_fallbacks_total");

    // Each call counted in Redis.
    assert_eq!(status().await, StatusCode::OK);
    assert_eq!(status().await, StatusCode::OK);
    assert_eq!(redis.hget(&key, "c").await, Some(2));

    // Cut off: the node goes on from the count Redis last gave it, and never answers 5xx.
    forwarder.cut().await;
    assert_eq!(status().await, StatusCode::OK);
    assert_eq!(status().await, StatusCode::OK);
    call_gateway(node.gateway, "/orders", Some(&code))
        .await
        .assert_apig_error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0501");
    let text = metrics(&node).await;
    assert!(quota_fallbacks(&text) >= 1.0);
    assert_eq!(
        sample(&text, "apig_appcode_gateway_requests_total{class=\"5xx\"}"),
        0.0
    );
    let log = node.stderr_containing(&["app quota counts failed"]).await;
    assert_eq!(log.matches("app quota counts failed").count(), 1, "{log}");

    // Back: what the node counted alone reaches Redis.
    forwarder.restore();
    wait_until(
        PROPAGATION_TIMEOUT,
        "the node's own calls are in Redis",
        || {
            let (redis, key) = (&redis, &key);
            async move { (redis.hget(key, "c").await == Some(4)).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        sample(&metrics(&node).await, "apig_appcode_quota_calls_unflushed"),
        0.0
    );
}

/// Runs `serve` with a rate limit counted in the store at `url`, which it must refuse to start
/// with; asserts that `password` shows on neither stream and returns the exit code and stderr.
async fn refused_start(
    upstream: &Upstream,
    database: &str,
    url: &str,
    password: &str,
) -> (Option<i32>, String) {
    let mut args = serve_args(&upstream.url(), database);
    args.extend(["--rate-limit".into(), "1/s".into()]);
    let mut cmd = serve_command(&args);
    cmd.env("APIG_RATE_LIMIT_STORE", url);
    let (status, stdout, stderr) = run_to_exit(cmd).await;
    assert!(
        !stdout.contains(password) && !stderr.contains(password),
        "{stderr}"
    );
    (status.code(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_never_shows() {
    let password = "pa55-redis-secret";
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let database = binary::database_url(dir.path());

    // A URL that does not parse: exit 2, naming the setting, not the URL.
    let unparsed = format!("redis://:{password}@cache:port/0");
    let (code, stderr) = refused_start(&upstream, &database, &unparsed, password).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--rate-limit-store"), "{stderr}");

    // Nothing listens there: the node starts, counts locally, and says so with the URL
    // redacted.
    let url = format!("redis://:{password}@127.0.0.1:1/0");
    let node = start_node(&upstream, &database, &url, "apig:test:none:", "1/h").await;
    let (_, _, code) = Admin::new(node.admin, TOKEN)
        .app_with_code("unreachable")
        .await;
    let answers = [
        order_status(&node, &code).await,
        order_status(&node, &code).await,
    ];
    assert_eq!(answers, [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    let log = node
        .stderr_containing(&["redis://:***@127.0.0.1:1/0"])
        .await;
    assert!(
        !log.contains(password) && !node.stdout().contains(password),
        "{log}"
    );
    node.stop().await;

    // A Redis that refuses the password stops the start, without showing it.
    let test = "a_redis_password_never_shows";
    let Some(redis) = TestRedis::connect(test).await else {
        return;
    };
    let wrong = format!("redis://:{password}@{}/0", redis.addr);
    let (code, stderr) = refused_start(&upstream, &database, &wrong, password).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("rate limit store"), "{stderr}");
}
