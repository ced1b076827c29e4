//! Versioned schema migrations and the record of the master key a database was created with.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::error::{corrupt, db};
use super::rows::BACKEND;
use crate::store::cipher::Sealer;
use crate::store::version::applied_migrations;
use crate::store::{StoreError, StoreResult};

/// The migrations, oldest first: step `i` takes the schema from version `i` to `i + 1`
/// (`PRAGMA user_version`). Append only; never edit a released step.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE store_meta (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        encrypted INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
        key_check BLOB,
        cipher TEXT,
        CHECK ((encrypted = 1) = (key_check IS NOT NULL))
    ) STRICT;

    CREATE TABLE apps (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        remark TEXT NOT NULL,
        creator TEXT NOT NULL,
        app_key TEXT NOT NULL,
        app_secret BLOB NOT NULL,
        app_secret_nonce BLOB,
        register_time INTEGER NOT NULL,
        update_time INTEGER NOT NULL,
        status INTEGER NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX apps_by_id ON apps (project_id, instance_id, id);
    CREATE UNIQUE INDEX apps_by_name ON apps (project_id, instance_id, name);
    CREATE UNIQUE INDEX apps_by_key ON apps (project_id, instance_id, app_key);

    CREATE TABLE app_codes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        app_seq INTEGER NOT NULL REFERENCES apps (seq) ON DELETE CASCADE,
        instance_id TEXT NOT NULL,
        id TEXT NOT NULL,
        value BLOB NOT NULL,
        value_nonce BLOB,
        value_digest BLOB NOT NULL,
        create_time INTEGER NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX app_codes_by_value ON app_codes (instance_id, value_digest);
    CREATE UNIQUE INDEX app_codes_by_id ON app_codes (instance_id, id);
    CREATE INDEX app_codes_by_app ON app_codes (app_seq, seq);",
    // 2: revisions of each instance's AppCodes and their change log (see `triggers.rs`).
    // An instance without a row is at revision 0: that is every instance of a store this step
    // upgrades, whose codes a reader then loads in one snapshot at revision 0.
    //
    // The log holds IDs only, never a value. Its primary key clusters each instance's entries
    // by revision, so both reading the changes after a revision and pruning the oldest
    // revisions are one range of one b-tree; `position` orders the entries of one write.
    "CREATE TABLE instance_revisions (
        instance_id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL CHECK (revision >= 0),
        pruned_through INTEGER NOT NULL CHECK (pruned_through BETWEEN 0 AND revision)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE app_code_changes (
        instance_id TEXT NOT NULL,
        revision INTEGER NOT NULL CHECK (revision > 0),
        position INTEGER NOT NULL CHECK (position >= 0),
        app_code_id TEXT NOT NULL,
        app_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('created', 'deleted')),
        PRIMARY KEY (instance_id, revision, position)
    ) STRICT, WITHOUT ROWID;",
    // 3: the change log in the PostgreSQL store's words (its table, `ord`, kinds `C` and `D`),
    // so that both stores' `ops.rs` read alike. PostgreSQL keeps its names because nodes of
    // two versions may share one database during an upgrade; one SQLite file has one writer.
    // The rows are copied, so readers behind keep catching up. Kind `A` logs a change of an
    // app's ACL (`app_code_id` is empty), which `app_acls` holds: its type and its values, one
    // a line.
    "CREATE TABLE app_code_log (
        instance_id TEXT NOT NULL,
        revision INTEGER NOT NULL CHECK (revision > 0),
        ord INTEGER NOT NULL CHECK (ord >= 0),
        app_code_id TEXT NOT NULL,
        app_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('C', 'D', 'A')),
        PRIMARY KEY (instance_id, revision, ord)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE app_acls (
        app_seq INTEGER PRIMARY KEY REFERENCES apps (seq),
        kind TEXT NOT NULL CHECK (kind IN ('PERMIT', 'DENY')),
        acl_values TEXT NOT NULL
    ) STRICT;
    INSERT INTO app_code_log (instance_id, revision, ord, app_code_id, app_id, kind)
        SELECT instance_id, revision, position, app_code_id, app_id,
               CASE kind WHEN 'created' THEN 'C' ELSE 'D' END
        FROM app_code_changes;
    DROP TABLE app_code_changes;",
    // 4: app quotas, their bindings (one per app; `seq` keeps the order apps were bound in)
    // and the calls every node counted in each app's current window (by app ID: nodes report
    // counts of apps they know, which need not exist here any more). A change of an app's
    // quota is logged as kind `A`, like a change of its ACL: the reader reads both back.
    "CREATE TABLE app_quotas (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        call_limits INTEGER NOT NULL CHECK (call_limits > 0),
        time_unit TEXT NOT NULL CHECK (time_unit IN ('SECOND', 'MINUTE', 'HOUR', 'DAY')),
        time_interval INTEGER NOT NULL CHECK (time_interval > 0),
        reset_time INTEGER,
        remark TEXT NOT NULL,
        create_time INTEGER NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX app_quotas_by_id ON app_quotas (project_id, instance_id, id);
    CREATE UNIQUE INDEX app_quotas_by_name ON app_quotas (instance_id, name);

    CREATE TABLE app_quota_bindings (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        app_seq INTEGER NOT NULL UNIQUE REFERENCES apps (seq),
        quota_seq INTEGER NOT NULL REFERENCES app_quotas (seq),
        bound_time INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX app_quota_bindings_by_quota ON app_quota_bindings (quota_seq, seq);

    CREATE TABLE app_quota_counts (
        instance_id TEXT NOT NULL,
        app_id TEXT NOT NULL,
        first_call INTEGER NOT NULL,
        window_start INTEGER NOT NULL,
        calls INTEGER NOT NULL CHECK (calls >= 0),
        PRIMARY KEY (instance_id, app_id)
    ) STRICT, WITHOUT ROWID;",
    // 5: the database writes the change log. Triggers on the tables a gateway reads log every
    // change, however it was made (the management API, the sqlite3 shell, a restore): see
    // `triggers.rs`.
    super::triggers::MIGRATION,
];

