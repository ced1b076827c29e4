//! `apig-appcode import` against a second `apig-appcode serve` acting as the source: 1 000 apps
//! with 5 AppCodes each copied into a running target, an interrupted run resumed, a repeat that
//! skips everything, and the official SDK reading the copies; the plan of a dry run,
//! differences reported then updated, and the one-line errors of sources that cannot be used.
//!
//! Run: `cargo test --features gateway --test import`.
#![cfg(all(feature = "gateway", unix))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apig_appcode::acl::{AclType, AppAcl};
use apig_appcode::quota::{AppQuota, TimeUnit};
use apig_appcode::store::{
    App, AppFilter, AppQuotaRecord, Scope, SecretString, SqliteOptions, SqliteStore, Store,
    Timestamp,
};
use apig_appcode::AppCode;
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde_json::{json, Value};

#[path = "support/binary.rs"]
mod support;
use support::*;

#[path = "support/postgres.rs"]
mod pg;

#[path = "support/records.rs"]
mod records;
#[path = "support/sdk_python.rs"]
mod sdk_python;
use records::{app_in, code};
use sdk_python::{run_sdk_script, sdk_python};

const DEFAULT_ID: &str = "00000000000000000000000000000001";
const SOURCE_TOKEN: &str = "source-admin-token-0123456789";
const TARGET_AK: &str = "TARGETAK000000000001";
const TARGET_SK: &str = "target-secret-key-0123456789abcdef";

/// A store in `dir`'s `db`, as `serve` opens it there.
fn store_in(dir: &Path) -> SqliteStore {
    SqliteStore::open(database_path(dir), SqliteOptions::new()).unwrap()
}

fn scope() -> Scope {
    Scope::new(DEFAULT_ID, DEFAULT_ID)
}

fn app(n: u64) -> App {
    app_in(&scope(), n)
}

/// `apps` apps with `codes` AppCodes each in the SQLite file of `dir`, the first app with an ACL
/// and the first two bound to one quota: what the source serves.
async fn seed(dir: &Path, apps: u64, codes: u64) {
    let store = store_in(dir);
    for a in 1..=apps {
        store.create_app(app(a)).await.unwrap();
        for c in 0..codes {
            store.create_app_code(&scope(), code(a, c)).await.unwrap();
        }
    }
    let acl = AppAcl::new(AclType::Deny, ["192.0.2.0/24"]).unwrap();
    store.set_app_acl(&scope(), &app(1).id, acl).await.unwrap();
    let quota = AppQuotaRecord {
        id: "q".repeat(32),
        name: "partners".into(),
        quota: AppQuota::new(1000, TimeUnit::Day, 1).unwrap(),
        remark: "for partners".into(),
        create_time: Timestamp::from_unix_nanos(1_600_000_000_000_000_000),
        bound_app_num: 0,
    };
    store.create_app_quota(&scope(), quota).await.unwrap();
    let bound = [app(1).id, app(2).id];
    let at = Timestamp::from_unix_nanos(1_650_000_000_000_000_000);
    store
        .bind_app_quota(&scope(), &"q".repeat(32), &bound, at)
        .await
        .unwrap();
}

/// The instance as `store` holds it: apps (ID, name, remark, key, secret), codes (ID, app,
/// value), ACLs, quota bindings.
async fn contents(store: &dyn Store) -> (Vec<[String; 5]>, Vec<[String; 3]>, String) {
    let mut apps: Vec<[String; 5]> = store
        .list_apps(&scope(), &AppFilter::default(), 0, 100_000)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| {
            [
                a.id,
                a.name,
                a.remark,
                a.app_key,
                a.app_secret.expose().to_owned(),
            ]
        })
        .collect();
    apps.sort();
    let mut codes: Vec<[String; 3]> = store
        .instance_app_codes(DEFAULT_ID)
        .await
        .unwrap()
        .into_iter()
        .map(|c| [c.id, c.app_id, c.value.expose().to_owned()])
        .collect();
    codes.sort();
    let acls = store.instance_app_acls(DEFAULT_ID).await.unwrap();
    let quotas = store.instance_app_quotas(DEFAULT_ID).await.unwrap();
    (apps, codes, format!("{acls:?} {quotas:?}"))
}

/// `apig-appcode import ARGS` from `from`, with the source token and no other `APIG_*`
/// variable of ours.
fn import_command(from: &str, target_dir: &Path, args: &[&str]) -> Command {
    import_into(from, &database_url(target_dir), args)
}

