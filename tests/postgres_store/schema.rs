//! The schema in PostgreSQL: migrations when nodes start together or find an older version,
//! the master key it was made with, what reaches the database and its logs, and the change
//! log's retention.

use apig_appcode::store::{KeyMismatch, PostgresOptions, PostgresStore, SchemaTooNew, Store};

use super::pg::TestDb;
use super::records::{app_in, id};
use super::{backend, code, column, key, logged_since, open, scope, store_with_app};

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
    let store = store_with_app(&db, PostgresOptions::new()).await;
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
    let held = store.list_app_codes(&scope(), &id(1), 0, 10).await.unwrap();
    assert_eq!(held.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_upgrades_in_place() {
    let Some(db) = TestDb::create("a_version_1_schema_upgrades_in_place").await else {
        return;
    };
    let store = store_with_app(&db, key(5)).await;
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
    assert!(logged_since(&store, 0).await.is_empty());
    // And writes take revisions from there.
    let new = code(1, 2);
    store.create_app_code(&scope(), new.clone()).await.unwrap();
    store
        .delete_app_code(&scope(), &id(1), &old.id)
        .await
        .unwrap();
    let changes = logged_since(&store, 0).await;
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
    let store = store_with_app(&db, PostgresOptions::new()).await;
    let old = code(1, 1);
    store.create_app_code(&scope(), old.clone()).await.unwrap();
    let before = logged_since(&store, 0).await;
    drop(store);
    db.client()
        .await
        .batch_execute(&format!(
            "{UNDO_VERSION_5} DELETE FROM apig_schema_migrations WHERE version >= 5"
        ))
        .await
        .unwrap();

    let store = open(&db, PostgresOptions::new()).await;
    assert_eq!(logged_since(&store, 0).await, before);
    // Plain SQL is logged from now on, under the next revision.
    db.client()
        .await
        .execute("DELETE FROM app_codes WHERE id = $1", &[&old.id])
        .await
        .unwrap();
    let changes = logged_since(&store, before.revision).await;
    assert_eq!(changes.revision, before.revision + 1);
    assert_eq!(changes.deleted.len(), 1);
    assert_eq!(changes.deleted[0].id, old.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_keeps_only_the_retained_revisions() {
    let Some(db) = TestDb::create("the_change_log_keeps_only_the_retained_revisions").await else {
        return;
    };
    let store = store_with_app(&db, PostgresOptions::new().change_log_retention(3)).await;
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
