//! The gateway listener at its edges, over real sockets against the binary: deadlines for
//! silent, slow and idle clients, errors blamed on the right side, the HTTPS policy, the
//! `X-Forwarded-*` headers, and the connection cap.
//!
//! Deadlines are set to one second here. Each test asserts a state (closed, refused, an
//! answer's status) within a bound many times longer than the deadline, never a time.
//!
//! Run: `cargo test --features gateway --test gateway_edges`.
#![cfg(all(feature = "gateway", unix))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/binary.rs"]
mod support;
use support::*;

/// How long a one-second deadline may take to show, on two cores shared with other tests.
const CLOSE_BOUND: Duration = Duration::from_secs(20);

/// Deadlines of one second for every phase.
const SHORT: &[&str] = &[
    "--header-timeout",
    "1",
    "--keepalive-timeout",
    "1",
    "--body-timeout",
    "1",
    "--upstream-timeout",
    "1",
    "--send-timeout",
    "1",
];

/// A server with short deadlines plus `extra` in front of an upstream of its own, and one valid
/// AppCode. First, the upstream and the server's directory: bound first, they are dropped
/// after the server.
async fn short_server(extra: &[&str]) -> ((Upstream, tempfile::TempDir), Server, String) {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = SHORT.to_vec();
    args.extend_from_slice(extra);
    let server = start_with_token(&upstream, dir.path(), &args).await;
    let (_, _, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("edge_app")
        .await;
    ((upstream, dir), server, code)
}

/// Checks an answer read raw: `status`, with the APIG error `code` (the body shown if not).
fn assert_apig_error(answer: &(StatusCode, Vec<u8>), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{}", String::from_utf8_lossy(body));
    assert_eq!(error_code(body), code);
}

/// Reads until the peer closes the connection (end of stream or reset) or `bound` passes.
/// Returns what was read and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + bound;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length` (head and body) from `stream`.
async fn read_response(stream: &mut TcpStream) -> (StatusCode, String, Vec<u8>) {
    read_response_from(stream, &mut Vec::new()).await
}

fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    v["error_code"].as_str().unwrap_or_default().to_owned()
}

/// A connection that sent `bytes`.
async fn sent(addr: std::net::SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// One request on a new connection, its response read: (status, body).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (StatusCode, Vec<u8>) {
    let mut client = sent(addr, request).await;
    let (status, _, body) = read_response(&mut client).await;
    (status, body)
}

/// An HTTP/2 connection with prior knowledge (h2c) and the task that drives it.
async fn h2c(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    (sender, tokio::spawn(conn))
}

