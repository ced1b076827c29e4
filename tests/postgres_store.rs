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
use records::{app_in, id};

use std::time::Duration;

use apig_appcode::provider::{Change, ChangeStream, CodesDigest};
use apig_appcode::quota::{AppQuota, TimeUnit};
use apig_appcode::store::{
    AppCodeRecord, AppQuotaRecord, KeyMismatch, MasterKey, PostgresOptions, PostgresStore,
    SchemaTooNew, Scope, SecretString, Store, StoreError, Timestamp, MAX_APP_CODES_PER_APP,
};
use apig_appcode::{AppCode, AppKey};
use pg::{Frozen, TestDb};

/// Bound on one expected event (a notification travels in milliseconds; a reconnection starts
/// after at most a few backoff steps).
const WAIT: Duration = Duration::from_secs(30);

fn scope() -> Scope {
    Scope::new("project-a", "instance-1")
}

fn code(app: u64, n: u64) -> AppCodeRecord {
    AppCodeRecord {
        id: id(1_000_000 + n),
        app_id: id(app),
        value: AppCode::parse(&format!("PgValue{app:04}x{n:04}{}", "v".repeat(60))).unwrap(),
        create_time: Timestamp::from_unix_nanos(3),
    }
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

fn expect_remove_id(change: Change, expected: &str) {
    match change {
        Change::RemoveId(id) => assert_eq!(id, expected),
        other => panic!("expected the removal of {expected}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let Some(db) = TestDb::create("nodes_starting_together_migrate_once").await else {
        return;
    };
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = db.url().to_owned();
        opens.spawn(async move { PostgresStore::connect(&url, PostgresOptions::new()).await });
    }
    while let Some(opened) = opens.join_next().await {
        opened.unwrap().unwrap();
    }
    // And once more, on a migrated schema.
    let store = open(&db, PostgresOptions::new()).await;
    assert_eq!(store.schema(), db.schema());
    let versions: Vec<i32> = column(
        &db,
        "SELECT version FROM apig_schema_migrations ORDER BY version",
    )
    .await;
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    let meta: Vec<i64> = column(&db, "SELECT count(*) FROM store_meta").await;
    assert_eq!(meta, [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let Some(db) = TestDb::create("a_newer_schema_is_refused").await else {
        return;
    };
    drop(open(&db, PostgresOptions::new()).await);
    db.client()
        .await
        .batch_execute("INSERT INTO apig_schema_migrations (version) VALUES (99)")
        .await
        .unwrap();
    let err = backend(PostgresStore::connect(db.url(), PostgresOptions::new()).await);
    assert_eq!(
        err.downcast_ref::<SchemaTooNew>(),
        Some(&SchemaTooNew {
            found: 99,
            supported: 5
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_must_match_the_schema() {
    let Some(enc) = TestDb::create("the_master_key_must_match_the_schema").await else {
        return;
    };
    let plain = TestDb::create("the_master_key_must_match_the_schema")
        .await
        .unwrap();
    drop(open(&enc, key(1)).await);
    drop(open(&plain, PostgresOptions::new()).await);
    for (db, options, expected) in [
        (&enc, PostgresOptions::new(), KeyMismatch::MissingKey),
        (&enc, key(2), KeyMismatch::WrongKey),
        (&plain, key(1), KeyMismatch::UnexpectedKey),
    ] {
        let err = backend(PostgresStore::connect(db.url(), options).await);
        assert_eq!(err.downcast_ref::<KeyMismatch>(), Some(&expected));
    }
    assert!(open(&enc, key(1)).await.is_encrypted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_schema_holds_no_secret_in_clear() {
    let Some(db) = TestDb::create("an_encrypted_schema_holds_no_secret_in_clear").await else {
        return;
    };
    let store = open(&db, key(7)).await;
    let app = app_in(&scope(), 1);
    store.create_app(app.clone()).await.unwrap();
    let record = code(1, 1);
    store
        .create_app_code(&scope(), record.clone())
        .await
        .unwrap();
    assert_eq!(
        store
            .get_app_code(&scope(), &id(1), &record.id)
            .await
            .unwrap(),
        record
    );
    // Every column of every row, as text.
    let dump: String = db
        .client()
        .await
        .query(
            "SELECT row_to_json(t)::text FROM (SELECT * FROM apps) t
             UNION ALL SELECT row_to_json(t)::text FROM (SELECT * FROM app_codes) t
             UNION ALL SELECT row_to_json(t)::text FROM (SELECT * FROM app_code_log) t
             UNION ALL SELECT row_to_json(t)::text FROM (SELECT * FROM instance_revisions) t",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(dump.contains(&record.id), "the dump is not of the rows");
    assert!(
        dump.contains(r#""kind":"C""#),
        "the dump is not of the change log"
    );
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for secret in [record.value.expose(), app.app_secret.expose()] {
        assert!(!dump.contains(secret) && !dump.contains(&hex(secret)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_never_quote_a_row() {
    let Some(db) = TestDb::create("database_errors_never_quote_a_row").await else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    // A constraint whose violation PostgreSQL details with the whole failing row.
    db.client()
        .await
        .batch_execute("ALTER TABLE app_codes ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        .await
        .unwrap();
    let record = code(1, 1);
    let err = backend(store.create_app_code(&scope(), record.clone()).await);
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("refuse_all") && shown.contains("23514"),
        "{shown}"
    );
    let hex: String = record
        .value
        .expose()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    for leak in ["Failing row", record.value.expose(), &hex[..40]] {
        assert!(!shown.contains(leak), "{shown}");
    }
    assert!(
        err.source().is_none(),
        "the driver's error (with DETAIL) is not kept"
    );
    // The failed transaction left nothing behind, and the store still works.
    assert_eq!(
        store.count_app_codes(&scope(), &[id(1)]).await.unwrap(),
        [0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_writes_reach_the_change_stream() {
    let Some(db) = TestDb::create("another_nodes_writes_reach_the_change_stream").await else {
        return;
    };
    let (a, b) = (open(&db, key(3)).await, open(&db, key(3)).await);
    let mut changes = listening(&b).await;
    let other_instance = Scope::new("project-a", "instance-2");
    a.create_app(app_in(&scope(), 1)).await.unwrap();
    a.create_app(app_in(&other_instance, 2)).await.unwrap();

    // Another instance's codes are not announced to this one's listeners.
    a.create_app_code(&other_instance, code(2, 9))
        .await
        .unwrap();
    let first = code(1, 1);
    a.create_app_code(&scope(), first.clone()).await.unwrap();
    expect_upsert(next_code(&mut changes).await, &first);

    a.delete_app_code(&scope(), &id(1), &first.id)
        .await
        .unwrap();
    expect_remove_id(next_code(&mut changes).await, &first.id);

    // A code created and deleted before the listener reads it back is not resurrected.
    let brief = code(1, 2);
    a.create_app_code(&scope(), brief.clone()).await.unwrap();
    a.delete_app_code(&scope(), &id(1), &brief.id)
        .await
        .unwrap();
    match next_code(&mut changes).await {
        Change::Upsert { code, .. } => {
            assert_eq!(code, brief.value);
            expect_remove_id(next_code(&mut changes).await, &brief.id);
        }
        other => expect_remove_id(other, &brief.id),
    }

    // Deleting an app announces each of its codes.
    let (c3, c4) = (code(1, 3), code(1, 4));
    for c in [&c3, &c4] {
        a.create_app_code(&scope(), c.clone()).await.unwrap();
        expect_upsert(next_code(&mut changes).await, c);
    }
    assert_eq!(a.delete_app(&scope(), &id(1)).await.unwrap().len(), 2);
    expect_remove_id(next_code(&mut changes).await, &c3.id);
    expect_remove_id(next_code(&mut changes).await, &c4.id);
}

/// The next change of an app's quota on `stream`, past the ACL and key read back with it.
async fn next_quota(stream: &mut ChangeStream) -> (String, Option<AppQuota>) {
    loop {
        match next(stream).await {
            Change::AppAcl { acl: None, .. } | Change::AppKey { .. } => {}
            Change::AppQuota { app_id, quota } => return (app_id, quota.map(|q| (*q).clone())),
            other => panic!("expected a change of an app's quota, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_changes_reach_every_node_and_the_writer() {
    let Some(db) = TestDb::create("quota_changes_reach_every_node_and_the_writer").await else {
        return;
    };
    let (a, b) = (
        open(&db, PostgresOptions::new()).await,
        open(&db, PostgresOptions::new()).await,
    );
    let (mut own, mut other) = (listening(&a).await, listening(&b).await);
    a.create_app(app_in(&scope(), 1)).await.unwrap();
    // The app's creation (its signing key) is announced with its quota: none yet.
    for stream in [&mut other, &mut own] {
        assert_eq!(next_quota(stream).await, (id(1), None));
    }
    let limit = |calls| AppQuota::new(calls, TimeUnit::Minute, 1).unwrap();
    let record = AppQuotaRecord {
        id: "quota-1".into(),
        name: "gold".into(),
        quota: limit(100),
        remark: String::new(),
        create_time: Timestamp::from_unix_nanos(1),
        bound_app_num: 0,
    };
    a.create_app_quota(&scope(), record.clone()).await.unwrap();
    let at = Timestamp::from_unix_nanos(2);
    a.bind_app_quota(&scope(), "quota-1", &[id(1)], at)
        .await
        .unwrap();
    // Without a reset time, a bound app's windows start at its binding (2 ns: second 0). The
    // writer's own stream carries the change too, the same quota its management call applied.
    let anchored = |calls| limit(calls).reset_time(std::time::UNIX_EPOCH);
    for stream in [&mut other, &mut own] {
        assert_eq!(next_quota(stream).await, (id(1), Some(anchored(100))));
    }
    let changed = AppQuotaRecord {
        quota: limit(5),
        ..record
    };
    a.update_app_quota(&scope(), "quota-1", changed)
        .await
        .unwrap();
    assert_eq!(next_quota(&mut other).await, (id(1), Some(anchored(5))));
    a.unbind_app_quota(&scope(), "quota-1", &id(1))
        .await
        .unwrap();
    assert_eq!(next_quota(&mut other).await, (id(1), None));
}

/// The next change of an app's signing key on `stream`, past the ACL and quota read with it.
async fn next_key(stream: &mut ChangeStream) -> (String, Option<AppKey>) {
    loop {
        match next(stream).await {
            Change::AppAcl { .. } | Change::AppQuota { .. } => {}
            Change::AppKey { app_id, key } => return (app_id, key.map(|k| (*k).clone())),
            other => panic!("expected a change of an app's key, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_reach_every_node_and_the_writer() {
    let Some(db) = TestDb::create("key_changes_reach_every_node_and_the_writer").await else {
        return;
    };
    let (a, b) = (open(&db, key(5)).await, open(&db, key(5)).await);
    let (mut own, mut other) = (listening(&a).await, listening(&b).await);
    let app = app_in(&scope(), 1);
    a.create_app(app.clone()).await.unwrap();
    let first = AppKey::new(app.app_key.as_str(), app.app_secret.expose());
    for stream in [&mut other, &mut own] {
        assert_eq!(next_key(stream).await, (id(1), Some(first.clone())));
    }
    // A secret reset: every node, the writer's too, gets the new secret.
    let mut reset = apig_appcode::store::AppChanges::at(Timestamp::from_unix_nanos(9));
    reset.app_secret = Some(SecretString::new("ResetSecret00000000000000000000"));
    a.update_app(&scope(), &id(1), reset).await.unwrap();
    let now = AppKey::new(app.app_key.as_str(), "ResetSecret00000000000000000000");
    for stream in [&mut other, &mut own] {
        assert_eq!(next_key(stream).await, (id(1), Some(now.clone())));
    }
    // Deleted: no key.
    a.delete_app(&scope(), &id(1)).await.unwrap();
    for stream in [&mut other, &mut own] {
        assert_eq!(next_key(stream).await, (id(1), None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_relays_its_own_deletions_but_not_its_creations() {
    let Some(db) = TestDb::create("a_node_relays_its_own_deletions_but_not_its_creations").await
    else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    let mut changes = listening(&store).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    let record = code(1, 1);
    store
        .create_app_code(&scope(), record.clone())
        .await
        .unwrap();
    store
        .delete_app_code(&scope(), &id(1), &record.id)
        .await
        .unwrap();
    // The creation (cached by this node's management API already) is skipped; the deletion
    // comes through, in case the caller never got to evict it.
    expect_remove_id(next_code(&mut changes).await, &record.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_reconnects_and_resyncs() {
    let Some(db) = TestDb::create("a_lost_listener_reconnects_and_resyncs").await else {
        return;
    };
    let (a, _b, mut changes) = writer_and_listener(&db).await;
    let admin = db.client().await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                   WHERE application_name = $1) t",
            &[&format!("{} listener", db.schema())],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "one listener connection");
    // Reconnected: a resync first (what was missed is only in a full snapshot)...
    assert!(matches!(next_code(&mut changes).await, Change::Resync));
    // ...then announcements flow again.
    let record = code(1, 1);
    a.create_app_code(&scope(), record.clone()).await.unwrap();
    expect_upsert(next_code(&mut changes).await, &record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_announcement_is_told_by_its_revision() {
    let Some(db) = TestDb::create("a_missed_announcement_is_told_by_its_revision").await else {
        return;
    };
    let (a, b, mut changes) = writer_and_listener(&db).await;
    // The listener's own creation is not relayed, but its revision counts: the next write is
    // in order, and comes through with no resync.
    let own = code(1, 1);
    b.create_app_code(&scope(), own.clone()).await.unwrap();
    let first = code(1, 2);
    a.create_app_code(&scope(), first.clone()).await.unwrap();
    expect_upsert(next_code(&mut changes).await, &first);

    // A write whose announcement never arrives: its revision and log entry, no NOTIFY.
    db.client()
        .await
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO app_code_log (instance_id, revision, ord, kind, app_id, app_code_id)
             SELECT instance_id, revision + 1, 1, 'D', '{}', '{}' FROM instance_revisions
             WHERE instance_id = 'instance-1';
             UPDATE instance_revisions SET revision = revision + 1
             WHERE instance_id = 'instance-1';
             COMMIT",
            own.app_id, own.id
        ))
        .await
        .unwrap();
    // The next announcement is two revisions past the last one: a resync first, then the
    // change itself.
    let second = code(1, 3);
    a.create_app_code(&scope(), second.clone()).await.unwrap();
    assert!(matches!(next_code(&mut changes).await, Change::Resync));
    expect_upsert(next_code(&mut changes).await, &second);
    // In order again from there.
    a.delete_app_code(&scope(), &id(1), &second.id)
        .await
        .unwrap();
    expect_remove_id(next_code(&mut changes).await, &second.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_upgrades_in_place() {
    let Some(db) = TestDb::create("a_version_1_schema_upgrades_in_place").await else {
        return;
    };
    let store = open(&db, key(5)).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    let old = code(1, 1);
    store.create_app_code(&scope(), old.clone()).await.unwrap();
    drop(store);
    // Back to what version 1 had: its tables and rows, none of the later versions'.
    db.client()
        .await
        .batch_execute(&format!(
            "{UNDO_VERSION_5}
             DROP TABLE instance_revisions, app_code_log, app_acls, app_quota_counts,
                 app_quota_bindings, app_quotas;
             DELETE FROM apig_schema_migrations WHERE version >= 2"
        ))
        .await
        .unwrap();

    let store = open(&db, key(5)).await;
    // The existing codes are at revision 0, with nothing logged.
    let snapshot = store.instance_snapshot("instance-1").await.unwrap();
    assert_eq!(snapshot.revision, Some(0));
    assert_eq!(snapshot.codes, std::slice::from_ref(&old));
    assert!(store
        .app_code_changes("instance-1", 0)
        .await
        .unwrap()
        .unwrap()
        .is_empty());
    // And writes take revisions from there.
    let new = code(1, 2);
    store.create_app_code(&scope(), new.clone()).await.unwrap();
    store
        .delete_app_code(&scope(), &id(1), &old.id)
        .await
        .unwrap();
    let changes = store
        .app_code_changes("instance-1", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changes.revision, 2);
    assert_eq!(changes.created, [new]);
    assert_eq!(changes.deleted.len(), 1);
    assert_eq!(changes.deleted[0].id, old.id);
}

/// Takes a schema back to version 4: without the triggers that log changes.
const UNDO_VERSION_5: &str = "
    DROP FUNCTION apig_appcode_codes_changed, apig_appcode_policy_changed,
        apig_appcode_quotas_changed, apig_appcode_app_deleted, apig_appcode_apps_renamed,
        apig_appcode_apps_inserted,
        apig_appcode_log_all, apig_appcode_log, apig_appcode_entry CASCADE;
    ALTER TABLE instance_revisions DROP COLUMN xact, DROP COLUMN entries;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_schema_upgrades_in_place_keeping_its_log() {
    let Some(db) = TestDb::create("a_version_4_schema_upgrades_in_place_keeping_its_log").await
    else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    let old = code(1, 1);
    store.create_app_code(&scope(), old.clone()).await.unwrap();
    let before = store
        .app_code_changes("instance-1", 0)
        .await
        .unwrap()
        .unwrap();
    drop(store);
    db.client()
        .await
        .batch_execute(&format!(
            "{UNDO_VERSION_5} DELETE FROM apig_schema_migrations WHERE version >= 5"
        ))
        .await
        .unwrap();

    let store = open(&db, PostgresOptions::new()).await;
    assert_eq!(
        store
            .app_code_changes("instance-1", 0)
            .await
            .unwrap()
            .unwrap(),
        before
    );
    // Plain SQL is logged from now on, under the next revision.
    db.client()
        .await
        .execute("DELETE FROM app_codes WHERE id = $1", &[&old.id])
        .await
        .unwrap();
    let changes = store
        .app_code_changes("instance-1", before.revision)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changes.revision, before.revision + 1);
    assert_eq!(changes.deleted.len(), 1);
    assert_eq!(changes.deleted[0].id, old.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_keeps_only_the_retained_revisions() {
    let Some(db) = TestDb::create("the_change_log_keeps_only_the_retained_revisions").await else {
        return;
    };
    let store = open(&db, PostgresOptions::new().change_log_retention(3)).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    let r = code(1, 1);
    for _ in 0..10 {
        store.create_app_code(&scope(), r.clone()).await.unwrap();
        store
            .delete_app_code(&scope(), &id(1), &r.id)
            .await
            .unwrap();
    }
    let row = db
        .client()
        .await
        .query_one(
            "SELECT v.revision, v.pruned_through,
                    (SELECT count(*) FROM app_code_log l WHERE l.instance_id = v.instance_id),
                    (SELECT min(revision) FROM app_code_log l WHERE l.instance_id = v.instance_id)
             FROM instance_revisions v WHERE instance_id = 'instance-1'",
            &[],
        )
        .await
        .unwrap();
    let (revision, pruned, logged, oldest): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    // The app's creation (its signing key) took revision 1.
    assert_eq!((revision, pruned, logged, oldest), (21, 18, 3, 19));
    assert!(store
        .app_code_changes("instance-1", 17)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .app_code_changes("instance-1", 18)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_carry_ids_only() {
    let Some(db) = TestDb::create("announcements_carry_ids_only").await else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    // A plain session listening on the instance's channel sees every payload.
    let (client, mut connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", store.channel("instance-1")))
        .await
        .unwrap();

    let app = app_in(&scope(), 1);
    store.create_app(app.clone()).await.unwrap();
    let (c1, c2) = (code(1, 1), code(1, 2));
    store.create_app_code(&scope(), c1.clone()).await.unwrap();
    store.create_app_code(&scope(), c2.clone()).await.unwrap();
    store
        .delete_app_code(&scope(), &id(1), &c1.id)
        .await
        .unwrap();
    store.delete_app(&scope(), &id(1)).await.unwrap();
    let mut payloads = Vec::new();
    for _ in 0..6 {
        let payload = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        payloads.push(payload);
    }
    // The app's creation and deletion (its signing key) name the app only.
    let named = [None, Some(&c1), Some(&c2), Some(&c1), Some(&c2), None];
    for (payload, c) in payloads.iter().zip(named) {
        assert!(payload.contains(&app.id), "{payload}");
        if let Some(c) = c {
            assert!(payload.contains(&c.id), "{payload}");
        }
        for secret in [
            c1.value.expose(),
            c2.value.expose(),
            app.app_secret.expose(),
        ] {
            assert!(!payload.contains(secret), "{payload}");
        }
        assert!(payload.len() < 120, "ids only: {payload}");
    }
}

/// A gateway worker runs its own single-threaded runtime, and its AppCode lookups borrow the
/// store's connections. A connection opened there must stay driven by the store's runtime:
/// once that worker is busy or gone, the management API must still get answers on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opened_on_another_runtime_keep_answering() {
    let Some(db) = TestDb::create("connections_opened_on_another_runtime").await else {
        return;
    };
    let store = std::sync::Arc::new(open(&db, PostgresOptions::new().pool_size(4)).await);
    let worker_store = std::sync::Arc::clone(&store);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let scope = scope();
            let ids = [id(1), id(2), id(3)];
            // Concurrent: more than the one idle connection, so new ones are opened here.
            let _ = tokio::join!(
                worker_store.get_app(&scope, &ids[0]),
                worker_store.get_app(&scope, &ids[1]),
                worker_store.get_app(&scope, &ids[2]),
            );
        });
        let _ = done_tx.send(());
        // The runtime stays, but nothing polls its tasks any more.
        std::thread::sleep(Duration::from_secs(3600));
        drop(runtime);
    });
    done_rx.await.unwrap();

    let scope = scope();
    let ids = [id(4), id(5), id(6), id(7)];
    let answers = tokio::time::timeout(WAIT, async {
        tokio::join!(
            store.get_app(&scope, &ids[0]),
            store.get_app(&scope, &ids[1]),
            store.get_app(&scope, &ids[2]),
            store.get_app(&scope, &ids[3]),
        )
    })
    .await
    .expect("every pooled connection answers on the store's runtime");
    for answer in [answers.0, answers.1, answers.2, answers.3] {
        assert!(matches!(answer, Err(StoreError::AppNotFound)), "{answer:?}");
    }
}

/// A database that answers late is not a dead one. The listener's backend is frozen for
/// longer than two heartbeat periods, then thawed: the listener must still be there, without
/// the reconnect and full resync that a busy node cannot afford.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_outlives_a_database_that_answers_late() {
    let Some(db) = TestDb::create("a_listener_outlives_a_database_that_answers_late").await else {
        return;
    };
    let (a, _b, mut changes) = writer_and_listener(&db).await;
    let admin = db.client().await;
    let pid: i32 = admin
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("{} listener", db.schema())],
        )
        .await
        .unwrap()
        .get(0);
    let frozen = match Frozen::stop(pid) {
        Ok(f) => f,
        Err(why) => {
            // The database runs elsewhere, or as a user this one cannot signal.
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "CI must be able to freeze a local PostgreSQL backend: {why}"
            );
            eprintln!("SKIPPED: cannot freeze the listener's backend ({why})");
            return;
        }
    };
    // Two heartbeat periods (5 s each) and then some: the old 5 s deadline would have dropped
    // the connection by now.
    tokio::time::sleep(Duration::from_secs(12)).await;
    drop(frozen);
    let record = code(1, 1);
    a.create_app_code(&scope(), record.clone()).await.unwrap();
    // The very next event is the announcement: no resync came first.
    expect_upsert(next_code(&mut changes).await, &record);
}

/// A database that stops answering (a stopped server, a network partition) must not hold a
/// call for as long as it lasts: with the backend of the store's one pooled connection frozen,
/// a write and then a read fail as unavailable, naming what timed out, and neither leaves the
/// pool stuck; once the database answers again, the store works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_frozen_database_fail_as_unavailable_and_recover() {
    let Some(db) = TestDb::create("calls_on_a_frozen_database_fail_as_unavailable").await else {
        return;
    };
    let options = PostgresOptions::new()
        .pool_size(1)
        .call_timeout(Duration::from_secs(2));
    let store = open(&db, options).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    let Some(frozen) = db.freeze_or_skip(db.schema(), "the store's backend").await else {
        return;
    };
    let write = returns("a write", store.create_app_code(&scope(), code(1, 1))).await;
    expect_unavailable(write, "create AppCode");
    // The frozen connection was closed, not returned: the pool's one slot is free again, and a
    // new connection (a new backend, not frozen) answers.
    let app = returns("a read", store.get_app(&scope(), &id(1))).await;
    assert_eq!(app.unwrap().id, id(1));

    let frozen_too = db.freeze(db.schema()).await.unwrap();
    let read = returns("a read", store.get_app(&scope(), &id(1))).await;
    expect_unavailable(read, "read app");
    drop((frozen, frozen_too));

    // Thawed: the write that timed out took nothing with it, and the store works.
    let record = code(1, 1);
    let write = returns("a write", store.create_app_code(&scope(), record.clone())).await;
    assert_eq!(write.unwrap(), record);
    let read = returns("a read", store.list_app_codes(&scope(), &id(1), 0, 10)).await;
    assert_eq!(read.unwrap().items, [record]);
}

/// A whole-instance read has no statement timeout (it lasts as long as the instance needs), so
/// one the store gives up on must be cancelled in the database: here the read waits on a lock
/// another session holds, sends nothing, and is given up after the call timeout; its backend
/// then stops waiting while the lock is still held, rather than run the read once it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_read_given_up_is_cancelled_in_the_database() {
    let Some(db) = TestDb::create("a_snapshot_read_given_up_is_cancelled").await else {
        return;
    };
    let options = PostgresOptions::new()
        .pool_size(2)
        .call_timeout(Duration::from_secs(1));
    let store = open(&db, options).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    store.create_app_code(&scope(), code(1, 1)).await.unwrap();
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE app_codes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let read = returns("a snapshot", store.instance_snapshot("instance-1")).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    let inspector = db.client().await;
    let waiting = || async {
        let row = inspector
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&db.schema()],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while waiting().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the read given up on still waits in the database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    // The store works on.
    let snapshot = returns("a snapshot", store.instance_snapshot("instance-1")).await;
    assert_eq!(snapshot.unwrap().codes, [code(1, 1)]);
}

/// `call`'s outcome; [`WAIT`] (far above the call timeout) only turns a hang into a failure.
async fn returns<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, call)
        .await
        .unwrap_or_else(|_| panic!("{what} on a frozen database hung"))
}

fn expect_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, context: &str) {
    match result {
        Err(e @ StoreError::Unavailable(_)) => {
            let shown = e.to_string();
            assert!(
                shown.contains(context) && shown.contains("no answer"),
                "{shown}"
            );
        }
        other => panic!("expected the store to be unavailable ({context}), got {other:?}"),
    }
}

/// A root certificate file for `sslrootcert`: a self-signed certificate for `localhost`.
fn self_signed(dir: &std::path::Path, file: &str) -> (rcgen::CertifiedKey, std::path::PathBuf) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, generated.cert.pem()).unwrap();
    (generated, path)
}

/// What the client sees once the test server has read its startup message over TLS.
const REACHED: &str = "reached the test server over TLS";

/// A server that speaks only the start of PostgreSQL's protocol: it answers the SSLRequest
/// with `S`, completes a TLS handshake with `identity`, reads the startup message and refuses
/// the login with a FATAL error saying [`REACHED`].
async fn tls_test_server(identity: &rcgen::CertifiedKey) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(identity.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                tcp.read_exact(&mut request).await?;
                // Length 8, code 80877103: SSLRequest.
                assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
                tcp.write_all(b"S").await?;
                let mut tls = acceptor.accept(tcp).await?;
                let len = tls.read_u32().await? as usize;
                let mut startup = vec![0u8; len - 4];
                tls.read_exact(&mut startup).await?;
                let mut fields = Vec::new();
                for (tag, value) in [(b'S', "FATAL"), (b'C', "28000"), (b'M', REACHED)] {
                    fields.push(tag);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut message = vec![b'E'];
                message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                message.extend_from_slice(&fields);
                tls.write_all(&message).await?;
                tls.shutdown().await
            });
        }
    });
    addr
}

/// `verify-full` (and `require`, which verifies as well) reach the server over TLS when its
/// certificate chains to `sslrootcert` and names the host; a certificate from another root,
/// or for another name, is refused before any credential is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_verify_the_certificate_and_the_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let (server_identity, root) = self_signed(dir.path(), "root.pem");
    let (_, other_root) = self_signed(dir.path(), "other.pem");
    let addr = tls_test_server(&server_identity).await;
    let connect = |host: &str, mode: &str, root: &std::path::Path| {
        let url = format!(
            "postgres://apig:secret-pw@{host}:{}/db?hostaddr=127.0.0.1&connect_timeout=10\
             &sslmode={mode}&sslrootcert={}",
            addr.port(),
            root.display()
        );
        async move {
            let err = PostgresStore::connect(&url, PostgresOptions::new())
                .await
                .expect_err("the test server refuses every login");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("secret-pw"), "{shown}");
            shown
        }
    };
    for mode in ["verify-full", "require", "prefer"] {
        let shown = connect("localhost", mode, &root).await;
        assert!(shown.contains(REACHED), "{mode}: {shown}");
    }
    let shown = connect("localhost", "verify-full", &other_root).await;
    assert!(
        shown.contains("TLS")
            && shown.contains("invalid peer certificate")
            && !shown.contains(REACHED),
        "{shown}"
    );
    let shown = connect("127.0.0.1", "require", &root).await;
    assert!(
        shown.contains("TLS") && shown.contains("not valid for name") && !shown.contains(REACHED),
        "{shown}"
    );
}

/// Against a server without TLS: `require` fails, saying so; `prefer` falls back to a plain
/// session; `disable` (the default) never asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_only_when_tls_is_required() {
    let Some(db) = TestDb::create("a_server_without_tls_is_refused").await else {
        return;
    };
    let plain: Option<bool> = db
        .client()
        .await
        .query_one("SELECT current_setting('ssl') = 'off'", &[])
        .await
        .ok()
        .map(|r| r.get(0));
    if plain != Some(true) {
        eprintln!("SKIPPED: the test database offers TLS");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, root) = self_signed(dir.path(), "root.pem");
    let with = |mode: &str| format!("{}&sslmode={mode}&sslrootcert={}", db.url(), root.display());
    let err = PostgresStore::connect(&with("require"), PostgresOptions::new())
        .await
        .expect_err("no TLS, no connection");
    assert!(err.to_string().contains("TLS"), "{err}");
    for mode in ["prefer", "disable"] {
        let store = PostgresStore::connect(&with(mode), PostgresOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        store.create_app(app_in(&scope(), 1)).await.ok();
        assert_eq!(store.get_app(&scope(), &id(1)).await.unwrap().id, id(1));
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

/// Inserts AppCode `record` with plain SQL, as an operator would in psql (a store without a
/// master key holds values in clear, with their SHA-256 as the digest).
async fn insert_with_sql(sql: &tokio_postgres::Client, record: &AppCodeRecord) {
    sql.execute(
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
         SELECT seq, instance_id, $2, convert_to($3, 'UTF8'), sha256(convert_to($3, 'UTF8')), 3
         FROM apps WHERE id = $1",
        &[&record.app_id, &record.id, &record.value.expose()],
    )
    .await
    .unwrap();
}

/// Change events until a resync, and the resync's position among them.
async fn until_resync(stream: &mut ChangeStream) -> Vec<Change> {
    let mut seen = Vec::new();
    loop {
        match next(stream).await {
            Change::Resync => return seen,
            change => seen.push(change),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_with_plain_sql_are_logged_and_announced() {
    let Some(db) = TestDb::create("changes_made_with_plain_sql_are_logged_and_announced").await
    else {
        return;
    };
    let (a, _b, mut changes) = writer_and_listener(&db).await;
    let sql = db.client().await;
    let first = code(1, 1);
    a.create_app_code(&scope(), first.clone()).await.unwrap();
    expect_upsert(next_code(&mut changes).await, &first);
    let start = a
        .instance_snapshot("instance-1")
        .await
        .unwrap()
        .revision
        .unwrap();

    // From a session whose search_path does not name the store's schema.
    let elsewhere = db.client().await;
    elsewhere
        .batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    let delete = format!("DELETE FROM {}.app_codes WHERE id = $1", db.schema());
    elsewhere.execute(&delete, &[&first.id]).await.unwrap();
    expect_remove_id(next_code(&mut changes).await, &first.id);
    let second = code(1, 2);
    insert_with_sql(&sql, &second).await;
    expect_upsert(next_code(&mut changes).await, &second);
    // A new value under the same ID: the old one goes, the new one comes.
    let renewed = AppCodeRecord {
        value: AppCode::parse(&format!("PgRenewed{}", "r".repeat(60))).unwrap(),
        ..second.clone()
    };
    sql.execute(
        "UPDATE app_codes SET value = convert_to($2, 'UTF8'),
                              value_digest = sha256(convert_to($2, 'UTF8'))
         WHERE id = $1",
        &[&second.id, &renewed.value.expose()],
    )
    .await
    .unwrap();
    expect_remove_id(next_code(&mut changes).await, &second.id);
    expect_upsert(next_code(&mut changes).await, &renewed);
    // Each statement was a write of its own, logged like the API's.
    let logged = a
        .app_code_changes("instance-1", start)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logged.revision, start + 3);
    assert_eq!(logged.created, std::slice::from_ref(&renewed));
    assert_eq!(
        logged.deleted.iter().map(|d| &d.id).collect::<Vec<_>>(),
        [&first.id, &second.id]
    );

    // A bulk statement: one revision, its first changes announced one by one, then one
    // announcement to catch up on the rest.
    sql.batch_execute(
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
         SELECT a.seq, a.instance_id, 'bulk' || n, convert_to(v, 'UTF8'),
                sha256(convert_to(v, 'UTF8')), 0
         FROM apps a, generate_series(1, 200) n,
              LATERAL (SELECT 'BulkValue' || lpad(n::text, 8, '0') || repeat('b', 60) AS v) x",
    )
    .await
    .unwrap();
    let one_by_one = until_resync(&mut changes).await;
    assert_eq!(one_by_one.len(), 32, "{one_by_one:?}");
    sql.batch_execute("DELETE FROM app_codes WHERE id LIKE 'bulk%'")
        .await
        .unwrap();
    let one_by_one = until_resync(&mut changes).await;
    assert_eq!(one_by_one.len(), 32);
    assert!(one_by_one
        .iter()
        .all(|c| matches!(c, Change::RemoveId(id) if id.starts_with("bulk"))));
    let bulk = a
        .app_code_changes("instance-1", logged.revision)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bulk.revision, logged.revision + 2);
    assert!(bulk.created.is_empty());
    assert_eq!(bulk.deleted.len(), 200);
    // What the store holds and what it says it holds agree.
    let digest = a.instance_digest("instance-1").await.unwrap().unwrap();
    assert_eq!(digest.revision, bulk.revision);
    let mut expected = apig_appcode::provider::CodesDigest::default();
    expected.add(&renewed.app_id, &renewed.id);
    assert_eq!(digest.codes, expected);
    // An app's signing key changed with SQL reaches the nodes too.
    sql.execute(
        "UPDATE apps SET app_key = 'sql-set-key-0001' WHERE id = $1",
        &[&id(1)],
    )
    .await
    .unwrap();
    let (app, key) = next_key(&mut changes).await;
    assert_eq!(app, id(1));
    assert_eq!(key.unwrap().key(), "sql-set-key-0001");
}

/// The digest is read a slice of apps per statement (so that a large instance is bounded by
/// its progress, not by one call's timeout): apps and codes far apart in sequence, with empty
/// slices between them, sum as one, and another instance's codes in the same slices count for
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_over_many_slices_is_the_digest_of_every_code() {
    let Some(db) = TestDb::create("a_digest_over_many_slices_is_the_digest_of_every_code").await
    else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    let sql = db.client().await;
    let restart =
        |table: &str, seq: i64| format!("ALTER TABLE {table} ALTER COLUMN seq RESTART WITH {seq}");
    let mut expected = CodesDigest::default();
    for (app, seq) in [(1, 1_i64), (2, 70_000), (3, 260_000)] {
        sql.batch_execute(&restart("apps", seq)).await.unwrap();
        store.create_app(app_in(&scope(), app)).await.unwrap();
        for (n, code_seq) in [(app * 10 + 1, 1_000_000_i64), (app * 10 + 2, 1_700_000)] {
            sql.batch_execute(&restart("app_codes", code_seq + seq))
                .await
                .unwrap();
            let record = code(app, n);
            store
                .create_app_code(&scope(), record.clone())
                .await
                .unwrap();
            expected.add(&record.app_id, &record.id);
        }
    }
    let other = Scope::new("project-a", "instance-2");
    sql.batch_execute(&restart("apps", 70_001)).await.unwrap();
    store.create_app(app_in(&other, 4)).await.unwrap();
    store.create_app_code(&other, code(4, 41)).await.unwrap();
    let digest = store.instance_digest("instance-1").await.unwrap().unwrap();
    assert_eq!(digest.codes, expected);
    assert_eq!(digest.codes.count, 6);
}
