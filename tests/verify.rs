//! The verify listener (auth-only mode) end to end: the `apig-appcode` binary with
//! `--verify-listen`, called directly, then from a real nginx (`auth_request`) and a real Caddy
//! (`forward_auth`) in front of the test's echo upstream.
//!
//! nginx and Caddy run in the foreground from a temporary directory, on a free port. When one
//! is not installed its test says so on stderr and passes, except under `CI`, where a missing
//! proxy is a failure (`.ci/run` installs both).
//!
//! Run: `cargo test --all-features --test verify`.
#![cfg(all(feature = "gateway", unix))]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use http::{Method, StatusCode};

#[path = "support/installed.rs"]
mod installed;
#[path = "support/binary.rs"]
mod support;
use installed::installed_or_skip;
use support::*;

/// A server with `--verify-listen 127.0.0.1:0` and `extra` flags, and its verify address.
async fn start_verifying(upstream: &Upstream, dir: &Path, extra: &[&str]) -> (Server, SocketAddr) {
    let mut flags = vec!["--verify-listen", "127.0.0.1:0"];
    flags.extend_from_slice(extra);
    let server = start_with_token(upstream, dir, &flags).await;
    let verify = listening(&server.stdout(), "verify listening on ")
        .unwrap_or_else(|| panic!("no verify listener announced:\n{}", server.stdout()));
    (server, verify)
}

/// `method path` with the given headers.
fn call(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = request(method, path, bytes::Bytes::new());
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    req
}

// ---------------------------------------------------------------------------------------------
// 1. Direct HTTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_listener_answers_200_with_the_identity_or_the_apig_error() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, verify) = start_verifying(&upstream, dir.path(), &[]).await;
    let (app, code_id, code) = Admin::new(server.admin, TOKEN).app_with_code("shop").await;

    // Any method and path: nginx sends its subrequest's URI, Caddy its `uri`, Envoy a prefix
    // plus the original path. A client-sent identity is replaced by the verified one.
    for (method, path) in [
        (Method::GET, "/"),
        (Method::POST, "/orders/7?x=1"),
        (Method::DELETE, "/ext_authz/orders"),
    ] {
        let req = call(
            method.clone(),
            path,
            &[("x-apig-appcode", &code), ("x-apig-app-id", "forged")],
        );
        let res = send(verify, req).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "{method} {path}: {}",
            res.text()
        );
        assert_eq!(res.header("x-apig-app-id"), Some(app.as_str()));
        assert_eq!(res.header("x-apig-appcode-id"), Some(code_id.as_str()));
        assert!(res.body.is_empty(), "{}", res.text());
    }

    let res = send(
        verify,
        call(Method::GET, "/", &[("x-apig-app-id", "forged")]),
    )
    .await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    assert!(res.header("x-apig-app-id").is_none());
    let res = send(
        verify,
        call(Method::GET, "/", &[("x-apig-appcode", "not-a-valid-code")]),
    )
    .await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");

    // Nothing reached the upstream: the verify listener only answers.
    assert_eq!(upstream.requests(), 0);
    let metrics = metrics(&server).await;
    assert!(metrics.contains("listener=\"verify\""), "{metrics}");
    // The code is never logged.
    assert!(!server.stderr().contains(&code));
    assert!(server.stop().await.success());
}