/// The schema version this code writes.
pub(super) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the database to the current schema and checks (or, for a new database, records)
/// whether it is encrypted and with which key, all in one `BEGIN IMMEDIATE` transaction: of two
/// processes opening a new file at once, one migrates and the other waits and finds it done.
pub(super) fn prepare(conn: &mut Connection, sealer: &Sealer) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin schema transaction"))?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db("read schema version"))?;
    let supported = current_version();
    let from = applied_migrations(found, supported, BACKEND)?;
    for step in &MIGRATIONS[from..] {
        tx.execute_batch(step)
            .map_err(db("apply schema migration"))?;
    }
    if found < supported {
        tx.pragma_update(None, "user_version", supported)
            .map_err(db("record schema version"))?;
    }

    let meta: Option<(i64, Option<Vec<u8>>)> = tx
        .query_row(
            "SELECT encrypted, key_check FROM store_meta WHERE singleton = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db("read store_meta"))?;
    match meta {
        Some((encrypted, key_check)) => sealer
            .verify(encrypted != 0, key_check.as_deref())
            .map_err(|e| StoreError::Backend(Box::new(e)))?,
        // Only a database created by this very transaction may lack the record; anything
        // else lost it and cannot be trusted to be in clear or encrypted.
        None if found == 0 => {
            let check = sealer.key_check();
            tx.execute(
                "INSERT INTO store_meta (singleton, encrypted, key_check, cipher)
                 VALUES (1, ?1, ?2, ?3)",
                params![
                    i64::from(sealer.is_encrypted()),
                    check.as_ref().map(|c| &c[..]),
                    sealer.is_encrypted().then_some("chacha20poly1305"),
                ],
            )
            .map_err(db("write store_meta"))?;
        }
        None => return Err(corrupt("store_meta has no row")),
    }
    tx.commit().map_err(db("commit schema transaction"))
}
