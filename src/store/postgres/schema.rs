//! Versioned schema migrations, applied under an advisory lock so that nodes starting together
//! migrate once, and the record of the master key a database was created with.

use sha2::{Digest, Sha256};

use super::error::corrupt;
use super::pool::Conn;
use super::rows::BACKEND;
use crate::store::cipher::Sealer;
use crate::store::version::applied_migrations;
use crate::store::{StoreError, StoreResult};

/// The migrations, oldest first: step `i` takes the schema from version `i` to `i + 1`, and
/// records `i + 1` in `apig_schema_migrations`. Append only; never edit a released step.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE store_meta (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        encrypted boolean NOT NULL,
        key_check bytea,
        cipher text,
        CHECK (encrypted = (key_check IS NOT NULL))
    );

    CREATE TABLE apps (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        project_id text NOT NULL,
        instance_id text NOT NULL,
        id text NOT NULL,
        name text NOT NULL,
        remark text NOT NULL,
        creator text NOT NULL,
        app_key text NOT NULL,
        app_secret bytea NOT NULL,
        app_secret_nonce bytea,
        register_time bigint NOT NULL,
        update_time bigint NOT NULL,
        status integer NOT NULL,
        CONSTRAINT apps_by_id UNIQUE (project_id, instance_id, id),
        CONSTRAINT apps_by_name UNIQUE (project_id, instance_id, name),
        CONSTRAINT apps_by_key UNIQUE (project_id, instance_id, app_key)
    );

    CREATE TABLE app_codes (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_seq bigint NOT NULL REFERENCES apps (seq) ON DELETE CASCADE,
        instance_id text NOT NULL,
        id text NOT NULL,
        value bytea NOT NULL,
        value_nonce bytea,
        value_digest bytea NOT NULL,
        create_time bigint NOT NULL,
        CONSTRAINT app_codes_by_value UNIQUE (instance_id, value_digest),
        CONSTRAINT app_codes_by_id UNIQUE (instance_id, id)
    );
    CREATE INDEX app_codes_by_app ON app_codes (app_seq, seq);
    CREATE INDEX app_codes_by_instance ON app_codes (instance_id, seq);",
    // 2: revisions of each instance's AppCodes and their change log (see `revision.rs` of the
    // store module). An instance without a row is at revision 0: existing databases upgrade in
    // place, their instances starting at 0 with nothing logged. The log holds IDs only, never a
    // value; its primary key (`ord`: the position within one write) serves the reads
    // `instance_id = $1 AND revision > $2` and the pruning `revision <= $2`.
    "CREATE TABLE instance_revisions (
        instance_id text PRIMARY KEY,
        revision bigint NOT NULL CHECK (revision > 0),
        pruned_through bigint NOT NULL CHECK (pruned_through >= 0 AND pruned_through < revision)
    );

    CREATE TABLE app_code_log (
        instance_id text NOT NULL,
        revision bigint NOT NULL,
        ord integer NOT NULL,
        app_code_id text NOT NULL,
        app_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('C', 'D')),
        PRIMARY KEY (instance_id, revision, ord)
    );",
    // 3: app ACLs, one row per app that has one. A change of one is logged as kind `A` (the
    // app's ID, `app_code_id` empty) under the instance's next revision, like a change of a
    // code. A node of version 2 sharing the database reads only kinds `C` and `D`, and
    // reloads on the announcement it cannot read.
    "ALTER TABLE app_code_log DROP CONSTRAINT app_code_log_kind_check;
    ALTER TABLE app_code_log
        ADD CONSTRAINT app_code_log_kind_check CHECK (kind IN ('C', 'D', 'A'));

    CREATE TABLE app_acls (
        app_seq bigint PRIMARY KEY REFERENCES apps (seq) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('PERMIT', 'DENY')),
        acl_values text[] NOT NULL
    );",
    // 4: app quotas, their bindings (one per app; `seq` keeps the order apps were bound in)
    // and the calls every node counted in each app's current window (by app ID: nodes report
    // counts of apps they know, which need not exist here any more). A change of an app's
    // quota is logged and announced as kind `A`, like a change of its ACL: a node of version 3
    // reads the ACL it names and misses the quota, which it does not enforce anyway. A binding
    // goes with its app even when a node of version 3 deletes the app.
    "CREATE TABLE app_quotas (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        project_id text NOT NULL,
        instance_id text NOT NULL,
        id text NOT NULL,
        name text NOT NULL,
        call_limits bigint NOT NULL CHECK (call_limits > 0),
        time_unit text NOT NULL CHECK (time_unit IN ('SECOND', 'MINUTE', 'HOUR', 'DAY')),
        time_interval bigint NOT NULL CHECK (time_interval > 0),
        reset_time bigint,
        remark text NOT NULL,
        create_time bigint NOT NULL,
        CONSTRAINT app_quotas_by_id UNIQUE (project_id, instance_id, id),
        CONSTRAINT app_quotas_by_name UNIQUE (instance_id, name)
    );

    CREATE TABLE app_quota_bindings (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_seq bigint NOT NULL REFERENCES apps (seq) ON DELETE CASCADE,
        quota_seq bigint NOT NULL REFERENCES app_quotas (seq),
        bound_time bigint NOT NULL,
        CONSTRAINT app_quota_bindings_by_app UNIQUE (app_seq)
    );
    CREATE INDEX app_quota_bindings_by_quota ON app_quota_bindings (quota_seq, seq);

    CREATE TABLE app_quota_counts (
        instance_id text NOT NULL,
        app_id text NOT NULL,
        first_call bigint NOT NULL,
        window_start bigint NOT NULL,
        calls bigint NOT NULL CHECK (calls >= 0),
        PRIMARY KEY (instance_id, app_id)
    );",
    // 5: the database writes the change log. Triggers on the tables a gateway reads log every
    // change, however it was made (the management API, psql, a restore), and announce it:
    // see `triggers.rs`.
    super::triggers::MIGRATION,
];