/// `apig-appcode import ARGS` from `from` into the store at `database`.
fn import_into(from: &str, database: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["import", "--from", from])
        .args(["--source-project", DEFAULT_ID])
        .args(["--source-instance", DEFAULT_ID])
        .args(["--database", database])
        .args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("APIG_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("APIG_SOURCE_TOKEN", SOURCE_TOKEN);
    cmd
}

/// The source: `serve` on the store of `dir`, with the source token; and its URL.
async fn start_source(upstream: &Upstream, dir: &Path) -> (Server, String) {
    let mut args = base_args(upstream, dir);
    args.extend(["--admin-token".into(), SOURCE_TOKEN.into()]);
    let source = Server::start(serve_command(&args)).await.unwrap();
    let from = format!("http://{}", source.admin);
    (source, from)
}

impl Finished {
    /// The summary's row for `kind`: created, skipped, differing, updated, failed.
    fn row(&self, kind: &str) -> [u64; 5] {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(kind) && l[kind.len()..].starts_with("  "))
            .unwrap_or_else(|| panic!("no {kind} row in:\n{}", self.stdout));
        let cells: Vec<u64> = line[kind.len()..]
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        cells.try_into().unwrap()
    }
}

async fn run(cmd: Command) -> Finished {
    let (status, stdout, stderr) = run_to_exit_within(cmd, Duration::from_secs(120)).await;
    Finished::new(status, stdout, stderr)
}

async fn run_to_exit_within(
    cmd: Command,
    bound: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut proc = Proc::spawn(cmd);
    let status = proc.wait_exit(bound).await;
    (status, proc.stdout(), proc.stderr())
}

/// A temporary directory in memory where there is one: the SQLite files of the big test are
/// synced on every write, and what this test measures is the import, not the disk.
fn fast_tempdir() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_apps_are_copied_resumed_skipped_and_read_by_the_sdk() {
    const APPS: u64 = 1000;
    const CODES: u64 = 5;
    let upstream = Upstream::start().await;
    let source_dir = fast_tempdir();
    seed(source_dir.path(), APPS, CODES).await;
    let (source, from) = start_source(&upstream, source_dir.path()).await;

    // The target runs while the import writes to its store.
    let target_dir = fast_tempdir();
    let mut args = base_args(&upstream, target_dir.path());
    args.extend(["--refresh-interval".into(), "1".into()]);
    let mut serve = serve_command(&args);
    serve
        .env("APIG_ACCESS_KEY", TARGET_AK)
        .env("APIG_SECRET_KEY", TARGET_SK);
    let target = Server::start(serve).await.unwrap();

    // Interrupted once it has copied something: it says how to resume, and reports.
    let mut first = Proc::spawn(import_command(&from, target_dir.path(), &[]));
    wait_until(
        PROPAGATION_TIMEOUT,
        "the import's first progress line",
        || {
            let started = first.stderr().contains("import: ");
            async move { started.then_some(()) }
        },
    )
    .await;
    first.signal("INT");
    let status = first.wait_exit(EXIT_TIMEOUT).await;
    assert_eq!(status.code(), Some(130), "{}", first.stderr());
    assert!(
        first.stderr().contains("run the same command again"),
        "{}",
        first.stderr()
    );

    // Run again: it resumes, what the first run copied skipped, the rest created.
    let started = Instant::now();
    let second = run(import_command(&from, target_dir.path(), &[])).await;
    let elapsed = started.elapsed();
    second.ok();
    let apps = second.row("apps");
    let codes = second.row("AppCodes");
    assert_eq!(apps[0] + apps[1], APPS, "{}", second.stdout);
    assert!(
        apps[1] >= 1,
        "the first run copied nothing:\n{}",
        second.stdout
    );
    assert_eq!(codes[0] + codes[1], APPS * CODES, "{}", second.stdout);
    assert_eq!(
        [&apps[2..], &codes[2..]].concat(),
        [0; 6],
        "{}",
        second.stdout
    );
    assert_eq!(second.row("app ACLs")[..2].iter().sum::<u64>(), 1);
    assert_eq!(second.row("app quotas")[..2].iter().sum::<u64>(), 1);
    assert_eq!(second.row("quota bindings")[..2].iter().sum::<u64>(), 2);
    // For information (no assertion on time): the resumed run's rate.
    eprintln!(
        "resumed import: {} apps, {} AppCodes in {:.2} s",
        apps[0],
        codes[0],
        elapsed.as_secs_f64()
    );
    // Plain progress lines (stderr is a pipe here), the last one at the total.
    assert!(
        second
            .stderr
            .contains(&format!("import: {APPS}/{APPS} apps")),
        "{}",
        second.stderr
    );

    // A repeat skips everything.
    let third = run(import_command(&from, target_dir.path(), &[])).await;
    third.ok();
    assert_eq!(third.row("apps"), [0, APPS, 0, 0, 0]);
    assert_eq!(third.row("AppCodes"), [0, APPS * CODES, 0, 0, 0]);
    assert_eq!(third.row("quota bindings"), [0, 2, 0, 0, 0]);

    // The target holds what the source holds, and its running gateway takes the codes.
    let held = contents(&store_in(target_dir.path())).await;
    assert_eq!(held, contents(&store_in(source_dir.path())).await);
    assert_eq!(held.1.len() as u64, APPS * CODES);
    let last = code(APPS, CODES - 1).value.expose().to_owned();
    let gateway = target.gateway;
    wait_until(PROPAGATION_TIMEOUT, "the target's gateway takes an imported code", || {
        let last = last.clone();
        async move { (gateway_status(gateway, &last).await == Some(StatusCode::OK)).then_some(()) }
    })
    .await;

    // No secret in what the runs printed.
    let secret = app(1).app_secret.expose().to_owned();
    for out in [
        &second.stdout,
        &second.stderr,
        &third.stdout,
        &first.stderr(),
    ] {
        assert!(!out.contains(&secret) && !out.contains(&last) && !out.contains(SOURCE_TOKEN));
    }

    // The official SDK reads the copies on the target as they were at the source.
    sdk_reads(target.admin, APPS).await;
    source.stop().await;
    target.stop().await;
}

