//! What only this store can get wrong: the file format, keys, and damaged rows.

use rusqlite::Connection;

use super::schema::current_version;
use super::{SqliteOptions, SqliteStore};
use crate::code::AppCode;
use crate::store::{
    App, AppCodeRecord, KeyMismatch, MasterKey, SchemaTooNew, Scope, SecretString, Store,
    StoreError, Timestamp,
};

fn scope() -> Scope {
    Scope::new("p", "i")
}

fn app(n: u32) -> App {
    App {
        id: format!("{n:032x}"),
        scope: scope(),
        name: format!("app_{n}"),
        remark: String::new(),
        creator: "USER".into(),
        app_key: format!("key{n:029}"),
        app_secret: SecretString::new(format!("secret-{n:024}")),
        register_time: Timestamp::from_unix_nanos(1),
        update_time: Timestamp::from_unix_nanos(2),
        status: 1,
    }
}

fn code(app: u32, n: u32) -> AppCodeRecord {
    AppCodeRecord {
        id: format!("{:032x}", 1000 * app + n),
        app_id: format!("{app:032x}"),
        value: AppCode::parse(&format!("UnitValue{app:04}x{n:04}{}", "q".repeat(60))).unwrap(),
        create_time: Timestamp::from_unix_nanos(3),
    }
}

fn keyed(byte: u8) -> SqliteOptions {
    SqliteOptions::new().master_key(MasterKey::from_bytes([byte; 32]))
}

fn backend(result: Result<impl std::fmt::Debug, StoreError>) -> Box<dyn std::error::Error> {
    match result {
        Err(StoreError::Backend(e)) => e,
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// A store at `path` with app 1 holding codes 1 and 2.
async fn seeded(path: &std::path::Path, options: SqliteOptions) -> SqliteStore {
    let store = SqliteStore::open(path, options).unwrap();
    store.create_app(app(1)).await.unwrap();
    store.create_app_code(&scope(), code(1, 1)).await.unwrap();
    store.create_app_code(&scope(), code(1, 2)).await.unwrap();
    store
}

#[test]
fn open_records_the_schema_version_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    for _ in 0..2 {
        drop(SqliteStore::open(&path, SqliteOptions::new()).unwrap());
    }
    let raw = Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, current_version());
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path, SqliteOptions::new()).unwrap());
    let next = current_version() + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", next)
        .unwrap();
    let err = backend(SqliteStore::open(&path, SqliteOptions::new()));
    assert_eq!(
        err.downcast_ref::<SchemaTooNew>(),
        Some(&SchemaTooNew {
            found: next,
            supported: current_version()
        })
    );
    assert!(err.to_string().contains("upgrade"), "{err}");
}

#[test]
fn a_foreign_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE apps (x INTEGER);")
        .unwrap();
    backend(SqliteStore::open(&path, SqliteOptions::new()));
}

#[test]
fn keys_must_match_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (enc, plain) = (dir.path().join("enc.db"), dir.path().join("plain.db"));
    drop(SqliteStore::open(&enc, keyed(1)).unwrap());
    drop(SqliteStore::open(&plain, SqliteOptions::new()).unwrap());
    let cases = [
        (&enc, SqliteOptions::new(), KeyMismatch::MissingKey),
        (&enc, keyed(2), KeyMismatch::WrongKey),
        (&plain, keyed(1), KeyMismatch::UnexpectedKey),
    ];
    for (path, options, expected) in cases {
        let err = backend(SqliteStore::open(path, options));
        assert_eq!(err.downcast_ref::<KeyMismatch>(), Some(&expected));
    }
    assert!(SqliteStore::open(&enc, keyed(1)).unwrap().is_encrypted());
    assert!(!SqliteStore::open(&plain, SqliteOptions::new())
        .unwrap()
        .is_encrypted());
}

#[tokio::test]
async fn debug_shows_no_key_or_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(&dir.path().join("s.db"), keyed(0x5c)).await;
    let shown = format!("{store:?} {:?}", keyed(0x5c));
    assert!(shown.contains("encrypted: true"), "{shown}");
    assert!(
        !shown.contains("92, 92") && !shown.contains("5c5c"),
        "{shown}"
    );
}

#[tokio::test]
async fn ciphertext_swapped_between_rows_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = seeded(&path, keyed(1)).await;
    let (a, b) = (code(1, 1).id, code(1, 2).id);
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "UPDATE app_codes SET
               value = (SELECT value FROM app_codes WHERE id = '{b}'),
               value_nonce = (SELECT value_nonce FROM app_codes WHERE id = '{b}')
             WHERE id = '{a}';"
        ))
        .unwrap();
    let err = backend(store.get_app_code(&scope(), &code(1, 1).app_id, &a).await);
    assert!(err.to_string().contains("corrupt"), "{err}");
    // The untouched row still reads, and a listing fails as a whole rather than skipping.
    assert!(store
        .get_app_code(&scope(), &code(1, 2).app_id, &b)
        .await
        .is_ok());
    backend(store.instance_app_codes("i").await);
}

