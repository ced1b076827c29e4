//! Several `apig-appcode serve` processes on one PostgreSQL database: what one node's
//! management API does takes effect on the other node's gateway, through LISTEN/NOTIFY (the
//! nodes reload their caches only once an hour here, so a refresh cannot explain it), and the
//! AppCode quota holds across nodes. A revocation reaches a node whose gateway is saturated,
//! within a bound asserted as the node's state.
//!
//! Needs `APIG_TEST_DATABASE_URL=postgres://...`; each test works in a schema of its own.
//! Run: `cargo test --features gateway --test postgres_nodes`.

#![cfg(all(feature = "gateway", feature = "postgres"))]

#[path = "support/admin_request.rs"]
mod admin_request;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/load.rs"]
mod load;
#[path = "support/postgres.rs"]
mod pg;
#[path = "postgres_nodes/saturated.rs"]
mod saturated;

use std::sync::Arc;

use admin_request::admin_request;
use binary::{
    admitted_until_refused, run_to_exit, serve_args, serve_command, wait_until, Server, Upstream,
    PROPAGATION_TIMEOUT, REQUEST_TIMEOUT,
};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pg::TestDb;
use serde_json::{json, Value};
use tokio::task::JoinSet;

const TOKEN: &str = "postgres-nodes-admin-token";

/// Starts one `apig-appcode serve` node on `db`, with debug logs, caches refreshed only once an
/// hour; returns once it is ready (its cache loaded).
async fn start_node(db: &TestDb, upstream: &Upstream) -> Server {
    start_node_with(db, upstream, &[]).await
}

/// [`start_node`] with `extra` arguments.
async fn start_node_with(db: &TestDb, upstream: &Upstream, extra: &[&str]) -> Server {
    let mut args = serve_args(&upstream.url(), db.url());
    args.extend(["--admin-token", TOKEN, "--refresh-interval", "3600"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut cmd = serve_command(&args);
    cmd.env("APIG_LOG", "apig_appcode=debug");
    Server::start(cmd).await.expect("the node starts")
}

/// A node's answer: status and JSON body (`Null` when empty or not JSON).
struct Answer {
    status: StatusCode,
    body: Value,
}

#[derive(Clone)]
struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.0.request(request))
            .await
            .expect("an answer within the bound")
            .expect("the node answers");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// A management call on `node` at `path` under the default project and instance.
    async fn admin(
        &self,
        node: &Server,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let request = admin_request(node.admin, TOKEN, method, path, body).unwrap();
        self.send(request).await
    }

    /// Calls `node`'s gateway with `code`; returns the status.
    async fn call(&self, node: &Server, code: &str) -> StatusCode {
        let request = Request::builder()
            .uri(format!("http://{}/orders", node.gateway))
            .header("x-apig-appcode", code)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(request).await.status
    }

    /// Waits (within [`PROPAGATION_TIMEOUT`]) until `node`'s gateway answers `code` with
    /// `expected`.
    async fn until(&self, node: &Server, code: &str, expected: StatusCode) {
        let what = format!("the gateway at {} answers {expected}", node.gateway);
        wait_until(PROPAGATION_TIMEOUT, &what, || async move {
            (self.call(node, code).await == expected).then_some(())
        })
        .await;
    }

    /// Creates a quota of `calls` a day (windows from 2026-01-01) on `node` and binds `app_id`.
    async fn bind_daily_quota(&self, node: &Server, app_id: &str, calls: u64) {
        let quota = self
            .admin(
                node,
                Method::POST,
                "/app-quotas",
                Some(
                    json!({"name": format!("daily_{app_id}"), "call_limits": calls,
                            "time_unit": "DAY", "time_interval": 1,
                            "reset_time": "2026-01-01 00:00:00"}),
                ),
            )
            .await;
        assert_eq!(quota.status, StatusCode::CREATED, "{}", quota.body);
        let quota_id = quota.body["app_quota_id"].as_str().unwrap();
        let bound = self
            .admin(
                node,
                Method::POST,
                &format!("/app-quotas/{quota_id}/binding-apps"),
                Some(json!({ "app_ids": [app_id] })),
            )
            .await;
        assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.body);
    }

    async fn create_app(&self, node: &Server, name: &str) -> String {
        let answer = self
            .admin(node, Method::POST, "/apps", Some(json!({ "name": name })))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_owned()
    }

    /// Deletes `path` on `node`, which acknowledges it (204).
    async fn delete(&self, node: &Server, path: &str) {
        let deleted = self.admin(node, Method::DELETE, path, None).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    }

    /// Sets the ACL of `app_id` on `node` to `kind` (`PERMIT` or `DENY`) of `values`.
    async fn set_acl(&self, node: &Server, app_id: &str, kind: &str, values: &[&str]) {
        let acl = json!({"app_acl_type": kind, "app_acl_values": values});
        let path = format!("/apps/{app_id}/app-acl");
        let set = self.admin(node, Method::PUT, &path, Some(acl)).await;
        assert_eq!(set.status, StatusCode::CREATED, "{}", set.body);
    }

    /// An app `name` and an AppCode of it, created through `a`, which accepts the code at once,
    /// and accepted by `b` once the change reaches it; returns the app's ID, the code's ID and
    /// its value.
    async fn shared_code(&self, a: &Server, b: &Server, name: &str) -> (String, String, String) {
        let app_id = self.create_app(a, name).await;
        let (code_id, code) = self.create_code(a, &app_id).await;
        assert_eq!(self.call(a, &code).await, StatusCode::OK);
        self.until(b, &code, StatusCode::OK).await;
        (app_id, code_id, code)
    }

    /// Generates an AppCode on `node`; returns its ID and value.
    async fn create_code(&self, node: &Server, app_id: &str) -> (String, String) {
        let answer = self
            .admin(
                node,
                Method::PUT,
                &format!("/apps/{app_id}/app-codes"),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let field = |name: &str| answer.body[name].as_str().unwrap().to_owned();
        (field("id"), field("app_code"))
    }
}

