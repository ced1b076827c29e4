//! The `apig-appcode` binary end to end: real processes, real sockets, a real SQLite file.
//!
//! Each test starts the binary on ports 0 with its own temporary directory and an in-test
//! upstream (a hyper server that echoes what it received), and talks to both listeners over
//! HTTP (or HTTPS). Every wait polls against a deadline; nothing asserts on elapsed time.
//!
//! Run: `cargo test --features gateway --test gateway_binary`.
#![cfg(all(feature = "gateway", unix))]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use apig_appcode::gateway::config::DEFAULT_PROJECT_ID;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

#[path = "support/binary.rs"]
mod support;
use support::*;
#[path = "support/sqlite_file.rs"]
mod sqlite_file;

// ---------------------------------------------------------------------------------------------
// 1. First run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_that_fails_leaves_no_token_file_and_the_next_one_shows_the_hint() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = apig_appcode::gateway::token_path(&database_path(dir.path()));
    // The admin port is taken: the start fails after the token was made.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut args = base_args(&upstream, dir.path());
    let admin = args.iter().position(|a| a == "--admin-listen").unwrap() + 1;
    args[admin] = taken.local_addr().unwrap().to_string();
    let failed = Server::start(serve_command(&args))
        .await
        .err()
        .expect("the start failed");
    assert!(!failed.status.success());
    assert!(
        !token_file.exists(),
        "a failed first start left its token file: {}",
        failed.stderr
    );
    drop(taken);

    let server = Server::start(serve_command(&base_args(&upstream, dir.path())))
        .await
        .unwrap();
    let out = server.stdout();
    assert!(out.contains(&token_file.display().to_string()), "{out}");
    assert!(token_file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_writes_a_private_token_file_and_later_runs_reuse_it() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = apig_appcode::gateway::token_path(&database_path(dir.path()));
    assert_eq!(token_file, dir.path().join("db.admin-token"));

    let server = Server::start(serve_command(&base_args(&upstream, dir.path())))
        .await
        .unwrap();
    let token = std::fs::read_to_string(&token_file).unwrap();
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    assert!(token.trim().len() >= 16);

    let out = server.stdout();
    assert!(out.contains(&token_file.display().to_string()), "{out}");
    assert!(out.contains("X-Auth-Token"), "{out}");
    // The hint names the address really bound, not the configured port 0.
    assert!(
        out.contains(&format!("http://{}{}", server.admin, apps_path())),
        "{out}"
    );
    assert!(!out.contains(token.trim()), "the token was printed");
    assert!(
        !server.stderr().contains(token.trim()),
        "the token was logged"
    );
    let res = Admin::new(server.admin, token.trim())
        .call(Method::GET, "/apps", None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(server.stop().await.success());

    let second = Server::start(serve_command(&base_args(&upstream, dir.path())))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert!(
        !second.stdout().contains("created an admin token"),
        "{}",
        second.stdout()
    );
    let res = Admin::new(second.admin, token.trim())
        .call(Method::GET, "/apps", None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

// ---------------------------------------------------------------------------------------------
// 2. The quickstart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_create_call_reject_delete_over_http() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(serve_command(&base_args(&upstream, dir.path())))
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("db.admin-token")).unwrap();
    let admin = Admin::new(server.admin, token.trim());

    let app = admin.create_app("shop").await;
    let (code_id, code) = admin.generate_code(&app).await;
    assert_eq!(code.len(), 64);

    let res = call_gateway(server.gateway, "/orders?page=2", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["method"], "GET");
    assert_eq!(res.json()["path"], "/orders?page=2");
    let seen = res.upstream_headers();
    assert_eq!(seen["x-apig-app-id"], [app.as_str()]);
    assert_eq!(seen["x-apig-appcode-id"], [code_id.as_str()]);
    assert!(!seen.contains_key("x-apig-appcode"), "{seen:?}");
    assert!(res.header("x-request-id").is_some());

    let before = upstream.requests();
    let res = call_gateway(server.gateway, "/orders", None).await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    assert!(res.json()["error_msg"]
        .as_str()
        .unwrap()
        .ends_with("AppCode missing"));
    assert_eq!(res.header("www-authenticate"), Some("AppCode"));
    assert_eq!(
        res.json()["request_id"].as_str(),
        res.header("x-request-id")
    );

    admin.delete_code(&app, &code_id).await;
    let res = call_gateway(server.gateway, "/orders", Some(&code)).await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    assert_eq!(
        upstream.requests(),
        before,
        "a rejected request was forwarded"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Configuration: environment, TOML file, bad values, secrets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_configure_the_whole_server() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let project = "0123456789abcdef0123456789abcdef";
    let instance = "fedcba9876543210fedcba9876543210";
    let mut cmd = serve_command::<&str>(&[]);
    cmd.env("APIG_UPSTREAM", upstream.url())
        .env("APIG_GATEWAY_LISTEN", "127.0.0.1:0")
        .env("APIG_ADMIN_LISTEN", "127.0.0.1:0")
        .env("APIG_DATABASE", database_url(dir.path()))
        .env("APIG_ADMIN_TOKEN", TOKEN)
        .env("APIG_PROJECT_ID", project)
        .env("APIG_INSTANCE_ID", instance)
        .env("APIG_LOG_FORMAT", "json");
    let server = Server::start(cmd).await.unwrap();
    assert!(
        !dir.path().join("db.admin-token").exists(),
        "credentials were configured: no token file"
    );

    let admin = Admin::scoped(server.admin, TOKEN, project, instance);
    let (app, _, code) = admin.app_with_code("env_app").await;
    let res = call_gateway(server.gateway, "/x", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.upstream_headers()["x-apig-app-id"], [app]);
    // The token is granted on APIG_PROJECT_ID only.
    let other = Admin::scoped(server.admin, TOKEN, DEFAULT_PROJECT_ID, instance);
    other
        .call(Method::GET, "/apps", None)
        .await
        .assert_apig_error(StatusCode::FORBIDDEN, "APIG.1005");

    let stderr = server.stderr();
    assert!(stderr.lines().any(|l| !l.trim().is_empty()));
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("APIG_LOG_FORMAT=json, yet ({e}): {line}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_file_with_read_only_token_and_access_key() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let read_only = "read-only-token-0123456789";
    let ak_sk = ("TESTACCESSKEY01", "test-secret-key-0123456789");
    let config = dir.path().join("apig.toml");
    std::fs::write(
        &config,
        format!(
            r#"
upstream = "{upstream}"
gateway_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
database = "{database}"

[[tokens]]
token = "{read_only}"
projects = ["*"]
role = "read-only"

[[access_keys]]
access_key = "{ak}"
secret_key = "{sk}"
projects = ["{DEFAULT_PROJECT_ID}"]
role = "read-write"
"#,
            upstream = upstream.url(),
            database = database_url(dir.path()),
            ak = ak_sk.0,
            sk = ak_sk.1,
        ),
    )
    .unwrap();
    let server = Server::start(serve_command(&["--config", config.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(!dir.path().join("db.admin-token").exists());

    let viewer = Admin::new(server.admin, read_only);
    assert_eq!(
        viewer.call(Method::GET, "/apps", None).await.status,
        StatusCode::OK
    );
    viewer
        .call(Method::POST, "/apps", Some(json!({"name": "refused"})))
        .await
        .assert_apig_error(StatusCode::FORBIDDEN, "APIG.1005");

    let res = signed_call(
        server.admin,
        Method::POST,
        &apps_path(),
        Some(json!({"name": "signed_app"})),
        ak_sk,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let app = res.json()["id"].as_str().unwrap().to_owned();
    let res = signed_call(
        server.admin,
        Method::PUT,
        &format!("{}/{app}/app-codes", apps_path()),
        None,
        ak_sk,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let code = res.json()["app_code"].as_str().unwrap().to_owned();

    let res = call_gateway(server.gateway, "/x", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = viewer
        .call(Method::GET, &format!("/apps/{app}/app-codes"), None)
        .await;
    assert_eq!(res.json()["total"], 1, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flag_values_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let up = "http://127.0.0.1:9";
    let cases: [(&[&str], &str); 6] = [
        (
            &["--upstream", up, "--gateway-listen", "nowhere"],
            "--gateway-listen",
        ),
        (
            &["--upstream", up, "--refresh-interval", "soon"],
            "--refresh-interval",
        ),
        (&["--upstream", up, "--log-format", "xml"], "--log-format"),
        (
            &["--upstream", up, "--trusted-proxy", "10.0.0.0/99"],
            "--trusted-proxy",
        ),
        (&["--upstream", "https://127.0.0.1:9"], "--upstream"),
        (
            &["--upstream", up, "--database", "mysql://db"],
            "--database",
        ),
    ];
    for (args, flag) in cases {
        let mut cmd = serve_command(args);
        cmd.current_dir(dir.path());
        let (status, stdout, stderr) = run_to_exit(cmd).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?}: stderr does not name {flag}: {stderr}"
        );
        assert!(!stdout.contains("listening"), "{args:?}: {stdout}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a refused configuration created files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_given_as_flags_never_reach_stdout_or_stderr() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = "flag-admin-token-5e0d3c1a9b";
    let secret_key = "flag-secret-key-77a1f4c2d8";
    let master_key = "8f3a".repeat(16);
    let mut args = base_args(&upstream, dir.path());
    args.extend(
        [
            "--admin-token",
            token,
            "--access-key",
            "FLAGACCESSKEY",
            "--secret-key",
            secret_key,
            "--master-key",
            &master_key,
            "--log",
            "trace",
        ]
        .map(String::from),
    );
    let server = Server::start(serve_command(&args)).await.unwrap();
    let admin = Admin::new(server.admin, token);
    let (_, _, code) = admin.app_with_code("secret_app").await;
    assert_eq!(
        call_gateway(server.gateway, "/x", Some(&code)).await.status,
        StatusCode::OK
    );
    let res = signed_call(
        server.admin,
        Method::GET,
        &apps_path(),
        None,
        ("FLAGACCESSKEY", secret_key),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Rejections are logged too.
    Admin::new(server.admin, "wrong-token-0123456789")
        .call(Method::GET, "/apps", None)
        .await;
    call_gateway(server.gateway, "/x", Some(&code.replace('a', "b"))).await;
    let mut output = server.stdout();
    output.push_str(&server.stderr());
    let mut proc = server.proc;
    proc.signal("TERM");
    assert!(proc.wait_exit(EXIT_TIMEOUT).await.success());
    output.push_str(&proc.stdout());
    output.push_str(&proc.stderr());
    for secret in [token, secret_key, &master_key, &code] {
        assert!(!output.contains(secret), "a secret was printed:\n{output}");
    }

    // Refused starts do not echo them either.
    let up = upstream.url();
    let refused: [(&[&str], &str); 6] = [
        (
            &[
                "--upstream",
                &up,
                "--admin-token",
                token,
                "--gateway-listen",
                "x",
            ],
            token,
        ),
        (
            &["--upstream", &up, "--admin-token", "short-secret"],
            "short-secret",
        ),
        (&["--upstream", &up, "--secret-key", secret_key], secret_key),
        (
            &[
                "--upstream",
                &up,
                "--database",
                &database_url(dir.path()),
                "--master-key",
                "not-a-valid-key-but-secret",
            ],
            "not-a-valid-key-but-secret",
        ),
        (
            &["--upstream", "http://user:upstream-pw@127.0.0.1:9"],
            "upstream-pw",
        ),
        (
            &["--upstream", "https://user:upstream-pw@127.0.0.1:9"],
            "upstream-pw",
        ),
    ];
    for (args, secret) in refused {
        let mut cmd = serve_command(args);
        cmd.current_dir(dir.path());
        let (status, stdout, stderr) = run_to_exit(cmd).await;
        assert!(!status.success(), "{args:?}");
        assert!(!stderr.is_empty(), "{args:?}: no explanation");
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{args:?} echoed its secret:\n{stdout}\n{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Persistence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appcode_survives_kill_9_and_restart() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let (app, code_id, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("durable")
        .await;
    server.kill_9();

    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let res = call_gateway(server.gateway, "/after-crash", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let seen = res.upstream_headers();
    assert_eq!(seen["x-apig-app-id"], [app]);
    assert_eq!(seen["x-apig-appcode-id"], [code_id]);
}

// ---------------------------------------------------------------------------------------------
// 5. Two servers, one database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_sqlite_file_see_each_others_changes() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_with_token(&upstream, dir.path(), &["--refresh-interval", "1"]).await;
    let b = start_with_token(&upstream, dir.path(), &["--refresh-interval", "1"]).await;
    let admin_a = Admin::new(a.admin, TOKEN);
    let b_gateway = b.gateway;

    let (app, code_id, code) = admin_a.app_with_code("shared").await;
    wait_until(
        PROPAGATION_TIMEOUT,
        "B accepts a code created via A",
        || {
            let code = code.clone();
            async move { (gateway_status(b_gateway, &code).await? == StatusCode::OK).then_some(()) }
        },
    )
    .await;

    // A code B was asked for before it existed (B remembers it as unknown for a while) is
    // accepted once a reload brings it.
    let early = format!("EarlyCode{}", "e".repeat(60));
    assert_eq!(
        gateway_status(b.gateway, &early).await,
        Some(StatusCode::UNAUTHORIZED)
    );
    let res = admin_a
        .call(
            Method::POST,
            &format!("/apps/{app}/app-codes"),
            Some(json!({"app_code": early})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    wait_until(PROPAGATION_TIMEOUT, "B accepts a code it had refused", || {
        let early = early.clone();
        async move { (gateway_status(b_gateway, &early).await? == StatusCode::OK).then_some(()) }
    })
    .await;

    admin_a.delete_code(&app, &code_id).await;
    assert_eq!(
        gateway_status(a.gateway, &code).await,
        Some(StatusCode::UNAUTHORIZED)
    );
    wait_until(
        PROPAGATION_TIMEOUT,
        "B rejects a code deleted via A",
        || {
            let code = code.clone();
            async move {
                (gateway_status(b_gateway, &code).await? == StatusCode::UNAUTHORIZED).then_some(())
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. Graceful shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let (_, _, code) = Admin::new(server.admin, TOKEN).app_with_code("drain").await;
    let (gateway, admin) = (server.gateway, server.admin);

    let in_flight = tokio::spawn({
        let code = code.clone();
        async move { call_gateway(gateway, "/slow", Some(&code)).await }
    });
    wait_until(REQUEST_TIMEOUT, "the upstream holds /slow", || async {
        (upstream.slow_started() == 1).then_some(())
    })
    .await;

    let mut proc = server.proc;
    proc.signal("TERM");
    wait_until(EXIT_TIMEOUT, "new connections are refused", || async {
        (is_refused(gateway).await && is_refused(admin).await).then_some(())
    })
    .await;
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
// 7. Health and metrics

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

// ---------------------------------------------------------------------------------------------
// 8. Encryption at rest

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_keeps_appcodes_out_of_the_database_file_and_is_required() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "0f1e2d3c4b5a6978".repeat(4);
    let server = start_with_token(&upstream, dir.path(), &["--master-key", &key]).await;
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("sealed").await;
    let early = format!("SealedValue{}", "s".repeat(60));
    let res = admin
        .call(
            Method::POST,
            &format!("/apps/{app}/app-codes"),
            Some(json!({"app_code": early})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    for c in [&code, &early] {
        assert_eq!(
            gateway_status(server.gateway, c).await,
            Some(StatusCode::OK)
        );
    }

    // While running (the WAL holds the latest writes) and after a clean stop.
    let check_files = |when: &str| {
        let mut checked = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for c in [&code, &early] {
                let found = bytes.windows(c.len()).any(|w| w == c.as_bytes());
                assert!(!found, "{when}: {} holds an AppCode", path.display());
            }
            checked += 1;
        }
        assert!(checked >= 1, "{when}: no database file");
    };
    assert!(dir.path().join("db-wal").exists());
    check_files("running");
    assert!(server.stop().await.success());
    check_files("stopped");

    let mut without_key = base_args(&upstream, dir.path());
    without_key.extend(["--admin-token".into(), TOKEN.into()]);
    let exited = Server::start(serve_command(&without_key))
        .await
        .err()
        .expect("started without the master key");
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("master key"), "{}", exited.stderr);

    let mut other_key = without_key.clone();
    other_key.extend(["--master-key".into(), "a5".repeat(32)]);
    let exited = Server::start(serve_command(&other_key))
        .await
        .err()
        .expect("started with another master key");
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("master key"), "{}", exited.stderr);

    let server = start_with_token(&upstream, dir.path(), &["--master-key", &key]).await;
    assert_eq!(
        gateway_status(server.gateway, &code).await,
        Some(StatusCode::OK)
    );
}

// ---------------------------------------------------------------------------------------------
// 9. HTTPS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_gateway_accepts_an_appcode_over_https() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    let server = start_with_token(
        &upstream,
        dir.path(),
        &[
            "--gateway-tls-cert",
            cert.to_str().unwrap(),
            "--gateway-tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        server
            .stdout()
            .contains(&format!("gateway listening on https://{}", server.gateway)),
        "{}",
        server.stdout()
    );
    let (_, _, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("tls_app")
        .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.gateway).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(REQUEST_TIMEOUT, connector.connect(name, tcp))
        .await
        .unwrap()
        .expect("TLS handshake");
    let mut req = get("/secure");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    let res = send_over(tls, "localhost", req).await.unwrap();
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.upstream_headers()["x-forwarded-proto"], ["https"]);

    // Plain HTTP on the TLS listener gets no HTTP answer.
    assert!(try_send(server.gateway, get("/plain")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_https_refuses_plain_http_with_apig_0607() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &["--require-https"]).await;
    let (_, _, code) = Admin::new(server.admin, TOKEN).app_with_code("plain").await;
    let res = call_gateway(server.gateway, "/x", Some(&code)).await;
    res.assert_apig_error(StatusCode::BAD_REQUEST, "APIG.0607");
    assert_eq!(upstream.requests(), 0);
}

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

// ---------------------------------------------------------------------------------------------
// 10. A damaged database file

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_database_file_stops_the_start_with_one_clear_error() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let admin = Admin::new(server.admin, TOKEN);
    // Enough codes for their table to span several pages.
    for a in 0..20 {
        let app = admin.create_app(&format!("damaged_{a}")).await;
        for _ in 0..5 {
            admin.generate_code(&app).await;
        }
    }
    assert!(server.stop().await.success());
    let db = database_path(dir.path());
    sqlite_file::damage_a_page_of(&db, "app_codes");

    let mut args = base_args(&upstream, dir.path());
    args.extend(["--admin-token".into(), TOKEN.into()]);
    let exited = Server::start(serve_command(&args))
        .await
        .err()
        .expect("started on a corrupt database file");
    assert!(!exited.status.success(), "{exited:?}");
    let stderr = &exited.stderr;
    assert_eq!(stderr.matches("is corrupt").count(), 1, "{stderr}");
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    assert!(stderr.contains(".recover"), "{stderr}");

    // With logging off the error still reaches the operator, once.
    args.extend(["--log".into(), "off".into()]);
    let (status, _, stderr) = run_to_exit(serve_command(&args)).await;
    assert!(!status.success());
    assert_eq!(stderr.matches("is corrupt").count(), 1, "{stderr}");
}
