//! What only the PostgreSQL store can get wrong: migrations when nodes start together, keys,
//! what reaches the database and its logs, and the change stream between nodes (LISTEN/NOTIFY,
//! reconnection and resync). The rules every store shares are in `store_conformance.rs`.
//!
//! Needs `APIG_TEST_DATABASE_URL=postgres://...`; each test works in a schema of its own.
//! Run: `cargo test --features postgres --test postgres_store`.

#![cfg(feature = "postgres")]

#[path = "support/postgres.rs"]
mod pg;
#[path = "support/records.rs"]
mod records;
use records::{app_in, code};

use std::time::Duration;

use apig_appcode::provider::{Change, ChangeStream};
use apig_appcode::store::{
    AppCodeChanges, AppCodeRecord, MasterKey, PostgresOptions, PostgresStore, Scope, Store,
    StoreError, MAX_APP_CODES_PER_APP,
};
use pg::TestDb;

#[path = "postgres_store/availability.rs"]
mod availability;
#[path = "postgres_store/changes.rs"]
mod changes;
#[path = "postgres_store/schema.rs"]
mod schema;
#[path = "postgres_store/tls.rs"]
mod tls;

/// Bound on one expected event (a notification travels in milliseconds; a reconnection starts
/// after at most a few backoff steps).
const WAIT: Duration = Duration::from_secs(30);

fn scope() -> Scope {
    Scope::new("project-a", "instance-1")
}

fn key(byte: u8) -> PostgresOptions {
    PostgresOptions::new().master_key(MasterKey::from_bytes([byte; 32]))
}

async fn open(db: &TestDb, options: PostgresOptions) -> PostgresStore {
    PostgresStore::connect(db.url(), options).await.unwrap()
}

fn backend<T: std::fmt::Debug>(result: Result<T, StoreError>) -> Box<dyn std::error::Error> {
    match result {
        Err(StoreError::Backend(e)) => e,
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// The first column of each row `sql` returns, read on a session of its own.
async fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(db: &TestDb, sql: &str) -> Vec<T> {
    let rows = db.client().await.query(sql, &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// The next change event, within [`WAIT`].
async fn next(stream: &mut ChangeStream) -> Change {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a change event within the bound")
        .expect("the change stream is open")
}

/// The next change event of an AppCode (or a resync), past those of apps: an app's creation
/// or deletion announces its signing key, ACL and quota.
async fn next_code(stream: &mut ChangeStream) -> Change {
    loop {
        match next(stream).await {
            Change::AppAcl { .. } | Change::AppQuota { .. } | Change::AppKey { .. } => {}
            other => return other,
        }
    }
}

/// A stream of `store`'s changes for instance-1, started the way a node starts: a snapshot
/// right after subscribing. The snapshot waits for the listener, so no resync follows: the
/// tests below see their changes as the very next events.
async fn listening(store: &PostgresStore) -> ChangeStream {
    let stream = store
        .changes("instance-1")
        .expect("PostgreSQL pushes changes");
    assert!(store
        .instance_app_codes("instance-1")
        .await
        .unwrap()
        .is_empty());
    stream
}

/// A store on `db` opened with `options`, holding app 1.
async fn store_with_app(db: &TestDb, options: PostgresOptions) -> PostgresStore {
    let store = open(db, options).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    store
}

/// Options for a pool of `size` connections whose calls are given up after `call_timeout`.
fn small_pool(size: usize, call_timeout: Duration) -> PostgresOptions {
    PostgresOptions::new()
        .pool_size(size)
        .call_timeout(call_timeout)
}

/// The AppCode changes of instance-1 after `revision`, which its log still holds.
async fn logged_since(store: &PostgresStore, revision: u64) -> AppCodeChanges {
    let changes = store.app_code_changes("instance-1", revision).await;
    changes
        .unwrap()
        .unwrap_or_else(|| panic!("the log holds the changes after revision {revision}"))
}

/// Two nodes on `db`: one that writes (with app 1 created), and the other's change stream.
async fn writer_and_listener(db: &TestDb) -> (PostgresStore, PostgresStore, ChangeStream) {
    let (a, b) = (
        open(db, PostgresOptions::new()).await,
        open(db, PostgresOptions::new()).await,
    );
    let changes = listening(&b).await;
    a.create_app(app_in(&scope(), 1)).await.unwrap();
    (a, b, changes)
}

fn expect_upsert(change: Change, expected: &AppCodeRecord) {
    match change {
        Change::Upsert { code, identity } => {
            assert_eq!(code, expected.value);
            assert_eq!(identity, expected.identity());
        }
        other => panic!("expected an upsert of {}, got {other:?}", expected.id),
    }
}

/// Creates `record` through `writer`; the next AppCode change on `changes` is its upsert.
async fn create_announced(
    writer: &PostgresStore,
    changes: &mut ChangeStream,
    record: &AppCodeRecord,
) {
    writer
        .create_app_code(&scope(), record.clone())
        .await
        .unwrap();
    expect_upsert(next_code(changes).await, record);
}

/// Deletes `record` through `writer`; the next AppCode change on `changes` is its removal.
async fn delete_announced(
    writer: &PostgresStore,
    changes: &mut ChangeStream,
    record: &AppCodeRecord,
) {
    writer
        .delete_app_code(&scope(), &record.app_id, &record.id)
        .await
        .unwrap();
    expect_remove_id(next_code(changes).await, &record.id);
}

fn expect_remove_id(change: Change, expected: &str) {
    match change {
        Change::RemoveId(id) => assert_eq!(id, expected),
        other => panic!("expected the removal of {expected}, got {other:?}"),
    }
}

/// The latency of `create_app_code` (its transaction: lock the app, checks, insert, revision
/// and change log, announcement), 500 creates in a row on one connection's worth of load.
/// Run by hand: `cargo test --all-features --test postgres_store -- --ignored --nocapture
/// create_app_code_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn create_app_code_latency() {
    let Some(db) = TestDb::create("create_app_code_latency").await else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    const N: u64 = 500;
    // Five codes per app: the per-app quota. App N warms the connection and its statements.
    let per_app = MAX_APP_CODES_PER_APP as u64;
    for app in (0..N / per_app).chain([N]) {
        store.create_app(app_in(&scope(), app)).await.unwrap();
    }
    store.create_app_code(&scope(), code(N, N)).await.unwrap();
    let mut each = Vec::with_capacity(N as usize);
    let started = std::time::Instant::now();
    for n in 0..N {
        let t = std::time::Instant::now();
        store
            .create_app_code(&scope(), code(n / per_app, n))
            .await
            .unwrap();
        each.push(t.elapsed());
    }
    let total = started.elapsed();
    each.sort();
    eprintln!(
        "create_app_code x{N}: total {total:?}, mean {:?}, p50 {:?}, p99 {:?}",
        total / N as u32,
        each[each.len() / 2],
        each[each.len() * 99 / 100]
    );
}
