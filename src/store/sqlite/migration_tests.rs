//! Files written by older versions of this store, upgraded in place with their change log, and
//! the log's retention.

use rusqlite::Connection;

use super::schema::current_version;
use super::tests::{app, code, keyed, scope, seeded};
use super::{SqliteOptions, SqliteStore};
use crate::store::{AppCodeChanges, Store, StoreError};

/// The schema of every table and index in `conn`, in a stable order.
fn schema_of(conn: &Connection) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)));
    rows.unwrap().map(Result::unwrap).collect()
}

/// Asserts that `upgraded` has exactly the schema of a file this version creates (made in `dir`).
fn assert_schema_of_a_new_file(upgraded: &Connection, dir: &std::path::Path) {
    let fresh = dir.join("fresh.db");
    drop(SqliteStore::open(&fresh, SqliteOptions::new()).unwrap());
    assert_eq!(
        schema_of(upgraded),
        schema_of(&Connection::open(&fresh).unwrap())
    );
}

/// A seeded file whose log holds its codes' creation and one deletion, closed; and that log.
async fn logged_file(path: &std::path::Path) -> crate::store::AppCodeChanges {
    let store = seeded(path, keyed(4)).await;
    store
        .delete_app_code(&scope(), &app(1).id, &code(1, 1).id)
        .await
        .unwrap();
    store.app_code_changes("i", 0).await.unwrap().unwrap()
}

/// Checks that `raw` has the schema the first `version` migrations make.
fn assert_is_version(raw: &Connection, version: usize) {
    let expected = Connection::open_in_memory().unwrap();
    expected
        .execute_batch(&super::schema::MIGRATIONS[..version].join(";"))
        .unwrap();
    assert_eq!(
        schema_of(raw),
        schema_of(&expected),
        "not a version {version} file"
    );
}

/// Takes a file back to version 4: without the triggers that log changes.
const UNDO_VERSION_5: &str = "
    DROP TRIGGER app_codes_inserted; DROP TRIGGER app_codes_deleted;
    DROP TRIGGER app_codes_updated; DROP TRIGGER app_acls_inserted;
    DROP TRIGGER app_acls_updated; DROP TRIGGER app_acls_deleted;
    DROP TRIGGER app_quota_bindings_inserted; DROP TRIGGER app_quota_bindings_updated;
    DROP TRIGGER app_quota_bindings_deleted; DROP TRIGGER app_quotas_updated;
    DROP TRIGGER apps_deleted; DROP TRIGGER apps_renamed; DROP TRIGGER apps_inserted;
    DROP TRIGGER apps_key_changed;
    DROP VIEW app_code_log_entries; DROP TABLE open_writes;";

#[tokio::test]
async fn a_version_4_file_upgrades_in_place_keeping_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let before = logged_file(&path).await;
    let revision = before.revision;
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(UNDO_VERSION_5).unwrap();
    raw.execute_batch("PRAGMA user_version = 4;").unwrap();
    assert_is_version(&raw, 4);
    drop(raw);

    let store = SqliteStore::open(&path, keyed(4)).unwrap();
    assert_eq!(
        store.app_code_changes("i", 0).await.unwrap().unwrap(),
        before
    );
    store.create_app_code(&scope(), code(1, 3)).await.unwrap();
    let changes = store
        .app_code_changes("i", revision)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changes.revision, changes.created),
        (revision + 1, vec![code(1, 3)])
    );
}

async fn revision_of(store: &SqliteStore) -> Option<u64> {
    store.instance_snapshot("i").await.unwrap().revision
}

#[tokio::test]
async fn a_version_1_file_upgrades_in_place_at_revision_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(seeded(&path, keyed(4)).await);
    // Turn the file into what version 1 left: its tables hold what version 1 wrote (nothing in
    // them changed), and it had neither revisions nor a log.
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(UNDO_VERSION_5).unwrap();
    raw.execute_batch(
        "DROP TABLE instance_revisions; DROP TABLE app_code_log; DROP TABLE app_acls;
         DROP TABLE app_quota_counts; DROP TABLE app_quota_bindings; DROP TABLE app_quotas;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    assert_is_version(&raw, 1);
    drop(raw);

    let store = SqliteStore::open(&path, keyed(4)).unwrap();
    // The codes written before revisions existed are all in the snapshot at revision 0.
    let snapshot = store.instance_snapshot("i").await.unwrap();
    assert_eq!(snapshot.codes, [code(1, 1), code(1, 2)]);
    assert_eq!(snapshot.revision, Some(0));
    let none = store.app_code_changes("i", 0).await.unwrap().unwrap();
    assert!(none.is_empty() && none.revision == 0);
    assert!(store.app_code_changes("i", 1).await.unwrap().is_none());
    // And counts from there.
    store.create_app_code(&scope(), code(1, 3)).await.unwrap();
    assert_eq!(revision_of(&store).await, Some(1));
    drop(store);

    // Reopening migrates nothing again and keeps the revision and the log.
    let store = SqliteStore::open(&path, keyed(4)).unwrap();
    assert_eq!(revision_of(&store).await, Some(1));
    let changes = store.app_code_changes("i", 0).await.unwrap().unwrap();
    assert_eq!(changes.created, [code(1, 3)]);
    assert_eq!(changes.revision, 1);
    drop(store);
    let raw = Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, current_version());
    // The upgraded file has exactly the schema of a file created by this version.
    assert_schema_of_a_new_file(&raw, dir.path());
}