/// Two nodes on a fresh schema, both ready, and the upstream they proxy to (kept as long as
/// they are).
async fn two_nodes(db: &TestDb) -> (Http, Upstream, Server, Server) {
    let upstream = Upstream::start().await;
    let (a, b) = tokio::join!(start_node(db, &upstream), start_node(db, &upstream));
    (Http::new(), upstream, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_created_and_deleted_on_one_node_take_effect_on_the_other() {
    let test = "codes_created_and_deleted_on_one_node_take_effect_on_the_other";
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let (http, _upstream, a, b) = two_nodes(&db).await;
    // Created through A, accepted by B.
    let (app_id, code_id, code) = http.shared_code(&a, &b, "orders_app").await;

    // Deleted through B: B rejects it as soon as the deletion is acknowledged, A soon after.
    http.delete(&b, &format!("/apps/{app_id}/app-codes/{code_id}"))
        .await;
    assert_eq!(http.call(&b, &code).await, StatusCode::UNAUTHORIZED);
    http.until(&a, &code, StatusCode::UNAUTHORIZED).await;

    // An app deleted through A takes its codes (created through B) along, on B too.
    let (_, first) = http.create_code(&b, &app_id).await;
    let (_, second) = http.create_code(&b, &app_id).await;
    http.until(&a, &first, StatusCode::OK).await;
    http.until(&a, &second, StatusCode::OK).await;
    http.delete(&a, &format!("/apps/{app_id}")).await;
    for code in [&first, &second] {
        assert_eq!(http.call(&a, code).await, StatusCode::UNAUTHORIZED);
        http.until(&b, code, StatusCode::UNAUTHORIZED).await;
    }

    // Debug logs of both nodes name the changes, never a value.
    for node in [&a, &b] {
        let log = node.stderr();
        assert!(log.contains("AppCode"), "debug logging is on");
        for value in [&code, &first, &second] {
            assert!(!log.contains(value.as_str()), "a node logged an AppCode");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_set_on_one_node_is_enforced_by_every_node() {
    let test = "an_acl_set_on_one_node_is_enforced_by_every_node";
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let (http, upstream, a, b) = two_nodes(&db).await;
    let (app_id, _, code) = http.shared_code(&a, &b, "acl_app").await;

    // The test's own address denied through A: A at once, B through the notification (the
    // nodes refresh only once an hour).
    http.set_acl(&a, &app_id, "DENY", &["127.0.0.0/8", "::1"])
        .await;
    assert_eq!(http.call(&a, &code).await, StatusCode::FORBIDDEN);
    http.until(&b, &code, StatusCode::FORBIDDEN).await;
    // A node started now loads it with the codes.
    let c = start_node(&db, &upstream).await;
    assert_eq!(http.call(&c, &code).await, StatusCode::FORBIDDEN);

    // Replaced through B, then removed through C: each reaches the others.
    http.set_acl(&b, &app_id, "PERMIT", &["127.0.0.1", "::1"])
        .await;
    http.until(&a, &code, StatusCode::OK).await;
    http.until(&c, &code, StatusCode::OK).await;
    http.set_acl(&b, &app_id, "PERMIT", &["192.0.2.1"]).await;
    http.until(&a, &code, StatusCode::FORBIDDEN).await;
    http.delete(&c, &format!("/apps/{app_id}/app-acl")).await;
    for node in [&a, &b, &c] {
        http.until(node, &code, StatusCode::OK).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_listener_was_cut_still_learns_of_a_deletion() {
    let test = "a_node_whose_listener_was_cut_still_learns_of_a_deletion";
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let (http, _upstream, a, b) = two_nodes(&db).await;
    let (app_id, code_id, code) = http.shared_code(&a, &b, "cut_app").await;

    // Cut every listener of the schema, and delete while they reconnect: the announcement is
    // lost, and only the resync after reconnecting can revoke the code on B.
    let listeners = format!("{} listener", db.schema());
    let killed: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                   WHERE application_name = $1) t",
            &[&listeners],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2, "one listener per node");
    http.delete(&a, &format!("/apps/{app_id}/app-codes/{code_id}"))
        .await;
    assert_eq!(http.call(&a, &code).await, StatusCode::UNAUTHORIZED);
    http.until(&b, &code, StatusCode::UNAUTHORIZED).await;

    // Listening again: the next creation arrives by announcement.
    let (_, next) = http.create_code(&a, &app_id).await;
    http.until(&b, &next, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_quota() {
    let Some(db) = TestDb::create("two_nodes_share_one_quota").await else {
        return;
    };
    let (http, _upstream, a, b) = two_nodes(&db).await;
    let app_id = http.create_app(&a, "quota_app").await;
    let nodes = [Arc::new(a), Arc::new(b)];

    let mut creates = JoinSet::new();
    for i in 0..50 {
        let (http, node, app_id) = (http.clone(), Arc::clone(&nodes[i % 2]), app_id.clone());
        creates.spawn(async move {
            http.admin(
                &node,
                Method::PUT,
                &format!("/apps/{app_id}/app-codes"),
                None,
            )
            .await
        });
    }
    let (mut created, mut refused) = (Vec::new(), 0);
    while let Some(answer) = creates.join_next().await {
        let answer = answer.unwrap();
        match answer.status {
            StatusCode::CREATED => {
                created.push(answer.body["app_code"].as_str().unwrap().to_owned())
            }
            StatusCode::FORBIDDEN => {
                assert_eq!(answer.body["error_code"], "APIG.3131", "{}", answer.body);
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert_eq!((created.len(), refused), (5, 45));
    for node in &nodes {
        let list = http
            .admin(
                node,
                Method::GET,
                &format!("/apps/{app_id}/app-codes"),
                None,
            )
            .await;
        assert_eq!(list.body["total"], 5);
        // Every code created anywhere works everywhere.
        for code in &created {
            http.until(node, code, StatusCode::OK).await;
        }
    }
}

/// Waits until `node` has added every call it counted against app quotas to the shared counts.
async fn quota_counts_shared(node: &Server) {
    let what = format!("the node at {} shares its quota counts", node.gateway);
    wait_until(PROPAGATION_TIMEOUT, &what, || async move {
        let text = binary::metrics(node).await;
        (binary::sample(&text, "apig_appcode_quota_calls_unflushed") == 0.0).then_some(())
    })
    .await;
}

/// Calls `node`'s gateway with `code` until its quota refuses the call (405), each call's count
/// shared before the next; returns how many calls it admitted first.
async fn admitted_by(http: &Http, node: &Server, code: &str) -> usize {
    admitted_until_refused(|| http.call(node, code), || quota_counts_shared(node)).await
}

/// A node on `db` (and the upstream it proxies to) holding an app `name` with one AppCode bound
/// to a quota of 10 calls a day, and that code. The client that set it up is gone: it keeps no
/// connection to the node.
async fn node_with_daily_quota(db: &TestDb, name: &str) -> (Upstream, Server, String) {
    let upstream = Upstream::start().await;
    let setup = Http::new();
    let node = start_node(db, &upstream).await;
    let app_id = setup.create_app(&node, name).await;
    let (_, code) = setup.create_code(&node, &app_id).await;
    setup.bind_daily_quota(&node, &app_id, 10).await;
    (upstream, node, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_count_one_app_quota_and_a_restart_keeps_the_count() {
    let Some(db) = TestDb::create("two_nodes_count_one_app_quota").await else {
        return;
    };
    let (upstream, a, code) = node_with_daily_quota(&db, "quota_app").await;
    // B starts now: its first load holds the binding, so every call it sees is counted.
    let b = start_node(&db, &upstream).await;
    let http = Http::new();

    // Six calls on A, shared; B then admits exactly the four left.
    for _ in 0..6 {
        assert_eq!(http.call(&a, &code).await, StatusCode::OK);
    }
    quota_counts_shared(&a).await;
    let admitted_by_b = admitted_by(&http, &b, &code).await;
    assert_eq!(admitted_by_b, 4, "B admitted past the shared count");

    // A restarted node keeps the day's count: at most the one call it admits before it reads it.
    a.stop().await;
    let a = start_node(&db, &upstream).await;
    let mut admitted_after_restart = 0;
    for _ in 0..3 {
        if http.call(&a, &code).await == StatusCode::OK {
            admitted_after_restart += 1;
        }
        quota_counts_shared(&a).await;
    }
    assert!(
        admitted_after_restart <= 1,
        "a restart reset the count: {admitted_after_restart} calls admitted"
    );
    let refused = binary::sample(
        &binary::metrics(&a).await,
        "apig_appcode_rejections_total{reason=\"quota\"}",
    );
    assert!(refused >= 2.0, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_gracefully_shares_its_last_quota_counts() {
    let Some(db) = TestDb::create("a_node_stopped_gracefully_shares_its_last_counts").await else {
        return;
    };
    let (upstream, a, code) = node_with_daily_quota(&db, "stopping_app").await;
    // Dropped before the stop: with no connection to drain, the node stops at once.
    let setup = Http::new();
    // The first call is shared at once; the next five wait for the interval, and the node is
    // stopped (SIGTERM) before it ends: it shares them on its way out.
    assert_eq!(setup.call(&a, &code).await, StatusCode::OK);
    quota_counts_shared(&a).await;
    for _ in 0..5 {
        assert_eq!(setup.call(&a, &code).await, StatusCode::OK);
    }
    drop(setup);
    assert!(a.stop().await.success());

    let http = Http::new();

    let b = start_node(&db, &upstream).await;
    let admitted = admitted_by(&http, &b, &code).await;
    assert_eq!(
        admitted, 4,
        "the stopped node's last calls were not counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_credentials_refuses_to_start_on_postgres() {
    let test = "a_node_without_credentials_refuses_to_start_on_postgres";
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    // Nodes sharing a database must share credentials: no per-node token file is made up.
    let cmd = serve_command(&serve_args("http://127.0.0.1:9", db.url()));
    let (status, stdout, stderr) = run_to_exit(cmd).await;
    assert!(!status.success());
    assert!(stderr.contains("--admin-token"), "{stderr}");
    assert!(!stdout.contains("listening"));
}

/// A database that stops answering gets management calls a prompt `503 APIG.0202`, not a
/// request that hangs as long as the outage (nor a `500`), and the node works again once the
/// database does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_is_a_503_and_the_node_recovers() {
    let Some(db) = TestDb::create("a_frozen_database_is_a_503_and_the_node_recovers").await else {
        return;
    };
    let upstream = Upstream::start().await;
    let http = Http::new();
    let node = start_node(&db, &upstream).await;
    let app_id = http.create_app(&node, "frozen_app").await;

    // The node's pooled connections (its listener's are named apart and left running).
    let Some(frozen) = db.freeze_or_skip(db.schema(), "the node's backends").await else {
        return;
    };
    // A create holds the node's write lock: it must come back (within Http's bound) as a 503.
    let path = format!("/apps/{app_id}/app-codes");
    let answer = http.admin(&node, Method::PUT, &path, None).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error_code"], "APIG.0202", "{}", answer.body);
    drop(frozen);

    let (_, code) = http.create_code(&node, &app_id).await;
    assert_eq!(http.call(&node, &code).await, StatusCode::OK);
}

/// Runs `sql` with `params` on a session of its own, as an operator in psql would.
async fn psql(db: &TestDb, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) {
    db.client()
        .await
        .execute(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Inserts a code into app `app_id` with plain SQL (the store holds values in clear, with
/// their SHA-256 as the digest).
const INSERT_CODE: &str =
    "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
     SELECT seq, instance_id, $2, convert_to($3, 'UTF8'), sha256(convert_to($3, 'UTF8')), 0
     FROM apps WHERE id = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_changed_with_plain_sql_take_effect_on_every_node() {
    let test = "codes_changed_with_plain_sql_take_effect_on_every_node";
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    // Caches refresh once an hour: only the announcements can explain what follows.
    let (http, _upstream, a, b) = two_nodes(&db).await;
    let (app_id, code_id, code) = http.shared_code(&a, &b, "sql_app").await;

    // An emergency revocation in psql.
    psql(&db, "DELETE FROM app_codes WHERE id = $1", &[&code_id]).await;
    for node in [&a, &b] {
        http.until(node, &code, StatusCode::UNAUTHORIZED).await;
    }
    // A code inserted, then given a new value.
    let inserted = format!("SqlInserted{}", "i".repeat(60));
    psql(&db, INSERT_CODE, &[&app_id, &"sql-code-1", &inserted]).await;
    for node in [&a, &b] {
        http.until(node, &inserted, StatusCode::OK).await;
    }
    let renewed = format!("SqlRenewed{}", "r".repeat(60));
    psql(
        &db,
        "UPDATE app_codes SET value = convert_to($2, 'UTF8'),
                              value_digest = sha256(convert_to($2, 'UTF8'))
         WHERE id = $1",
        &[&"sql-code-1", &renewed],
    )
    .await;
    for node in [&a, &b] {
        http.until(node, &renewed, StatusCode::OK).await;
        http.until(node, &inserted, StatusCode::UNAUTHORIZED).await;
    }

    // A bulk insert and a bulk delete: far more codes than are announced one by one.
    psql(
        &db,
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
         SELECT a.seq, a.instance_id, 'bulk-' || n, convert_to(v, 'UTF8'),
                sha256(convert_to(v, 'UTF8')), 0
         FROM apps a, generate_series(1, 2000) n,
              LATERAL (SELECT 'BulkCode' || lpad(n::text, 8, '0') || repeat('b', 60) AS v) x
         WHERE a.id = $1",
        &[&app_id],
    )
    .await;
    let bulk = |n: u32| format!("BulkCode{n:08}{}", "b".repeat(60));
    for node in [&a, &b] {
        for n in [1, 1000, 2000] {
            http.until(node, &bulk(n), StatusCode::OK).await;
        }
    }
    psql(&db, "DELETE FROM app_codes WHERE id LIKE 'bulk-%'", &[]).await;
    for node in [&a, &b] {
        for n in [1, 1000, 2000] {
            http.until(node, &bulk(n), StatusCode::UNAUTHORIZED).await;
        }
        http.until(node, &renewed, StatusCode::OK).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_bypassed_the_log_is_repaired_by_the_anti_entropy_check() {
    let test = "a_change_that_bypassed_the_log_is_repaired_by_the_anti_entropy_check";
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let upstream = Upstream::start().await;
    let extra = ["--anti-entropy-interval", "1"];
    let (a, b) = tokio::join!(
        start_node_with(&db, &upstream, &extra),
        start_node_with(&db, &upstream, &extra)
    );
    let http = Http::new();
    let (_, code_id, code) = http.shared_code(&a, &b, "bypass_app").await;
    // Triggers do not fire for a replica's session: the deletion is neither logged nor
    // announced, and only the check can find it.
    let sql = db.client().await;
    sql.batch_execute("SET session_replication_role = replica")
        .await
        .unwrap();
    let log_rows = || async {
        let count = sql.query_one("SELECT count(*) FROM app_code_log", &[]);
        count.await.unwrap().get::<_, i64>(0)
    };
    let before = log_rows().await;
    sql.execute("DELETE FROM app_codes WHERE id = $1", &[&code_id])
        .await
        .unwrap();
    assert_eq!(before, log_rows().await, "the deletion bypassed the log");
    for node in [&a, &b] {
        http.until(node, &code, StatusCode::UNAUTHORIZED).await;
        let log = node.stderr_containing(&["differs from its provider"]).await;
        assert!(!log.contains(code.as_str()), "a node logged an AppCode");
    }
}
