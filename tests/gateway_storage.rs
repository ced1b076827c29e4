//! The `apig-appcode` binary's SQLite file: AppCodes survive `kill -9`, two servers share one
//! file, a master key keeps them out of it, and a damaged file stops the start.
//!
//! Run: `cargo test --features gateway --test gateway_storage`.

use http::StatusCode;

#[path = "support/binary.rs"]
mod support;
use support::*;
#[path = "support/sqlite_file.rs"]
mod sqlite_file;

// ---------------------------------------------------------------------------------------------
// Persistence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appcode_survives_kill_9_and_restart() {
    let ((upstream, dir), server, (app, code_id, code)) = serve_with_code("durable", &[]).await;
    server.kill_9();

    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let res = call_gateway(server.gateway, "/after-crash", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let seen = res.upstream_headers();
    assert_eq!(seen["x-apig-app-id"], [app]);
    assert_eq!(seen["x-apig-appcode-id"], [code_id]);
}

// ---------------------------------------------------------------------------------------------
// Two servers, one database

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
    admin_a.create_code(&app, &early).await;
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
// Encryption at rest

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_keeps_appcodes_out_of_the_database_file_and_is_required() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "0f1e2d3c4b5a6978".repeat(4);
    let server = start_with_token(&upstream, dir.path(), &["--master-key", &key]).await;
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("sealed").await;
    let early = format!("SealedValue{}", "s".repeat(60));
    admin.create_code(&app, &early).await;
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
    let exited = start_refused(&without_key, "without the master key").await;
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("master key"), "{}", exited.stderr);

    let mut other_key = without_key.clone();
    other_key.extend(["--master-key".into(), "a5".repeat(32)]);
    let exited = start_refused(&other_key, "with another master key").await;
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("master key"), "{}", exited.stderr);

    let server = start_with_token(&upstream, dir.path(), &["--master-key", &key]).await;
    assert_eq!(
        gateway_status(server.gateway, &code).await,
        Some(StatusCode::OK)
    );
}

// ---------------------------------------------------------------------------------------------
// A damaged database file

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
    let exited = start_refused(&args, "on a corrupt database file").await;
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