/// The SDK script checks a few of the copied apps, keys, secrets and codes on `admin`.
async fn sdk_reads(admin: SocketAddr, total: u64) {
    let Some(python) = sdk_python() else { return };
    let apps: Vec<Value> = [1, 2, 500, total]
        .iter()
        .map(|&n| {
            let a = app(n);
            let codes: Vec<Value> = (0..5)
                .map(|c| {
                    let c = code(n, c);
                    json!({"id": c.id, "app_code": c.value.expose()})
                })
                .collect();
            json!({"id": a.id, "name": a.name, "remark": a.remark, "app_key": a.app_key,
                   "app_secret": a.app_secret.expose(), "codes": codes})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.json");
    std::fs::write(&expect, json!({"total": total, "apps": apps}).to_string()).unwrap();
    let env = [
        ("APIG_ENDPOINT", &*format!("http://{admin}")),
        ("APIG_PROJECT", DEFAULT_ID),
        ("APIG_INSTANCE", DEFAULT_ID),
        ("APIG_AK", TARGET_AK),
        ("APIG_SK", TARGET_SK),
        ("APIG_EXPECT", expect.to_str().unwrap()),
    ];
    let limit = Duration::from_secs(120);
    let out = run_sdk_script(&python, "import_check.py", &[], &env, limit).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_then_differences_are_reported_then_updated() {
    let upstream = Upstream::start().await;
    let source_dir = tempfile::tempdir().unwrap();
    seed(source_dir.path(), 3, 2).await;
    let (source, from) = start_source(&upstream, source_dir.path()).await;

    // The target already holds app 2 with another remark and secret, and one of its codes
    // with another value.
    let target_dir = tempfile::tempdir().unwrap();
    {
        let target = store_in(target_dir.path());
        let mut other = app(2);
        other.remark = "changed here".into();
        other.app_secret = SecretString::new("TargetOwnSecret0123456789");
        target.create_app(other).await.unwrap();
        let mut replaced = code(2, 0);
        replaced.value = AppCode::parse(&format!("target{}", "y".repeat(60))).unwrap();
        target.create_app_code(&scope(), replaced).await.unwrap();
    }
    let before = contents(&store_in(target_dir.path())).await;

    // The plan names items by IDs and names, and writes nothing.
    let plan = run(import_command(&from, target_dir.path(), &["--dry-run"])).await;
    plan.ok();
    assert!(
        plan.stdout
            .contains(&format!("create app {} (app_1)", app(1).id)),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains(&format!(
        "differs app {} (app_2): remark, app_secret",
        app(2).id
    )));
    assert!(plan.stdout.contains(&format!(
        "differs AppCode {} of app {}: app_code",
        code(2, 0).id,
        app(2).id
    )));
    assert_eq!(plan.row("apps"), [2, 0, 1, 0, 0], "{}", plan.stdout);
    assert_eq!(contents(&store_in(target_dir.path())).await, before);

    // A real run creates the rest and reports the differences, leaving them.
    let real = run(import_command(&from, target_dir.path(), &[])).await;
    real.ok();
    assert_eq!(real.row("apps"), [2, 0, 1, 0, 0], "{}", real.stdout);
    assert_eq!(real.row("AppCodes"), [5, 0, 1, 0, 0], "{}", real.stdout);
    let target = store_in(target_dir.path());
    assert_eq!(
        target.get_app(&scope(), &app(2).id).await.unwrap().remark,
        "changed here"
    );
    drop(target);

    // --update makes them match; then nothing differs.
    let updated = run(import_command(&from, target_dir.path(), &["--update"])).await;
    updated.ok();
    assert_eq!(updated.row("apps"), [0, 2, 0, 1, 0], "{}", updated.stdout);
    assert_eq!(
        updated.row("AppCodes"),
        [0, 5, 0, 1, 0],
        "{}",
        updated.stdout
    );
    assert_eq!(
        contents(&store_in(target_dir.path())).await,
        contents(&store_in(source_dir.path())).await
    );
    let again = run(import_command(&from, target_dir.path(), &[])).await;
    again.ok();
    assert_eq!(again.row("apps"), [0, 3, 0, 0, 0]);

    // No secret or AppCode value in any output.
    for out in [&plan, &real, &updated] {
        let all = format!("{}{}", out.stdout, out.stderr);
        for a in 1..=3 {
            assert!(!all.contains(app(a).app_secret.expose()), "{all}");
            assert!(!all.contains(code(a, 0).value.expose()), "{all}");
        }
        assert!(!all.contains("TargetOwnSecret0123456789"), "{all}");
    }
    source.stop().await;
}

/// A fake source on 127.0.0.1 port 0 serving `router`.
async fn fake_source(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// `v` as a JSON answer.
fn json_body(v: Value) -> axum::response::Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

fn base() -> String {
    format!("/v2/{DEFAULT_ID}/apigw/instances/{DEFAULT_ID}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_failing_answers_are_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    // The app list answers 429 (retry after 0 s), then 503, then the page.
    let apps = move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => (AxumStatus::TOO_MANY_REQUESTS, [("retry-after", "0")], "{}").into_response(),
                1 => (AxumStatus::SERVICE_UNAVAILABLE, "busy").into_response(),
                _ => json_body(json!({"total": 1, "size": 1, "apps": [
                    {"id": app(7).id, "name": "app_7", "remark": "", "app_key": app(7).app_key,
                     "app_secret": app(7).app_secret.expose()}]})),
            }
        }
    };
    let app_id = app(7).id;
    let router = Router::new()
        .route(
            &format!("{}/app-quotas", base()),
            get(|| async { json_body(json!({"total": 0, "size": 0, "quotas": []})) }),
        )
        .route(&format!("{}/apps", base()), get(apps))
        .route(
            &format!("{}/apps/{app_id}/app-codes", base()),
            get(|| async {
                let c = code(7, 0);
                json_body(json!({"total": 1, "size": 1, "app_codes": [
                    {"id": c.id, "app_code": c.value.expose(), "create_time": "2024-01-02T03:04:05Z"}]}))
            }),
        )
        .route(
            &format!("{}/apps/{app_id}/app-acl", base()),
            get(|| async { json_body(json!({"app_id": app(7).id, "app_acl_values": []})) }),
        );
    let from = fake_source(router).await;
    let target_dir = tempfile::tempdir().unwrap();
    let done = run(import_command(&from, target_dir.path(), &[])).await;
    done.ok();
    assert_eq!(done.row("apps"), [1, 0, 0, 0, 0]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let held = store_in(target_dir.path())
        .get_app_code(&scope(), &app_id, &code(7, 0).id)
        .await
        .unwrap();
    assert_eq!(held.value, code(7, 0).value);
    assert_eq!(
        held.create_time.to_string(),
        "2024-01-02T03:04:05.000000000Z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_cannot_be_used_are_one_line_errors() {
    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path();

    // Nothing listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    run(import_command(&closed, target, &[]))
        .await
        .failed(&format!("cannot connect to {closed}"));

    // A refused credential: named by its variable, never shown.
    let refusing = fake_source(Router::new().fallback(|| async {
        (
            AxumStatus::UNAUTHORIZED,
            json_body(json!({"error_code": "APIG.1002", "error_msg": "Incorrect token"})),
        )
    }))
    .await;
    let refused = run(import_command(&refusing, target, &[])).await;
    refused.failed("refused the token from the environment variable APIG_SOURCE_TOKEN");
    assert!(!refused.stderr.contains(SOURCE_TOKEN));

    // A 200 that is not JSON, and JSON that is not a list.
    for body in ["<html>not json</html>", r#"{"quotas": "many"}"#] {
        let odd = fake_source(Router::new().fallback(move || async move { body })).await;
        run(import_command(&odd, target, &[]))
            .await
            .failed("unexpected answer from");
    }

    // No credential at all, or half a pair: usage errors, before any call.
    let mut none = import_command(&closed, target, &[]);
    none.env_remove("APIG_SOURCE_TOKEN");
    let done = run(none).await;
    assert_eq!(done.code, Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains("APIG_SOURCE_ACCESS_KEY"),
        "{}",
        done.stderr
    );
    let mut half = import_command(&closed, target, &[]);
    half.env("APIG_SOURCE_ACCESS_KEY", "AK0000000001");
    assert_eq!(run(half).await.code, Some(2));
    // Nothing was written.
    assert_eq!(
        contents(&store_in(target)).await.0,
        Vec::<[String; 5]>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_key_pair_signs_as_the_sdk_does() {
    let upstream = Upstream::start().await;
    let source_dir = tempfile::tempdir().unwrap();
    seed(source_dir.path(), 2, 1).await;
    let mut serve = serve_command(&base_args(&upstream, source_dir.path()));
    serve
        .env("APIG_ACCESS_KEY", TARGET_AK)
        .env("APIG_SECRET_KEY", TARGET_SK);
    let source = Server::start(serve).await.unwrap();
    let from = format!("http://{}", source.admin);
    let target_dir = tempfile::tempdir().unwrap();

    let signed = |sk: &str| {
        let mut cmd = import_command(&from, target_dir.path(), &[]);
        cmd.env_remove("APIG_SOURCE_TOKEN")
            .env("APIG_SOURCE_ACCESS_KEY", TARGET_AK)
            .env("APIG_SOURCE_SECRET_KEY", sk);
        cmd
    };
    let wrong = run(signed("not-the-secret-key-0123456789")).await;
    wrong.failed("refused the access key from the environment variables APIG_SOURCE_ACCESS_KEY");
    assert!(!wrong.stderr.contains("not-the-secret-key"));
    let done = run(signed(TARGET_SK)).await;
    done.ok();
    assert_eq!(done.row("apps"), [2, 0, 0, 0, 0]);
    assert_eq!(done.row("AppCodes"), [2, 0, 0, 0, 0]);
    let by_id: BTreeMap<_, _> = contents(&store_in(target_dir.path()))
        .await
        .0
        .into_iter()
        .map(|a| (a[0].clone(), a))
        .collect();
    assert_eq!(by_id[&app(2).id][4], app(2).app_secret.expose());
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_postgres_while_a_node_serves_it() {
    let Some(db) = pg::TestDb::create("import::into_postgres_while_a_node_serves_it").await else {
        return;
    };
    let upstream = Upstream::start().await;
    let source_dir = tempfile::tempdir().unwrap();
    seed(source_dir.path(), 3, 2).await;
    let (source, from) = start_source(&upstream, source_dir.path()).await;
    let mut args = serve_args(&upstream.url(), db.url());
    args.extend(["--admin-token".into(), TOKEN.into()]);
    let target = Server::start(serve_command(&args)).await.unwrap();

    let done = run(import_into(&from, db.url(), &[])).await;
    done.ok();
    assert_eq!(done.row("apps"), [3, 0, 0, 0, 0]);
    assert_eq!(done.row("AppCodes"), [6, 0, 0, 0, 0]);
    assert_eq!(done.row("quota bindings"), [2, 0, 0, 0, 0]);
    // The node serving the database hears of the new codes.
    let last = code(3, 1).value.expose().to_owned();
    let gateway = target.gateway;
    wait_until(PROPAGATION_TIMEOUT, "the node takes an imported code", || {
        let last = last.clone();
        async move { (gateway_status(gateway, &last).await == Some(StatusCode::OK)).then_some(()) }
    })
    .await;
    let again = run(import_into(&from, db.url(), &[])).await;
    again.ok();
    assert_eq!(again.row("AppCodes"), [0, 6, 0, 0, 0]);
    source.stop().await;
    target.stop().await;
}