/// An HTTP/2 `GET` of `path` with `code`.
fn h2_get(path: &str, code: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://x{path}"))
        .header("x-apig-appcode", code)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Deadlines

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_connections_are_closed() {
    let (_keep, server, _) = short_server(&[]).await;

    // Nothing sent: closed before protocol detection, with nothing written.
    let mut silent = TcpStream::connect(server.gateway).await.unwrap();
    let (got, closed) = read_until_closed(&mut silent, CLOSE_BOUND).await;
    assert!(closed && got.is_empty(), "silent connection: {got:?}");

    // Headers that stop arriving halfway.
    let mut slow = sent(server.gateway, b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: ").await;
    let (_, closed) = read_until_closed(&mut slow, CLOSE_BOUND).await;
    assert!(closed, "headers never finished");

    // A keep-alive connection with no request in progress.
    let mut idle = sent(server.gateway, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (status, _, _) = read_response(&mut idle).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (rest, closed) = read_until_closed(&mut idle, CLOSE_BOUND).await;
    assert!(closed && rest.is_empty(), "idle keep-alive: {rest:?}");

    // After an answered request, headers that stop arriving halfway.
    let mut stalled = sent(server.gateway, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (status, _, _) = read_response(&mut stalled).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    stalled
        .write_all(b"GET /next HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        .await
        .unwrap();
    let (rest, closed) = read_until_closed(&mut stalled, CLOSE_BOUND).await;
    assert!(
        closed && rest.is_empty(),
        "second headers never finished: {rest:?}"
    );

    // The same on an h2c connection: GOAWAY, then the connection ends.
    let (mut sender, conn) = h2c(server.gateway).await;
    let req = Request::get(format!("http://{}/h2", server.gateway))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    drop(res);
    let ended = tokio::time::timeout(CLOSE_BOUND, conn).await;
    assert!(ended.is_ok(), "the idle h2c connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_serves_every_request_across_idle_waits() {
    let (_keep, server, (_, _, code)) =
        serve_with_code("idle_app", &["--keepalive-timeout", "30"]).await;
    let mut conn = TcpStream::connect(server.gateway).await.unwrap();
    idle_waits_between_requests(&mut conn, &code).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_the_upstream_connection_is_released() {
    let ((upstream, _dir), server, code) = short_server(&[]).await;

    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\nContent-Length: 100\r\n\r\n0123456789"
    );
    let answer = exchange(server.gateway, head.as_bytes()).await;
    assert_apig_error(&answer, StatusCode::REQUEST_TIMEOUT, "APIG.0201");
    // The upstream saw its connection close instead of waiting for the rest of the body.
    wait_until(
        CLOSE_BOUND,
        "the upstream connection is released",
        || async { (upstream.open_connections() == 0).then_some(()) },
    )
    .await;
    server
        .stderr_containing(&["request body stopped arriving", "side=\"client\""])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_none_of_its_answer_is_closed_at_the_send_deadline() {
    let ((upstream, _dir), server, code) = short_server(&[]).await;

    let req = format!("GET {BIG_PATH} HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\n\r\n");
    let mut client = sent(server.gateway, req.as_bytes()).await;
    // The client reads nothing: once the sockets between them are full, the gateway gives up
    // on it, and lets go of the upstream connection the answer came from.
    wait_until(
        CLOSE_BOUND,
        "the upstream connection of the unread answer is closed",
        || async { (upstream.requests() == 1 && upstream.open_connections() == 0).then_some(()) },
    )
    .await;
    let (read, closed) = read_until_closed(&mut client, CLOSE_BOUND).await;
    assert!(
        closed,
        "the gateway keeps the connection of a client that reads nothing"
    );
    assert!(
        read.len() < BIG_LEN,
        "the whole answer was sent: {} bytes",
        read.len()
    );

    // The worker serves the next client as usual.
    let res = call_gateway(server.gateway, "/after", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_takes_none_of_a_stream_is_closed_at_the_send_deadline() {
    let ((upstream, _dir), server, code) = short_server(&[]).await;

    // The client's library answers pings and reads the socket, but the application never reads
    // the body, so no flow-control credit is granted once the first 64 KiB have arrived: the
    // gateway's writes never block, and only the stream shows the wait.
    let (mut h2, conn) = h2c(server.gateway).await;
    let res = h2.send_request(h2_get(BIG_PATH, &code)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ended = tokio::time::timeout(CLOSE_BOUND, conn).await;
    assert!(
        ended.is_ok(),
        "the connection of a stream that takes nothing stays open"
    );
    wait_until(
        CLOSE_BOUND,
        "the upstream connection of the stalled stream is closed",
        || async { (upstream.open_connections() == 0).then_some(()) },
    )
    .await;
    drop(res);

    // A stream that is read to its end is not cut, however long its answer.
    let (mut h2, _conn) = h2c(server.gateway).await;
    let res = h2.send_request(h2_get(BIG_PATH, &code)).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), BIG_LEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_in_the_middle_of_its_body_has_the_answer_cut() {
    let ((upstream, _dir), server, code) = short_server(&[]).await;

    // HTTP/1: the client's connection is closed short of the declared length, so it cannot
    // take the part for the whole.
    let req = format!("GET {STALL_PATH} HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\n\r\n");
    let mut client = sent(server.gateway, req.as_bytes()).await;
    let (read, closed) = read_until_closed(&mut client, CLOSE_BOUND).await;
    assert!(
        closed,
        "the client still waits for the rest of a stalled body"
    );
    let text = String::from_utf8_lossy(&read);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(&format!("content-length: {STALL_DECLARED}")),
        "{text}"
    );
    assert!(read.len() < STALL_DECLARED, "{} bytes", read.len());
    server
        .stderr_containing(&[
            "the upstream stopped sending its response body",
            "side=\"upstream\"",
        ])
        .await;

    // HTTP/2: the stream is reset, and the connection serves on.
    let (mut h2, _conn) = h2c(server.gateway).await;
    let res = h2.send_request(h2_get(STALL_PATH, &code)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = tokio::time::timeout(CLOSE_BOUND, res.into_body().collect()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "the stalled stream is not reset: {:?}",
        body.map(|b| b.map(|b| b.to_bytes().len()))
    );
    let res = h2.send_request(h2_get("/after", &code)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Neither stalled exchange keeps its upstream connection.
    wait_until(
        CLOSE_BOUND,
        "the stalled upstream connections are closed",
        || async { (upstream.open_connections() <= 1).then_some(()) },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Blame

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_body_is_400_not_a_backend_error() {
    let (_keep, server, code) = short_server(&[]).await;

    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
    );
    let answer = exchange(server.gateway, req.as_bytes()).await;
    assert_apig_error(&answer, StatusCode::BAD_REQUEST, "APIG.0201");
    assert!(
        !server.stderr().contains("upstream request failed"),
        "{}",
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusing_is_502_and_upstream_too_slow_is_504() {
    let ((upstream, _dir), server, code) = short_server(&[]).await;

    let res = call_gateway(server.gateway, "/slow", Some(&code)).await;
    res.assert_apig_error(StatusCode::GATEWAY_TIMEOUT, "APIG.0201");
    // A request with a body of known length, all of it sent: the deadline applies after it.
    let req = format!(
        "POST /slow HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\nContent-Length: 3\r\n\r\nabc"
    );
    let answer = exchange(server.gateway, req.as_bytes()).await;
    assert_apig_error(&answer, StatusCode::GATEWAY_TIMEOUT, "APIG.0201");
    upstream.release_slow();
    drop(server);

    // An upstream where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--upstream".to_owned(),
        format!("http://{dead}"),
        "--gateway-listen".into(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--database".into(),
        format!("sqlite://{}", dir.path().join("db").display()),
        "--admin-token".into(),
        TOKEN.into(),
    ];
    args.extend(SHORT.iter().map(|s| s.to_string()));
    let server = Server::start(serve_command(&args)).await.unwrap();
    let (_, _, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("dead_app")
        .await;
    let res = call_gateway(server.gateway, "/x", Some(&code)).await;
    res.assert_apig_error(StatusCode::BAD_GATEWAY, "APIG.0201");
    server.stderr_containing(&["side=\"upstream\""]).await;
}

/// How many bytes [`trickled`] sends.
const TRICKLED: usize = 3;

/// A `POST` of `path` whose [`TRICKLED`] bytes are sent one at a time, each after `gap`:
/// the answer's status and body.
async fn trickled(
    addr: std::net::SocketAddr,
    path: &str,
    code: &str,
    gap: Duration,
) -> (StatusCode, Vec<u8>) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\nContent-Length: {TRICKLED}\r\n\r\n"
    );
    let mut client = sent(addr, head.as_bytes()).await;
    for _ in 0..TRICKLED {
        tokio::time::sleep(gap).await;
        client.write_all(b"x").await.unwrap();
    }
    let (status, _, body) = read_response(&mut client).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_timed_by_the_side_that_holds_it_up() {
    // A client silent for longer than the upstream deadline, but not for its own: the upstream
    // has taken all it was sent, so the wait is the client's, and the whole body arrives.
    let deadlines = ["--upstream-timeout", "1", "--body-timeout", "5"];
    let (_keep, patient, (_, _, code)) = serve_with_code("upload_app", &deadlines).await;
    let gap = Duration::from_millis(2500);
    let (status, body) = trickled(patient.gateway, "/upload", &code, gap).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body_len"], TRICKLED);

    // An upload that ends just before the upstream deadline would have come due: the upstream
    // still has the whole deadline from the body's end to answer.
    let (_thinking, prompt, (_, _, code)) =
        serve_with_code("think_app", &["--upstream-timeout", "1"]).await;
    assert!(THINK_TIME < Duration::from_secs(1));
    let gap = Duration::from_millis(600);
    let (status, body) = trickled(prompt.gateway, THINK_PATH, &code, gap).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    let ((upstream, _dir), server, code) = short_server(&[]).await;
    // An upstream that takes none of a body larger than the sockets hold: 504, blamed on it,
    // though the client is still sending.
    let len = 32 << 20;
    let head = format!(
        "POST /slow HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\nContent-Length: {len}\r\n\r\n"
    );
    let mut client = sent(server.gateway, head.as_bytes()).await;
    let (mut read, mut write) = client.split();
    let upload = async {
        let chunk = vec![b'u'; 64 * 1024];
        for _ in 0..len / chunk.len() {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let answer = async {
        let mut got = Vec::new();
        read_response_from(&mut read, &mut got).await
    };
    let (status, _, body) = tokio::select! {
        answer = tokio::time::timeout(CLOSE_BOUND, answer) => answer.expect("no answer while the upstream takes nothing"),
        () = upload => unreachable!(),
    };
    assert_apig_error(&(status, body), StatusCode::GATEWAY_TIMEOUT, "APIG.0201");
    server
        .stderr_containing(&[
            "upstream took none of the request body in time",
            "side=\"upstream\"",
        ])
        .await;
    upstream.release_slow();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_401_reaches_a_client_that_is_still_sending() {
    let (_keep, server, _) = short_server(&[]).await;

    // Like many clients, this one sends the whole request before it reads: an answer sent early
    // must not turn into a reset that fails the upload and loses the answer.
    let mut client = sent(
        server.gateway,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n",
    )
    .await;
    let chunk = vec![b'a'; 64 * 1024];
    for i in 0..128 {
        client
            .write_all(&chunk)
            .await
            .unwrap_or_else(|e| panic!("chunk {i} of the body: {e}"));
    }
    let (status, _, body) = read_response(&mut client).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "APIG.0303");
}

// ---------------------------------------------------------------------------------------------
// HTTPS policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_https_ignores_what_the_client_writes_about_the_scheme() {
    let ((upstream, _dir), server, code) = short_server(&["--require-https"]).await;

    // An absolute-form https target over plain TCP.
    let req = format!(
        "GET https://localhost/x HTTP/1.1\r\nHost: localhost\r\nX-Apig-AppCode: {code}\r\n\r\n"
    );
    let answer = exchange(server.gateway, req.as_bytes()).await;
    assert_apig_error(&answer, StatusCode::BAD_REQUEST, "APIG.0607");

    // X-Forwarded-Proto from a peer that is not a trusted proxy.
    let mut req = get("/x");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    req.headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    send(server.gateway, req)
        .await
        .assert_apig_error(StatusCode::BAD_REQUEST, "APIG.0607");

    // h2c with `:scheme: https`.
    let (mut sender, _conn) = h2c(server.gateway).await;
    let req = Request::get(format!("https://{}/x", server.gateway))
        .header("x-apig-appcode", &code)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(error_code(&body), "APIG.0607");
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_https_behind_a_trusted_tls_proxy() {
    let (_keep, server, code) =
        short_server(&["--require-https", "--trusted-proxy", "127.0.0.0/8"]).await;

    let with_proto = |proto: Option<&'static str>, header: &'static str| {
        let mut req = get("/behind-proxy");
        req.headers_mut()
            .insert("x-apig-appcode", code.parse().unwrap());
        if let Some(p) = proto {
            req.headers_mut().insert(header, p.parse().unwrap());
        }
        req
    };
    let res = send(
        server.gateway,
        with_proto(Some("https"), "x-forwarded-proto"),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.upstream_headers()["x-forwarded-proto"], ["https"]);
    let res = send(
        server.gateway,
        with_proto(Some("for=10.1.2.3;proto=https"), "forwarded"),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    send(server.gateway, with_proto(None, "x-forwarded-proto"))
        .await
        .assert_apig_error(StatusCode::BAD_REQUEST, "APIG.0607");
    send(
        server.gateway,
        with_proto(Some("http"), "x-forwarded-proto"),
    )
    .await
    .assert_apig_error(StatusCode::BAD_REQUEST, "APIG.0607");
}

// ---------------------------------------------------------------------------------------------
// Forwarding

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_host_is_the_real_authority_and_two_hosts_and_connect_are_refused() {
    let ((upstream, _dir), server, code) = short_server(&[]).await;
    let upstream_saw = |body: &[u8]| -> Value {
        serde_json::from_slice::<Value>(body).unwrap()["headers"].clone()
    };

    // HTTP/1.1: Host wins over a client-sent X-Forwarded-Host.
    let req = format!("GET /a HTTP/1.1\r\nHost: real.example\r\nX-Forwarded-Host: evil.example\r\nX-Apig-AppCode: {code}\r\n\r\n");
    let (status, body) = exchange(server.gateway, req.as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        upstream_saw(&body)["x-forwarded-host"],
        serde_json::json!(["real.example"])
    );

    // HTTP/1.0 without Host: no X-Forwarded-Host at all, certainly not the client's.
    let req = format!(
        "GET /b HTTP/1.0\r\nX-Forwarded-Host: evil.example\r\nX-Apig-AppCode: {code}\r\n\r\n"
    );
    let (status, body) = exchange(server.gateway, req.as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        upstream_saw(&body).get("x-forwarded-host").is_none(),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // h2c: the `:authority`.
    let (mut sender, _conn) = h2c(server.gateway).await;
    let req = Request::builder()
        .method(Method::GET)
        .uri("http://h2.example/c")
        .header("x-apig-appcode", &code)
        .header("x-forwarded-host", "evil.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        upstream_saw(&body)["x-forwarded-host"],
        serde_json::json!(["h2.example"])
    );

    // HTTP/1.1 without Host.
    let req = format!("GET /e HTTP/1.1\r\nX-Apig-AppCode: {code}\r\n\r\n");
    let answer = exchange(server.gateway, req.as_bytes()).await;
    assert_apig_error(&answer, StatusCode::BAD_REQUEST, "APIG.0201");

    // Two Host headers.
    let before = upstream.requests();
    let req = format!(
        "GET /d HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nX-Apig-AppCode: {code}\r\n\r\n"
    );
    let answer = exchange(server.gateway, req.as_bytes()).await;
    assert_apig_error(&answer, StatusCode::BAD_REQUEST, "APIG.0201");
    assert_eq!(upstream.requests(), before);

    // A tunnel, even with a valid AppCode: answered here, never sent upstream.
    let req = format!(
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nX-Apig-AppCode: {code}\r\n\r\n"
    );
    let answer = exchange(server.gateway, req.as_bytes()).await;
    assert_apig_error(&answer, StatusCode::BAD_REQUEST, "APIG.0201");
    assert_eq!(upstream.requests(), before);
}

// ---------------------------------------------------------------------------------------------
// Header size

/// A request of `app_code` with a header of `size` bytes, not ended when `finished` is false.
fn with_header_of(size: usize, app_code: &str, finished: bool) -> Vec<u8> {
    let head = format!("GET /big HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {app_code}\r\nX-Big: ");
    let mut req = head.into_bytes();
    req.resize(req.len() + size, b'a');
    if finished {
        req.extend_from_slice(b"\r\n\r\n");
    }
    req
}

/// The status of one h2c request of `app_code` with a header of `size` bytes, or `None` when
/// the request failed.
async fn h2c_status_with_header_of(
    addr: std::net::SocketAddr,
    size: usize,
    app_code: &str,
) -> Option<StatusCode> {
    let (mut sender, _conn) = h2c(addr).await;
    let req = Request::get(format!("http://{addr}/big"))
        .header("x-apig-appcode", app_code)
        .header("x-big", "a".repeat(size))
        .body(Full::new(Bytes::new()))
        .unwrap();
    Some(sender.send_request(req).await.ok()?.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_over_the_size_cap_get_431_and_a_larger_cap_takes_them() {
    let (_keep, server, code) = short_server(&[]).await;
    let (small, large) = (20 * 1024, 40 * 1024);

    // Under the default 32 KiB: served.
    let (status, _) = exchange(server.gateway, &with_header_of(small, &code, true)).await;
    assert_eq!(status, StatusCode::OK);
    // Over it, whole or still arriving: 431 at once (not the header deadline's silent close),
    // and the connection ends.
    for finished in [true, false] {
        let mut client = sent(server.gateway, &with_header_of(large, &code, finished)).await;
        let (got, closed) = read_until_closed(&mut client, CLOSE_BOUND).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 431"),
            "finished: {finished}: {text}"
        );
        assert!(closed);
    }
    // HTTP/2 has the same cap: hyper's own default list size (16 KiB) would refuse 20 KiB.
    let h2 = h2c_status_with_header_of(server.gateway, small, &code).await;
    assert_eq!(h2, Some(StatusCode::OK));
    let h2 = h2c_status_with_header_of(server.gateway, large, &code).await;
    assert_ne!(h2, Some(StatusCode::OK), "40 KiB of headers over h2c");

    let (_keep, server, code) = short_server(&["--max-header-size", "65536"]).await;
    let (status, _) = exchange(server.gateway, &with_header_of(large, &code, true)).await;
    assert_eq!(status, StatusCode::OK);
    let h2 = h2c_status_with_header_of(server.gateway, large, &code).await;
    assert_eq!(h2, Some(StatusCode::OK));
}

// ---------------------------------------------------------------------------------------------
// Connection cap

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_cleanly_and_spares_the_admin_listener() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Long deadlines here: the two held connections must stay open.
    let server = start_with_token(&upstream, dir.path(), &["--max-connections", "2"]).await;

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = sent(server.gateway, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (status, _, _) = read_response(&mut s).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        held.push(s);
    }
    let mut third = TcpStream::connect(server.gateway).await.unwrap();
    let (got, closed) = read_until_closed(&mut third, CLOSE_BOUND).await;
    assert!(closed);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"APIG.0201\""), "{text}");

    // The management API has its own cap, and counts what the gateway refused.
    let res = send(server.admin, get("/metrics")).await;
    assert_eq!(res.status, StatusCode::OK);
    let refused = "apig_appcode_refused_connections_total{listener=\"gateway\"}";
    assert_eq!(sample(&res.text(), refused), 1.0, "{}", res.text());

    // A freed place is taken again.
    held.pop();
    wait_until(
        CLOSE_BOUND,
        "a connection is served after one closed",
        || async {
            let res = try_send(server.gateway, get("/")).await.ok()?;
            (res.status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_hold_no_more_upstream_exchanges_than_the_connection_cap() {
    let ((upstream, _dir), server, (_, _, code)) =
        serve_with_code("streams_app", &["--max-connections", "3"]).await;
    let (h2, _conn) = h2c(server.gateway).await;
    let call = |path: &str| {
        let mut h2 = h2.clone();
        let req = h2_get(path, &code);
        async move {
            let res = h2.send_request(req).await.unwrap();
            let status = res.status();
            let retry = res.headers().get("retry-after").cloned();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, retry, body)
        }
    };

    // One client connection, three streams held upstream: the cap's worth of exchanges.
    let held: Vec<_> = (0..3).map(|_| tokio::spawn(call("/slow"))).collect();
    wait_until(CLOSE_BOUND, "the upstream holds three requests", || async {
        (upstream.slow_started() == 3).then_some(())
    })
    .await;
    let (status, retry, body) = call("/fourth").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert_eq!(error_code(&body), "APIG.0201");
    assert_eq!(
        upstream.requests(),
        3,
        "the refused stream reached the upstream"
    );

    // A stream the client cancels while the upstream still thinks gives its place back.
    let mut held = held;
    held.pop().unwrap().abort();
    wait_until(
        CLOSE_BOUND,
        "a cancelled stream's place is taken again",
        || {
            let call = call("/after-cancel");
            async move { (call.await.0 == StatusCode::OK).then_some(()) }
        },
    )
    .await;

    // The held exchanges end, and their places are taken again.
    upstream.release_slow();
    for h in held {
        assert_eq!(h.await.unwrap().0, StatusCode::OK);
    }
    let (status, _, _) = call("/after").await;
    assert_eq!(status, StatusCode::OK);
    server
        .stderr_containing(&["upstream exchanges as the connection cap are in progress"])
        .await;
}

// ---------------------------------------------------------------------------------------------
// Upstream connections

/// An upstream that answers each request `200 ok` and closes a connection once it has been
/// idle for `idle` (as servers with a short keep-alive do), or after every answer when
/// `idle` is zero (with `Connection: close`). Counts the connections it accepted.
async fn closing_upstream(idle: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
                        let wait = if idle.is_zero() { CLOSE_BOUND } else { idle };
                        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => data.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    data.clear();
                    let close = if idle.is_zero() {
                        "connection: close\r\n"
                    } else {
                        ""
                    };
                    let res = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{close}\r\nok");
                    if stream.write_all(res.as_bytes()).await.is_err() || idle.is_zero() {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_the_upstream_closed_are_not_used_again() {
    for idle in [Duration::from_millis(100), Duration::ZERO] {
        let (url, accepted) = closing_upstream(idle).await;
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = [
            "--upstream",
            &url,
            "--gateway-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--database",
            &format!("sqlite://{}", dir.path().join("db").display()),
            "--admin-token",
            TOKEN,
            "--workers",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let server = Server::start(serve_command(&args)).await.unwrap();
        let (_, _, code) = Admin::new(server.admin, TOKEN)
            .app_with_code("pool_app")
            .await;
        for i in 0..3 {
            let res = call_gateway(server.gateway, "/again", Some(&code)).await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "request {i} (idle {idle:?}): {}",
                res.text()
            );
            // Long enough for the upstream to close the idle connection.
            tokio::time::sleep(idle * 4).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "one connection per request"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_upstream_connection_serves_the_next_request() {
    let ((upstream, _dir), server, (_, _, code)) =
        serve_with_code("reuse_app", &["--workers", "1"]).await;
    for _ in 0..5 {
        let res = call_gateway(server.gateway, "/reuse", Some(&code)).await;
        assert_eq!(res.status, StatusCode::OK);
    }
    assert_eq!(
        upstream.open_connections(),
        1,
        "one pooled connection, reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_request_releases_its_upstream_connection() {
    // Default deadlines: the upstream timeout must not be what ends the wait.
    let ((upstream, _dir), server, (_, _, code)) = serve_with_code("leaving_app", &[]).await;

    let req = format!("GET /slow HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\n\r\n");
    let client = sent(server.gateway, req.as_bytes()).await;
    wait_until(CLOSE_BOUND, "the upstream holds the request", || async {
        (upstream.slow_started() == 1).then_some(())
    })
    .await;
    // The client gives up while the upstream is still thinking.
    drop(client);
    wait_until(
        CLOSE_BOUND,
        "the gateway closes the abandoned upstream connection",
        || async { (upstream.open_connections() == 0).then_some(()) },
    )
    .await;
    // And the worker serves the next request as usual.
    let res = call_gateway(server.gateway, "/after", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

// ---------------------------------------------------------------------------------------------
// New connections

/// One request on a connection of its own, as clients without keep-alive send it; returns
/// once the gateway has answered and closed.
async fn one_request_one_connection(addr: std::net::SocketAddr) {
    let mut s = sent(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (got, closed) = read_until_closed(&mut s, CLOSE_BOUND).await;
    assert!(closed, "the gateway keeps a `Connection: close` open");
    assert!(
        got.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

/// Clients that open a connection per request, many at once, are each served in a round trip
/// or so: with two workers the same requests take clearly less time in parallel than one after
/// another. A worker that waited on a timer before accepting (milliseconds, against a round
/// trip well under one) made the parallel run slower than the serial one. A noisy neighbour can
/// spoil one comparison, so the best of three counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_short_connections_are_served_faster_than_serial_ones() {
    const PARALLEL: usize = 16;
    const EACH: usize = 12;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &["--workers", "2"]).await;
    let addr = server.gateway;
    // Warm: the first connections pay for lazily built state.
    for _ in 0..PARALLEL {
        one_request_one_connection(addr).await;
    }

    let mut tries = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        for _ in 0..PARALLEL * EACH {
            one_request_one_connection(addr).await;
        }
        let serial = started.elapsed();

        let started = Instant::now();
        let clients: Vec<_> = (0..PARALLEL)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..EACH {
                        one_request_one_connection(addr).await;
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        let parallel = started.elapsed();
        if parallel * 4 <= serial * 3 {
            return;
        }
        tries.push((parallel, serial));
    }
    panic!(
        "{} requests on connections of their own (from {PARALLEL} clients at once, one after \
         another): {tries:?}",
        PARALLEL * EACH
    );
}