#[tokio::test]
async fn damaged_rows_are_backend_errors_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = seeded(&path, SqliteOptions::new()).await;
    let raw = Connection::open(&path).unwrap();
    // A value that breaks the AppCode rules, one that is not UTF-8, a secret with a nonce.
    let bad_value = format!("*{}", "leakme".repeat(12));
    raw.execute(
        "UPDATE app_codes SET value = ?1 WHERE id = ?2",
        (bad_value.as_bytes(), &code(1, 1).id),
    )
    .unwrap();
    raw.execute(
        "UPDATE app_codes SET value = x'ff00' WHERE id = ?1",
        [&code(1, 2).id],
    )
    .unwrap();
    let app_id = code(1, 1).app_id;
    for id in [code(1, 1).id, code(1, 2).id] {
        let err = backend(store.get_app_code(&scope(), &app_id, &id).await);
        let text = format!("{err} {err:?}");
        assert!(text.contains(&id) && !text.contains("leakme"), "{text}");
    }
    backend(store.delete_app(&scope(), &app_id).await);
    // Nothing was deleted by the failed deletion.
    assert_eq!(
        store
            .count_app_codes(&scope(), std::slice::from_ref(&app_id))
            .await
            .unwrap(),
        [2]
    );
    raw.execute("UPDATE apps SET app_secret_nonce = x'00'", [])
        .unwrap();
    backend(store.get_app(&scope(), &app_id).await);
}

#[tokio::test]
async fn values_are_stored_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    for (name, options, encrypted) in [
        ("plain.db", SqliteOptions::new(), false),
        ("enc.db", keyed(7), true),
    ] {
        let path = dir.path().join(name);
        let _store = seeded(&path, options).await;
        let raw = Connection::open(&path).unwrap();
        let (value, nonce, digest): (Vec<u8>, Option<Vec<u8>>, Vec<u8>) = raw
            .query_row(
                "SELECT value, value_nonce, value_digest FROM app_codes WHERE id = ?1",
                [&code(1, 1).id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let clear = code(1, 1).value.expose().as_bytes().to_vec();
        assert_eq!(value == clear, !encrypted);
        assert_eq!(nonce.map(|n| n.len()), encrypted.then_some(12));
        assert_eq!(digest.len(), 32);
        let meta: i64 = raw
            .query_row("SELECT encrypted FROM store_meta", [], |r| r.get(0))
            .unwrap();
        assert_eq!(meta, i64::from(encrypted));
    }
}

#[tokio::test]
async fn unique_indexes_back_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let _store = seeded(&path, SqliteOptions::new()).await;
    let raw = Connection::open(&path).unwrap();
    let dup_digest = raw.execute(
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
         SELECT app_seq, instance_id, 'other', value, value_digest, 0 FROM app_codes LIMIT 1",
        [],
    );
    assert!(dup_digest.is_err());
    for column in ["name", "app_key", "id"] {
        let dup = raw.execute(
            &format!(
                "INSERT INTO apps (project_id, instance_id, id, name, remark, creator, app_key,
                                   app_secret, register_time, update_time, status)
                 SELECT project_id, instance_id,
                        CASE WHEN '{column}' = 'id' THEN id ELSE 'x1' END,
                        CASE WHEN '{column}' = 'name' THEN name ELSE 'x2' END,
                        remark, creator,
                        CASE WHEN '{column}' = 'app_key' THEN app_key ELSE 'x3' END,
                        app_secret, 0, 0, 1 FROM apps LIMIT 1"
            ),
            [],
        );
        assert!(dup.is_err(), "{column} is not unique");
    }
}

#[tokio::test]
async fn duplicate_ids_are_backend_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(&dir.path().join("s.db"), SqliteOptions::new()).await;
    let mut twin = app(2);
    twin.id = app(1).id;
    backend(store.create_app(twin).await);
    let mut twin = code(1, 3);
    twin.id = code(1, 1).id;
    backend(store.create_app_code(&scope(), twin).await);
}

#[tokio::test]
async fn deleted_codes_leave_no_clear_text_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = seeded(&path, SqliteOptions::new()).await;
    let (gone, kept) = (code(1, 1), code(1, 2));
    store
        .delete_app_code(&scope(), &gone.app_id, &gone.id)
        .await
        .unwrap();
    // Fold the WAL (which held the insertion) into the file and empty it.
    Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(kept.value.expose()), "the search must work");
    assert!(!text.contains(gone.value.expose()));
}