/// Without `--upstream`: the management API and the verify listener, and no gateway listener
/// even on the address `--gateway-listen` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_upstream_only_the_management_api_and_the_verify_listener_run() {
    let dir = tempfile::tempdir().unwrap();
    let gateway: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut args = vec![
        "--verify-listen".to_owned(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--gateway-listen".into(),
        gateway.to_string(),
        "--database".into(),
        database_url(dir.path()),
        "--admin-token".into(),
        TOKEN.into(),
    ];
    let mut proc = Proc::spawn(serve_command(&args));
    let (admin, verify) = wait_until(START_TIMEOUT, "the listeners are announced", || {
        let out = proc.stdout();
        let found =
            listening(&out, "admin listening on ").zip(listening(&out, "verify listening on "));
        async move { found }
    })
    .await;
    let out = proc.stdout();
    assert!(
        out.contains("auth-only mode: no upstream, so no gateway listener"),
        "{out}"
    );
    assert!(!out.contains("gateway listening"), "{out}");
    wait_until(START_TIMEOUT, "/readyz answers 200", || async {
        let res = try_send(admin, get("/readyz")).await.ok()?;
        (res.status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(is_refused(gateway).await, "something listens on {gateway}");

    let (app, code_id, code) = Admin::new(admin, TOKEN).app_with_code("shop").await;
    let res = send(
        verify,
        call(Method::GET, "/orders", &[("x-apig-appcode", &code)]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header("x-apig-app-id"), Some(app.as_str()));
    assert_eq!(res.header("x-apig-appcode-id"), Some(code_id.as_str()));
    let res = send(verify, call(Method::GET, "/orders", &[])).await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    let metrics = send(admin, get("/metrics")).await.text();
    assert!(metrics.contains("listener=\"verify\""), "{metrics}");
    assert!(!metrics.contains("listener=\"gateway\""), "{metrics}");

    proc.signal("TERM");
    let status = proc.wait_exit(EXIT_TIMEOUT).await;
    assert_eq!(status.code(), Some(0), "{}", proc.stderr());
    // The same command with an upstream also serves the gateway.
    args.extend(["--upstream".into(), "http://127.0.0.1:9".into()]);
    let server = Server::start(serve_command(&args)).await.unwrap();
    assert_eq!(server.gateway, gateway);
    assert!(server.stop().await.success());
}

/// Calls with `code` once through the verify listener and once through the gateway, both
/// admitted, and returns the verify listener's answer to a third call.
async fn spend_two_then_ask(server: &Server, verify: SocketAddr, code: &str) -> Resp {
    let ask = || call(Method::GET, "/", &[("x-apig-appcode", code)]);
    assert_eq!(send(verify, ask()).await.status, StatusCode::OK);
    let mut through_gateway = get("/orders");
    through_gateway
        .headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    assert_eq!(
        send(server.gateway, through_gateway).await.status,
        StatusCode::OK
    );
    send(verify, ask()).await
}

/// Asserts that a refusal says when to retry, within `max_wait` seconds, and names no app.
fn refused_for(res: &Resp, max_wait: u64) {
    let wait: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=max_wait).contains(&wait), "Retry-After: {wait}");
    assert!(
        res.header("x-apig-app-id").is_none(),
        "a refusal names no app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_over_its_rate_limit_is_refused_on_both_listeners() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Two requests a minute per app, at once: the third is over the limit for ~30 s.
    let (server, verify) = start_verifying(&upstream, dir.path(), &["--rate-limit", "2/m"]).await;
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("shop").await;
    // One through the verify listener, one through the gateway: one limit per app.
    let res = spend_two_then_ask(&server, verify, &code).await;
    res.assert_apig_error(StatusCode::TOO_MANY_REQUESTS, "APIG.0308");
    refused_for(&res, 30);

    // Other apps are not charged for it.
    let (_, _, other) = admin.app_with_code("other").await;
    let res = send(
        verify,
        call(Method::GET, "/", &[("x-apig-appcode", &other)]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_ne!(res.header("x-apig-app-id"), Some(app.as_str()));
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_over_its_quota_is_refused_on_both_listeners() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, verify) = start_verifying(&upstream, dir.path(), &[]).await;
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("shop").await;
    admin.bind_daily_quota(&app, 2).await;

    // One call through each listener: one quota per app.
    let res = spend_two_then_ask(&server, verify, &code).await;
    res.assert_apig_error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0501");
    refused_for(&res, 86_400);
    assert!(server.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_https_counts_only_from_a_trusted_proxy() {
    let upstream = Upstream::start().await;
    for (trusted, want) in [(false, StatusCode::BAD_REQUEST), (true, StatusCode::OK)] {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = vec!["--require-https"];
        if trusted {
            flags.extend(["--trusted-proxy", "127.0.0.1/32"]);
        }
        let (server, verify) = start_verifying(&upstream, dir.path(), &flags).await;
        let (_, _, code) = Admin::new(server.admin, TOKEN).app_with_code("shop").await;
        let headers = [
            ("x-apig-appcode", code.as_str()),
            ("x-forwarded-proto", "https"),
        ];
        let res = send(verify, call(Method::GET, "/", &headers)).await;
        if trusted {
            assert_eq!(res.status, want, "{}", res.text());
        } else {
            res.assert_apig_error(want, "APIG.0607");
        }
        // Plain HTTP with no forwarded scheme is refused either way.
        let res = send(verify, call(Method::GET, "/", &headers[..1])).await;
        res.assert_apig_error(StatusCode::BAD_REQUEST, "APIG.0607");
    }
}

// ---------------------------------------------------------------------------------------------
// Real proxies

/// The proxy binary `name`, from `PATH` or the sbin directories (Debian installs nginx in
/// `/usr/sbin`, which a non-root `PATH` often lacks). `None` (after saying so) when it is not
/// installed outside CI; a failure under CI.
fn proxy_binary(name: &str) -> Option<PathBuf> {
    let install = format!("apt-get install {name}");
    installed_or_skip(name, &["/usr/sbin", "/sbin"], &install)
}

/// A port nothing listens on now (the proxy binds it right after; a clash fails the start).
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a test of a real proxy in front of the gateway starts from: the proxy's binary, a
/// server with a verify listener that trusts the proxy (127.0.0.1), the upstream behind both,
/// and for the proxy a directory of its own and a free port.
/// The server is the first field, so it is dropped (stopped) before what it uses.
struct ProxyBed {
    server: Server,
    binary: PathBuf,
    upstream: Upstream,
    verify: SocketAddr,
    home: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ProxyBed {
    /// The bed for the proxy `name`, or `None` (after saying so) when it is not installed.
    async fn start(name: &str) -> Option<Self> {
        let binary = proxy_binary(name)?;
        let upstream = Upstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let trusted = ["--trusted-proxy", "127.0.0.1/32"];
        let (server, verify) = start_verifying(&upstream, dir.path(), &trusted).await;
        let home = dir.path().join(name);
        std::fs::create_dir(&home).unwrap();
        Some(Self {
            binary,
            upstream,
            server,
            verify,
            home,
            port: free_port(),
            _dir: dir,
        })
    }

    /// Runs the proxy (`cmd`, started as `name`) until it answers on the bed's port; the
    /// process (stopped when dropped) and that address.
    async fn run(&self, cmd: Command, name: &str) -> (Proc, SocketAddr) {
        let mut proxy = Proc::spawn(cmd);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        wait_answering(&mut proxy, addr, name).await;
        (proxy, addr)
    }
}

/// Waits until `proxy` answers on `addr` (any status), or fails with its output.
async fn wait_answering(proxy: &mut Proc, addr: SocketAddr, what: &str) {
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = proxy.try_exit() {
            panic!(
                "{what} exited ({status}):\n{}\n{}",
                proxy.stdout(),
                proxy.stderr()
            );
        }
        if try_send(addr, get("/")).await.is_ok() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not answer on {addr}:\n{}",
            proxy.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// What the proxy tests check, whichever proxy is in front: a valid code reaches the upstream
/// with the verified identity (and without the code); a missing one is refused with 401
/// before the upstream sees anything. Returns the refusal.
async fn check_proxy(proxy: SocketAddr, upstream: &Upstream, server: &Server) -> Resp {
    let admin = Admin::new(server.admin, TOKEN);
    let (app, code_id, code) = admin.app_with_code("shop").await;

    let req = call(
        Method::GET,
        "/orders?page=2",
        &[("x-apig-appcode", &code), ("x-apig-app-id", "forged")],
    );
    let res = send(proxy, req).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["path"], "/orders?page=2");
    let seen = res.upstream_headers();
    assert_eq!(seen["x-apig-app-id"], [app.as_str()], "{seen:?}");
    assert_eq!(seen["x-apig-appcode-id"], [code_id.as_str()], "{seen:?}");
    assert!(!seen.contains_key("x-apig-appcode"), "{seen:?}");

    let before = upstream.requests();
    let res = send(
        proxy,
        call(Method::GET, "/orders", &[("x-apig-app-id", "forged")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert_eq!(
        upstream.requests(),
        before,
        "a refused request reached the upstream"
    );
    res
}

/// `req` sent to `addr` from the loopback address `from` (all of 127/8 is the loopback).
async fn send_from(
    from: [u8; 4],
    addr: SocketAddr,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Resp {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    send_over(stream, &addr.to_string(), req).await.unwrap()
}

/// Through `proxy` (trusted by the server), an app ACL sees the proxy's client: a client at
/// 127.0.0.2 is refused with 403, one at 127.0.0.1 let through.
async fn check_acl_behind(proxy: SocketAddr, server: &Server) {
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("acl_shop").await;
    let set = admin
        .call(
            Method::PUT,
            &format!("/apps/{app}/app-acl"),
            Some(serde_json::json!({"app_acl_type": "DENY", "app_acl_values": ["127.0.0.2"]})),
        )
        .await;
    assert_eq!(set.status, StatusCode::CREATED, "{}", set.text());
    let req = || call(Method::GET, "/orders", &[("x-apig-appcode", &code)]);
    let denied = send_from([127, 0, 0, 2], proxy, req()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text());
    let allowed = send_from([127, 0, 0, 1], proxy, req()).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_in_front_of_the_upstream() {
    let Some(bed) = ProxyBed::start("nginx").await else {
        return;
    };
    let temp = bed.home.display();
    // The example configuration's locations, with every path in the temporary directory and a
    // single process (no worker to outlive the test when the master is killed).
    let conf = format!(
        r#"
master_process off;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_apig_verify;
            auth_request_set $apig_app_id $upstream_http_x_apig_app_id;
            auth_request_set $apig_appcode_id $upstream_http_x_apig_appcode_id;
            proxy_set_header X-Apig-App-Id $apig_app_id;
            proxy_set_header X-Apig-AppCode-Id $apig_appcode_id;
            proxy_set_header X-Apig-AppCode "";
            proxy_pass http://{upstream};
        }}
        location = /_apig_verify {{
            internal;
            proxy_pass http://{verify};
            proxy_method HEAD;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#,
        port = bed.port,
        verify = bed.verify,
        upstream = bed.upstream.addr,
    );
    std::fs::write(bed.home.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(&bed.binary);
    cmd.arg("-p")
        .arg(&bed.home)
        .args(["-c", "nginx.conf", "-e", "stderr", "-g"])
        .arg(format!("daemon off; pid {temp}/nginx.pid;"));
    let (_nginx, addr) = bed.run(cmd, "nginx").await;

    // nginx answers a denial with its own page: only the status is the verify listener's.
    check_proxy(addr, &bed.upstream, &bed.server).await;
    check_acl_behind(addr, &bed.server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_in_front_of_the_upstream() {
    let Some(bed) = ProxyBed::start("caddy").await else {
        return;
    };
    // The example Caddyfile, on a free port, with no admin endpoint and no automatic HTTPS
    // (nothing to listen on or store outside the temporary directory).
    let caddyfile = format!(
        r#"{{
    admin off
    auto_https off
    storage file_system {home}
}}
http://127.0.0.1:{port} {{
    forward_auth {verify} {{
        uri /verify
        copy_headers X-Apig-App-Id X-Apig-AppCode-Id
    }}
    reverse_proxy {upstream} {{
        header_up -X-Apig-AppCode
    }}
}}
"#,
        home = bed.home.display(),
        port = bed.port,
        verify = bed.verify,
        upstream = bed.upstream.addr,
    );
    std::fs::write(bed.home.join("Caddyfile"), caddyfile).unwrap();
    let mut cmd = Command::new(&bed.binary);
    cmd.current_dir(&bed.home)
        .args(["run", "--config", "Caddyfile", "--adapter", "caddyfile"])
        .env("HOME", &bed.home)
        .env("XDG_CONFIG_HOME", &bed.home)
        .env("XDG_DATA_HOME", &bed.home);
    let (_caddy, addr) = bed.run(cmd, "caddy").await;

    // Caddy passes the verify listener's refusal through, APIG body included.
    let refused = check_proxy(addr, &bed.upstream, &bed.server).await;
    refused.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    check_acl_behind(addr, &bed.server).await;
}

/// Runs `cmd`, a proxy checking a configuration (`what`), and asserts that it accepts it.
fn assert_accepted(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {stderr}");
}

/// The example files are whole configurations that the real proxies accept as they stand, as
/// the README's commands run them.
#[test]
fn the_example_proxy_configurations_are_accepted_as_they_stand() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify");
    if let Some(nginx) = proxy_binary("nginx") {
        let prefix = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(nginx);
        cmd.arg("-t")
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(examples.join("nginx.conf"))
            .args(["-e", "stderr", "-g"])
            .arg(format!("pid {}/nginx.pid;", prefix.path().display()));
        assert_accepted(&mut cmd, "nginx -t");
    }
    if let Some(caddy) = proxy_binary("caddy") {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(caddy);
        cmd.args(["validate", "--adapter", "caddyfile", "--config"])
            .arg(examples.join("Caddyfile"))
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path());
        assert_accepted(&mut cmd, "caddy validate");
    }
}
