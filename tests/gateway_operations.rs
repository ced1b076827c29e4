//! A running `apig-appcode` binary: graceful shutdown, health and metrics, and rate limits.
//!
//! Run: `cargo test --features gateway --test gateway_operations`.

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/binary.rs"]
mod support;
use support::*;

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let ((upstream, _dir), server, (_, _, code)) = serve_with_code("drain", &[]).await;
    let (gateway, admin) = (server.gateway, server.admin);

    let in_flight = tokio::spawn({
        let code = code.clone();
        async move { call_gateway(gateway, "/slow", Some(&code)).await }
    });
    wait_until(REQUEST_TIMEOUT, "the upstream holds /slow", || async {
        (upstream.slow_started() == 1).then_some(())
    })
    .await;

    // A keep-alive connection with nothing in progress.
    let mut idle = tokio::net::TcpStream::connect(gateway).await.unwrap();
    idle.write_all(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response_from(&mut idle, &mut Vec::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut proc = server.proc;
    proc.signal("TERM");
    wait_until(EXIT_TIMEOUT, "new connections are refused", || async {
        (is_refused(gateway).await && is_refused(admin).await).then_some(())
    })
    .await;
    // Closed at once, while the request in flight still holds the drain.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(EXIT_TIMEOUT, idle.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection stayed open: {read:?}"
    );
    assert!(
        !in_flight.is_finished(),
        "the upstream still holds the request"
    );
    assert!(proc.try_exit().is_none(), "exited before draining");

    upstream.release_slow();
    let res = in_flight.await.unwrap();
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["path"], "/slow");
    let status = proc.wait_exit(EXIT_TIMEOUT).await;
    assert_eq!(status.code(), Some(0), "{}", proc.stderr());
    assert!(is_refused(gateway).await);
}

// ---------------------------------------------------------------------------------------------
// Health and metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_count_accepted_requests() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let res = send(server.admin, get("/healthz")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["status"], "ok");
    let res = send(server.admin, get("/readyz")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["status"], "ready");

    let (_, _, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("counted")
        .await;
    let before = metrics(&server).await;
    for _ in 0..3 {
        let res = call_gateway(server.gateway, "/x", Some(&code)).await;
        assert_eq!(res.status, StatusCode::OK);
    }
    call_gateway(server.gateway, "/x", None).await;
    call_gateway(server.gateway, "/x", Some(&"Z".repeat(64))).await;
    let after = metrics(&server).await;

    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(delta("apig_appcode_hits_total"), 3.0, "{after}");
    assert_eq!(
        delta("apig_appcode_rejections_total{reason=\"missing\"}"),
        1.0
    );
    assert_eq!(
        delta("apig_appcode_rejections_total{reason=\"invalid\"}"),
        1.0
    );
    assert_eq!(sample(&after, "apig_appcode_ready"), 1.0);
    assert!(
        after.contains("# TYPE apig_appcode_hits counter"),
        "{after}"
    );
    let class = |c: &str| format!("apig_appcode_gateway_requests_total{{class=\"{c}\"}}");
    assert_eq!(delta(&class("2xx")), 3.0, "{after}");
    assert_eq!(delta(&class("4xx")), 2.0, "{after}");
    assert_eq!(
        delta("apig_appcode_upstream_latency_seconds_count"),
        3.0,
        "only forwarded requests have an upstream latency"
    );
    // The scrape's own connection is open on the admin listener.
    assert!(sample(&after, "apig_appcode_open_connections{listener=\"admin\"}") >= 1.0);
    assert!(after.contains("apig_appcode_open_connections{listener=\"gateway\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opened_at_once_are_spread_over_the_workers() {
    // A pool that opens its connections together (a load balancer, a client library) and keeps
    // them: whichever worker woke first would take them all and keep them for life.
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &["--workers", "2"]).await;
    let gateway = server.gateway;
    let connects: Vec<_> = (0..32)
        .map(|_| tokio::spawn(tokio::net::TcpStream::connect(gateway)))
        .collect();
    let mut pool = Vec::new();
    for connect in connects {
        pool.push(connect.await.unwrap().unwrap());
    }
    for conn in &mut pool {
        conn.write_all(b"GET /pooled HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (status, _, _) = read_response_from(conn, &mut Vec::new()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let text = metrics(&server).await;
    let serving = |w: &str| {
        sample(
            &text,
            &format!("apig_appcode_worker_connections{{worker=\"{w}\"}}"),
        )
    };
    let (first, second) = (serving("0"), serving("1"));
    assert_eq!(first + second, 32.0, "{text}");
    assert!(
        (first - second).abs() <= 3.0,
        "one worker serves {first} connections, the other {second}"
    );
    drop(pool);
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_apig_0308_once_the_burst_is_spent() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &["--rate-limit", "2/s"]).await;
    let (_, _, code) = Admin::new(server.admin, TOKEN).app_with_code("busy").await;
    // A fresh app has its whole burst of 2.
    for _ in 0..2 {
        let res = call_gateway(server.gateway, "/x", Some(&code)).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
    // The third rapid request is over the limit; the loop only tolerates a machine so slow that
    // half a second (one request's refill) passed between calls, and asserts no timing.
    let mut throttled = None;
    for _ in 0..20 {
        let res = call_gateway(server.gateway, "/x", Some(&code)).await;
        if res.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(res);
            break;
        }
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
    let res = throttled.expect("20 rapid requests over 2/s were never throttled");
    res.assert_apig_error(StatusCode::TOO_MANY_REQUESTS, "APIG.0308");
    assert_eq!(
        res.json()["error_msg"],
        "The throttling threshold has been reached"
    );
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(
        res.json()["request_id"].as_str(),
        res.header("x-request-id")
    );
    let text = metrics(&server).await;
    assert!(
        sample(&text, "apig_appcode_throttled_total") >= 1.0,
        "{text}"
    );
}
