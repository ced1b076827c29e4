//! Nothing the store holds is missed by a node's cache: a change made to a SQLite file with plain
//! SQL reaches the cache at its next catch-up (the file's triggers log it), and a cache made
//! wrong on purpose is repaired by the anti-entropy check.
//!
//! Run: `cargo test --features sqlite --test anti_entropy`.

#![cfg(feature = "sqlite")]

#[path = "support/records.rs"]
mod records;
#[path = "support/wait.rs"]
mod wait;
use records::{app_in, code};

use std::sync::Arc;
use std::time::Duration;

use apig_appcode::provider::StaticProvider;
use apig_appcode::store::{
    App, MemoryStore, Scope, SqliteOptions, SqliteStore, Store, StoreProvider,
};
use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use wait::wait_until;

/// Far longer than any wait below needs, and far shorter than a hung test.
const TIMEOUT: Duration = Duration::from_secs(30);

fn scope() -> Scope {
    Scope::new("project-1", "instance-1")
}

fn app(n: u64) -> App {
    app_in(&scope(), n)
}

fn value(tag: &str, n: u64) -> AppCode {
    AppCode::parse(&format!("{tag}{n:08}{}", "v".repeat(60))).unwrap()
}

/// Inserts a code into the file with plain SQL, as `sqlite3` would (values in clear, their
/// SHA-256 as the digest).
fn insert(sql: &Connection, app: u64, id: &str, code: &AppCode) {
    let bytes = code.expose().as_bytes();
    sql.execute(
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
         SELECT seq, instance_id, ?2, ?3, ?4, 0 FROM apps WHERE id = ?1",
        params![format!("{app:032x}"), id, bytes, &Sha256::digest(bytes)[..]],
    )
    .unwrap();
}

async fn until_accepted(layer: &AppCodeAuthLayer, code: &AppCode, accepted: bool) {
    let what = format!(
        "the cache {} a code",
        if accepted { "accepts" } else { "refuses" }
    );
    wait_until(TIMEOUT, &what, || async {
        (layer.cache().verify(code).is_some() == accepted).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_changed_with_sql_on_the_file_reach_the_cache_at_the_next_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apig.db");
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::new()).unwrap());
    store.create_app(app(1)).await.unwrap();
    let api = code(1, 1);
    store.create_app_code(&scope(), api.clone()).await.unwrap();
    // No anti-entropy check: only the change log can bring the changes.
    let layer = AppCodeAuthLayer::builder()
        .provider(StoreProvider::new(store.clone(), "instance-1"))
        .refresh_interval(Duration::from_millis(100))
        .anti_entropy_interval(Duration::ZERO)
        .build();
    layer.cache().loaded().await;
    until_accepted(&layer, &api.value, true).await;
    let sql = Connection::open(&path).unwrap();
    sql.busy_timeout(TIMEOUT).unwrap();

    sql.execute("DELETE FROM app_codes WHERE id = ?1", [&api.id])
        .unwrap();
    until_accepted(&layer, &api.value, false).await;
    let inserted = value("Sql", 1);
    insert(&sql, 1, "sql-1", &inserted);
    until_accepted(&layer, &inserted, true).await;
    let renewed = value("Renewed", 1);
    let bytes = renewed.expose().as_bytes();
    sql.execute(
        "UPDATE app_codes SET value = ?2, value_digest = ?3 WHERE id = ?1",
        params!["sql-1", bytes, &Sha256::digest(bytes)[..]],
    )
    .unwrap();
    until_accepted(&layer, &renewed, true).await;
    until_accepted(&layer, &inserted, false).await;

    // In bulk: more rows than the log keeps revisions (each row is a revision of its own
    // outside the store's writes), so the cache reloads, and ends right all the same.
    let tx = sql.unchecked_transaction().unwrap();
    for n in 0..12_000 {
        insert(&tx, 1, &format!("bulk-{n}"), &value("Bulk", n));
    }
    tx.commit().unwrap();
    for n in [0, 6_000, 11_999] {
        until_accepted(&layer, &value("Bulk", n), true).await;
    }
    sql.execute("DELETE FROM app_codes WHERE id LIKE 'bulk-%'", [])
        .unwrap();
    for n in [0, 6_000, 11_999] {
        until_accepted(&layer, &value("Bulk", n), false).await;
    }
    until_accepted(&layer, &renewed, true).await;
    // Deleting the app with SQL deletes its codes, logged before the app's row goes.
    sql.execute("DELETE FROM apps WHERE id = ?1", [&app(1).id])
        .unwrap();
    until_accepted(&layer, &renewed, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_made_wrong_is_repaired_by_the_anti_entropy_check() {
    let store = Arc::new(MemoryStore::new());
    store.create_app(app(1)).await.unwrap();
    let genuine = code(1, 1);
    store
        .create_app_code(&scope(), genuine.clone())
        .await
        .unwrap();
    // Refreshes are an hour apart: only the check can find the difference.
    let layer = AppCodeAuthLayer::builder()
        .provider(StoreProvider::new(store.clone(), "instance-1"))
        .refresh_interval(Duration::from_secs(3600))
        .anti_entropy_interval(Duration::from_millis(100))
        .build();
    layer.cache().loaded().await;
    assert_eq!(layer.metrics().anti_entropy_repairs, 0);

    // A code the store never held, put into the cache directly.
    let forged = value("Forged", 1);
    layer
        .cache()
        .upsert(&forged, AppIdentity::new(app(1).id.as_str(), "forged"));
    until_accepted(&layer, &forged, false).await;
    assert!(layer.metrics().anti_entropy_repairs >= 1);
    assert!(layer.cache().verify(&genuine.value).is_some());

    // A code taken out of the cache directly comes back.
    let repairs = layer.metrics().anti_entropy_repairs;
    assert!(layer.cache().remove(&genuine.value));
    until_accepted(&layer, &genuine.value, true).await;
    assert!(layer.metrics().anti_entropy_repairs > repairs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_a_digest_is_not_checked() {
    let genuine = value("Static", 1);
    let provider = StaticProvider::builder()
        .code(genuine.clone(), AppIdentity::new("app-1", "code-1"))
        .build();
    let layer = AppCodeAuthLayer::builder()
        .provider(provider)
        .refresh_interval(Duration::from_secs(3600))
        .anti_entropy_interval(Duration::from_millis(10))
        .build();
    layer.cache().loaded().await;
    let forged = value("Forged", 2);
    layer
        .cache()
        .upsert(&forged, AppIdentity::new("app-1", "forged"));
    // Many check periods later, nothing was compared, so nothing was repaired.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(layer.cache().verify(&forged).is_some());
    assert_eq!(layer.metrics().anti_entropy_repairs, 0);
}