/// The schema version this code writes.
pub(super) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The advisory lock that serializes migrations of one schema (a stable 64-bit number derived
/// from the schema's name, so stores in other schemas of the database do not wait on it).
fn lock_key(schema: &str) -> i64 {
    let digest = Sha256::digest(format!("apig-appcode/v1/migrate/{schema}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction: brings the schema that
/// `search_path` selects to the current version and checks (or, for a new schema, records)
/// whether values are encrypted and with which key, holding an advisory lock: of several nodes
/// starting at once, one migrates, the others wait and find it done. Returns the schema's name.
pub(super) async fn prepare(conn: &mut Conn, sealer: &Sealer) -> StoreResult<String> {
    let schema: Option<String> = conn
        .query_opt("find the schema", "SELECT current_schema()", &[])
        .await?
        .and_then(|row| row.get(0));
    let schema = schema.ok_or_else(|| {
        StoreError::Backend(
            "PostgreSQL: no schema of the search_path exists; create it or fix the search_path \
             (for example `options=-c search_path=NAME` in the URL)"
                .into(),
        )
    })?;
    migrate(conn, sealer, &schema).await?;
    Ok(schema)
}

async fn migrate(conn: &mut Conn, sealer: &Sealer, schema: &str) -> StoreResult<()> {
    conn.query(
        "lock the schema for migration",
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(schema)],
    )
    .await?;
    conn.execute(
        "create the migrations table",
        "CREATE TABLE IF NOT EXISTS apig_schema_migrations (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
        &[],
    )
    .await?;
    let found: i64 = conn
        .query(
            "read the schema version",
            "SELECT COALESCE(max(version), 0)::bigint FROM apig_schema_migrations",
            &[],
        )
        .await?
        .first()
        .map_or(0, |row| row.get(0));
    let from = applied_migrations(found, current_version(), BACKEND)?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(from) {
        conn.client()
            .batch_execute(step)
            .await
            .map_err(super::error::db("apply a schema migration"))?;
        let version = i32::try_from(i + 1).expect("fewer than 2^31 migrations");
        conn.execute(
            "record a schema migration",
            "INSERT INTO apig_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }

    let meta = conn
        .query_opt(
            "read store_meta",
            "SELECT encrypted, key_check FROM store_meta WHERE singleton",
            &[],
        )
        .await?;
    match meta {
        Some(row) => {
            let (encrypted, key_check): (bool, Option<Vec<u8>>) = (row.get(0), row.get(1));
            sealer
                .verify(encrypted, key_check.as_deref())
                .map_err(|e| StoreError::Backend(Box::new(e)))
        }
        // Only a schema created by this very transaction may lack the record; anything else
        // lost it and cannot be trusted to be in clear or encrypted.
        None if found == 0 => {
            let check = sealer.key_check().map(|c| c.to_vec());
            let cipher = sealer.is_encrypted().then_some("chacha20poly1305");
            conn.execute(
                "write store_meta",
                "INSERT INTO store_meta (singleton, encrypted, key_check, cipher)
                 VALUES (true, $1, $2, $3)",
                &[&sealer.is_encrypted(), &check, &cipher],
            )
            .await
            .map(drop)
        }
        None => Err(corrupt("store_meta has no row")),
    }
}