#[tokio::test]
async fn a_version_2_file_upgrades_in_place_keeping_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let before = logged_file(&path).await;
    // Turn the file into what version 2 left: the same rows, in version 2's table and words.
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(UNDO_VERSION_5).unwrap();
    raw.execute_batch(
        "CREATE TEMP TABLE logged AS SELECT * FROM app_code_log;
         DROP TABLE instance_revisions; DROP TABLE app_code_log; DROP TABLE app_acls;
         DROP TABLE app_quota_counts; DROP TABLE app_quota_bindings; DROP TABLE app_quotas;",
    )
    .unwrap();
    raw.execute_batch(super::schema::MIGRATIONS[1]).unwrap();
    raw.execute_batch(
        "INSERT INTO app_code_changes
             SELECT instance_id, revision, ord, app_code_id, app_id,
                    CASE kind WHEN 'C' THEN 'created' ELSE 'deleted' END
             FROM temp.logged WHERE kind <> 'A';
         INSERT INTO instance_revisions VALUES ('i', 4, 0);
         DROP TABLE temp.logged; PRAGMA user_version = 2;",
    )
    .unwrap();
    assert_is_version(&raw, 2);
    drop(raw);

    // What was logged before is read back the same (version 2 logged no app changes, so no
    // key), and writes go on from there.
    let store = SqliteStore::open(&path, keyed(4)).unwrap();
    assert_eq!(
        store.app_code_changes("i", 0).await.unwrap().unwrap(),
        AppCodeChanges {
            acls: Vec::new(),
            quotas: Vec::new(),
            keys: Vec::new(),
            ..before
        }
    );
    store.create_app_code(&scope(), code(1, 3)).await.unwrap();
    let changes = store.app_code_changes("i", 4).await.unwrap().unwrap();
    assert_eq!((changes.revision, changes.created), (5, vec![code(1, 3)]));
    drop(store);
    assert_schema_of_a_new_file(&Connection::open(&path).unwrap(), dir.path());
}

#[tokio::test]
async fn the_change_log_holds_ids_only_and_stays_within_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path, SqliteOptions::new().change_log_retention(3)).unwrap();
    store.create_app(app(1)).await.unwrap();
    // Refused writes change nothing, so they take no revision.
    let mut twin = code(1, 9);
    twin.value = code(1, 1).value;
    for n in 1..=5 {
        store.create_app_code(&scope(), code(1, n)).await.unwrap();
    }
    assert!(matches!(
        store.create_app_code(&scope(), code(1, 6)).await,
        Err(StoreError::AppCodeQuotaExceeded)
    ));
    assert!(matches!(
        store.create_app_code(&scope(), twin).await,
        Err(StoreError::AppCodeExists)
    ));
    // The app's creation (its signing key) and its five codes.
    assert_eq!(revision_of(&store).await, Some(6));
    // Deleting the app is one revision, logging each code in order, then the app.
    store.delete_app(&scope(), &app(1).id).await.unwrap();
    assert_eq!(revision_of(&store).await, Some(7));
    let gone = store.app_code_changes("i", 6).await.unwrap().unwrap();
    let ids: Vec<_> = gone.deleted.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, (1..=5).map(|n| code(1, n).id).collect::<Vec<_>>());
    // An app without codes still comes and goes with its signing key: a revision each.
    store.create_app(app(2)).await.unwrap();
    store.delete_app(&scope(), &app(2).id).await.unwrap();
    assert_eq!(revision_of(&store).await, Some(9));

    let raw = Connection::open(&path).unwrap();
    let logged = |raw: &Connection| -> (Vec<i64>, (i64, i64)) {
        let mut stmt = raw
            .prepare("SELECT revision FROM app_code_log ORDER BY revision, ord")
            .unwrap();
        let revisions = stmt.query_map([], |r| r.get(0)).unwrap();
        let kept = revisions.map(Result::unwrap).collect();
        let state = raw
            .query_row(
                "SELECT revision, pruned_through FROM instance_revisions WHERE instance_id = 'i'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        (kept, state)
    };
    // The last 3 revisions are kept: 7 (five codes and their app), 8 and 9 (one app each).
    assert_eq!(logged(&raw), (vec![7, 7, 7, 7, 7, 7, 8, 9], (9, 6)));
    assert!(store.app_code_changes("i", 5).await.unwrap().is_none());
    assert!(store.app_code_changes("i", 6).await.unwrap().is_some());
    // No value anywhere in the log: every column of every row is an ID, a number or a kind.
    let mut stmt = raw
        .prepare("SELECT instance_id, app_code_id, app_id, kind FROM app_code_log")
        .unwrap();
    let rows = stmt.query_map([], |r| {
        Ok([r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
    });
    for row in rows.unwrap().map(Result::unwrap) {
        assert_eq!(row[0], "i");
        assert_eq!(row[2].len(), 32, "{row:?}");
        match row[3].as_str() {
            "C" | "D" => assert_eq!(row[1].len(), 32, "{row:?}"),
            "A" => assert!(row[1].is_empty(), "{row:?}"),
            _ => panic!("{row:?}"),
        }
    }
    drop((stmt, store));

    // Reopened with a smaller retention, the next write prunes down to it.
    let store = SqliteStore::open(&path, SqliteOptions::new().change_log_retention(1)).unwrap();
    store.create_app(app(3)).await.unwrap();
    store.create_app_code(&scope(), code(3, 1)).await.unwrap();
    assert_eq!(logged(&raw), (vec![11], (11, 10)));
    assert!(store.app_code_changes("i", 9).await.unwrap().is_none());
    let last = store.app_code_changes("i", 10).await.unwrap().unwrap();
    assert_eq!(last.created, [code(3, 1)]);
}
