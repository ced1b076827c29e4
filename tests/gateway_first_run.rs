//! The `apig-appcode` binary's first run and the README's quickstart, end to end: real
//! processes, real sockets, a real SQLite file.
//!
//! Each test starts the binary on ports 0 with its own temporary directory and an echo upstream
//! (`support/binary.rs`). Every wait polls against a deadline; nothing asserts on elapsed time.
//!
//! Run: `cargo test --features gateway --test gateway_first_run`.

use std::os::unix::fs::PermissionsExt;

use http::{Method, StatusCode};

#[path = "support/binary.rs"]
mod support;
use support::*;

// ---------------------------------------------------------------------------------------------
// First run

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
    let failed = start_refused(&args, "on a taken admin port").await;
    assert!(!failed.status.success());
    assert!(
        !token_file.exists(),
        "a failed first start left its token file: {}",
        failed.stderr
    );
    drop(taken);

    let server = start_without_token(&upstream, dir.path()).await;
    let out = server.stdout();
    assert!(out.contains(&token_file.display().to_string()), "{out}");
    assert!(token_file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_alone_switch_the_first_run_token_off_and_say_so() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = apig_appcode::gateway::token_path(&database_path(dir.path()));
    let mut args = base_args(&upstream, dir.path());
    args.extend(
        [
            "--access-key",
            "ONLYAK",
            "--secret-key",
            "only-secret-key-0123456789",
        ]
        .map(String::from),
    );
    let server = Server::start(serve_command(&args)).await.unwrap();
    let out = server.stdout();
    assert!(
        out.contains("AK/SK signatures only (1 access key(s))"),
        "{out}"
    );
    assert!(out.contains("--admin-token"), "{out}");
    assert!(!out.contains("only-secret-key"), "{out}");
    assert!(!token_file.exists(), "a token file was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_writes_a_private_token_file_and_later_runs_reuse_it() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = apig_appcode::gateway::token_path(&database_path(dir.path()));
    assert_eq!(token_file, dir.path().join("db.admin-token"));

    let server = start_without_token(&upstream, dir.path()).await;
    let token = std::fs::read_to_string(&token_file).unwrap();
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    assert!(token.trim().len() >= 16);

    let out = server.stdout();
    assert!(out.contains(&token_file.display().to_string()), "{out}");
    assert!(out.contains("X-Auth-Token"), "{out}");
    // The warning names the directory no upstream may serve.
    assert!(
        out.contains(&format!(
            "a static file server started in {}",
            dir.path().display()
        )),
        "{out}"
    );
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

    let second = start_without_token(&upstream, dir.path()).await;
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
// The quickstart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_create_call_reject_delete_over_http() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_without_token(&upstream, dir.path()).await;
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
