//! The store's operations as blocking functions on one connection, each one transaction.
//!
//! Writes that change which AppCodes a gateway must accept are [`Write`]s: the tables'
//! triggers (`triggers.rs`) take the instance's next revision and log what they changed, inside
//! the transaction, so the revision and the log exist exactly when (and only if) the change is
//! committed, as for a change made with plain SQL. The revision, the change log
//! (`app_code_log`) and its pruning follow the same rules, under the same names, as in the
//! PostgreSQL store, whose triggers also announce each write.

use rusqlite::types::ToSql;
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Row, Transaction, TransactionBehavior,
};

use super::error::{cipher, db};
use crate::provider::{CodesDigest, RevisionDigest};
use crate::secret::Secret;
use crate::store::cipher::{code_binding, Sealer};
use crate::store::sealed::{self, sql_count, sql_revision, RawApp, RawCode};
use crate::store::{
    App, AppChanges, AppCodeChanges, AppCodeRecord, AppFilter, DeletedAppCode, InstanceSnapshot,
    Page, Scope, StoreError, StoreResult, MAX_APP_CODES_PER_APP,
};

/// This store's name in error messages.
const BACKEND: &str = "SQLite";

pub(super) fn write_tx(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin write transaction"))
}

pub(super) fn read_tx(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(db("begin read transaction"))
}

fn sql_total(n: i64) -> StoreResult<u64> {
    sealed::sql_total(n, BACKEND)
}

/// The app's row number, or [`StoreError::AppNotFound`].
pub(super) fn app_seq(tx: &Transaction<'_>, scope: &Scope, app_id: &str) -> StoreResult<i64> {
    tx.prepare_cached("SELECT seq FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3")
        .and_then(|mut s| {
            s.query_row(params![scope.project_id, scope.instance_id, app_id], |r| {
                r.get(0)
            })
            .optional()
        })
        .map_err(db("look up app"))?
        .ok_or(StoreError::AppNotFound)
}

fn exists(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> StoreResult<bool> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.exists(params))
        .map_err(db("check uniqueness"))
}

pub(super) const APP_COLUMNS: &str =
    "id, name, remark, creator, app_key, app_secret, app_secret_nonce, \
                           register_time, update_time, status";

impl RawApp {
    pub(super) fn from_sqlite_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Self::from_sqlite_row_at(r, 0)
    }

    /// The [`APP_COLUMNS`] from column `at` on.
    pub(super) fn from_sqlite_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(at)?,
            name: r.get(at + 1)?,
            remark: r.get(at + 2)?,
            creator: r.get(at + 3)?,
            app_key: r.get(at + 4)?,
            secret: Secret::new(r.get(at + 5)?),
            nonce: r.get(at + 6)?,
            register_time: r.get(at + 7)?,
            update_time: r.get(at + 8)?,
            status: r.get(at + 9)?,
        })
    }
}

const CODE_SELECT: &str = "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time \
                           FROM app_codes c JOIN apps a ON a.seq = c.app_seq";

impl RawCode {
    fn from_sqlite_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            app_id: r.get(1)?,
            value: Secret::new(r.get(2)?),
            nonce: r.get(3)?,
            create_time: r.get(4)?,
        })
    }
}

fn query_codes(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    instance_id: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<AppCodeRecord>> {
    let raws = tx
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(params, RawCode::from_sqlite_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("read AppCodes"))?;
    raws.into_iter()
        .map(|raw| raw.open(sealer, instance_id, BACKEND))
        .collect()
}

pub(super) fn create_app(
    conn: &mut Connection,
    sealer: &Sealer,
    retention: u64,
    app: App,
) -> StoreResult<App> {
    // A new app brings a signing key: its trigger logs it, under this write's revision.
    let tx = Write::begin(conn, retention, &app.scope.instance_id)?;
    let scope = &app.scope;
    let checks = [
        ("name", &app.name, StoreError::AppNameExists),
        ("app_key", &app.app_key, StoreError::AppKeyExists),
        ("id", &app.id, sealed::duplicate_app_id(&app.id)),
    ];
    for (column, value, taken) in checks {
        let sql = format!(
            "SELECT 1 FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND {column} = ?3"
        );
        if exists(
            &tx,
            &sql,
            params![scope.project_id, scope.instance_id, value],
        )? {
            return Err(taken);
        }
    }
    let sealed = sealed::seal_secret(sealer, &app, BACKEND)?;
    tx.prepare_cached(
        "INSERT INTO apps (project_id, instance_id, id, name, remark, creator, app_key,
                           app_secret, app_secret_nonce, register_time, update_time, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            scope.project_id,
            scope.instance_id,
            app.id,
            app.name,
            app.remark,
            app.creator,
            app.app_key,
            &sealed.bytes.expose()[..],
            sealed.nonce.as_ref().map(|n| &n[..]),
            app.register_time.unix_nanos(),
            app.update_time.unix_nanos(),
            app.status,
        ])
    })
    .map_err(db("insert app"))?;
    tx.commit("commit app")?;
    Ok(app)
}

pub(super) fn get_app(
    conn: &mut Connection,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<App> {
    read_app(&read_tx(conn)?, sealer, scope, app_id)
}

pub(super) fn read_app(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<App> {
    let sql = format!(
        "SELECT {APP_COLUMNS} FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3"
    );
    tx.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(
                params![scope.project_id, scope.instance_id, app_id],
                RawApp::from_sqlite_row,
            )
            .optional()
        })
        .map_err(db("read app"))?
        .ok_or(StoreError::AppNotFound)?
        .open(sealer, scope, BACKEND)
}

/// Reads the app, applies `changes`, checks the new name and key against the scope's other
/// apps and writes every changeable column back, the secret sealed anew (a fresh nonce even
/// when it did not change). The write transaction is `IMMEDIATE`, so no other writer can slip
/// between the checks and the update.
pub(super) fn update_app(
    conn: &mut Connection,
    sealer: &Sealer,
    retention: u64,
    scope: &Scope,
    app_id: &str,
    changes: AppChanges,
) -> StoreResult<App> {
    // A new key or secret is logged by the apps' trigger, under this write's revision.
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    // A secret is sealed anew (a fresh nonce) only when it changes: the row's bytes stay as
    // they are otherwise, and the change log's trigger sees no new secret.
    let new_secret = changes.app_secret.is_some();
    let app = changes.apply_to(read_app(&tx, sealer, scope, app_id)?);
    let checks = [
        ("name", &app.name, StoreError::AppNameExists),
        ("app_key", &app.app_key, StoreError::AppKeyExists),
    ];
    for (column, value, taken) in checks {
        let sql = format!(
            "SELECT 1 FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND {column} = ?3 \
             AND id <> ?4"
        );
        if exists(
            &tx,
            &sql,
            params![scope.project_id, scope.instance_id, value, app_id],
        )? {
            return Err(taken);
        }
    }
    let sealed = sealed::seal_secret(sealer, &app, BACKEND)?;
    tx.prepare_cached(
        "UPDATE apps SET name = ?4, remark = ?5, app_key = ?6,
                         app_secret = CASE WHEN ?10 THEN ?7 ELSE app_secret END,
                         app_secret_nonce = CASE WHEN ?10 THEN ?8 ELSE app_secret_nonce END,
                         update_time = ?9
         WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3",
    )
    .and_then(|mut s| {
        s.execute(params![
            scope.project_id,
            scope.instance_id,
            app.id,
            app.name,
            app.remark,
            app.app_key,
            &sealed.bytes.expose()[..],
            sealed.nonce.as_ref().map(|n| &n[..]),
            app.update_time.unix_nanos(),
            new_secret,
        ])
    })
    .map_err(db("update app"))?;
    tx.commit("commit app")?;
    Ok(app)
}

/// `?3`..`?8`: id, name, name_exact, status, app_key, creator; `NULL` matches every app.
/// `instr` makes "contains" literal and case-sensitive, like [`str::contains`].
const APP_FILTER: &str = "project_id = ?1 AND instance_id = ?2
    AND (?3 IS NULL OR id = ?3)
    AND (?4 IS NULL OR CASE WHEN ?5 THEN name = ?4 ELSE instr(name, ?4) > 0 END)
    AND (?6 IS NULL OR status = ?6)
    AND (?7 IS NULL OR app_key = ?7)
    AND (?8 IS NULL OR creator = ?8)";

pub(super) fn list_apps(
    conn: &mut Connection,
    sealer: &Sealer,
    scope: &Scope,
    f: &AppFilter,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<App>> {
    let tx = read_tx(conn)?;
    let filter: [&dyn ToSql; 8] = [
        &scope.project_id,
        &scope.instance_id,
        &f.id,
        &f.name,
        &f.name_exact,
        &f.status,
        &f.app_key,
        &f.creator,
    ];
    let total: i64 = tx
        .prepare_cached(&format!("SELECT COUNT(*) FROM apps WHERE {APP_FILTER}"))
        .and_then(|mut s| s.query_row(&filter[..], |r| r.get(0)))
        .map_err(db("count apps"))?;
    let (limit, offset) = (sql_count(limit), sql_count(offset));
    let page = filter
        .iter()
        .copied()
        .chain([&limit as &dyn ToSql, &offset]);
    let sql = format!(
        "SELECT {APP_COLUMNS} FROM apps WHERE {APP_FILTER} ORDER BY seq LIMIT ?9 OFFSET ?10"
    );
    let raws = tx
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(page), RawApp::from_sqlite_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("list apps"))?;
    Ok(Page {
        total: sql_total(total)?,
        items: raws
            .into_iter()
            .map(|raw| raw.open(sealer, scope, BACKEND))
            .collect::<StoreResult<_>>()?,
    })
}

pub(super) fn count_app_codes(
    conn: &mut Connection,
    scope: &Scope,
    app_ids: &[String],
) -> StoreResult<Vec<u64>> {
    let tx = read_tx(conn)?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM app_codes c JOIN apps a ON a.seq = c.app_seq
             WHERE a.project_id = ?1 AND a.instance_id = ?2 AND a.id = ?3",
        )
        .map_err(db("count AppCodes"))?;
    app_ids
        .iter()
        .map(|id| {
            let n: i64 = stmt
                .query_row(params![scope.project_id, scope.instance_id, id], |r| {
                    r.get(0)
                })
                .map_err(db("count AppCodes"))?;
            sql_total(n)
        })
        .collect()
}

pub(super) fn delete_app(
    conn: &mut Connection,
    sealer: &Sealer,
    retention: u64,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Vec<AppCodeRecord>> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let seq = app_seq(&tx, scope, app_id)?;
    let codes = query_codes(
        &tx,
        sealer,
        &scope.instance_id,
        &format!("{CODE_SELECT} WHERE c.app_seq = ?1 ORDER BY c.seq"),
        [seq],
    )?;
    // The codes first, so they are logged as deleted before the app's ACL and quota, as they
    // are when the app's row goes with them (the `apps_deleted` trigger).
    tx.execute("DELETE FROM app_codes WHERE app_seq = ?1", [seq])
        .map_err(db("delete app"))?;
    super::acls::delete(&tx, seq)?;
    super::quota_apps::leave(&tx, &scope.instance_id, seq, app_id)?;
    tx.execute("DELETE FROM apps WHERE seq = ?1", [seq])
        .map_err(db("delete app"))?;
    tx.commit("commit app deletion")?;
    Ok(codes)
}

pub(super) fn create_app_code(
    conn: &mut Connection,
    sealer: &Sealer,
    retention: u64,
    scope: &Scope,
    record: AppCodeRecord,
) -> StoreResult<AppCodeRecord> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let seq = app_seq(&tx, scope, &record.app_id)?;
    let digest = sealer.digest(record.value.expose().as_bytes());
    if exists(
        &tx,
        "SELECT 1 FROM app_codes WHERE instance_id = ?1 AND value_digest = ?2",
        params![scope.instance_id, &digest[..]],
    )? {
        return Err(StoreError::AppCodeExists);
    }
    let held: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM app_codes WHERE app_seq = ?1")
        .and_then(|mut s| s.query_row([seq], |r| r.get(0)))
        .map_err(db("count AppCodes"))?;
    if sql_total(held)? >= MAX_APP_CODES_PER_APP as u64 {
        return Err(StoreError::AppCodeQuotaExceeded);
    }
    if exists(
        &tx,
        "SELECT 1 FROM app_codes WHERE instance_id = ?1 AND id = ?2",
        params![scope.instance_id, record.id],
    )? {
        return Err(StoreError::Backend(
            format!(
                "an AppCode with ID {} exists in the instance already",
                record.id
            )
            .into(),
        ));
    }
    let sealed = sealer
        .seal(
            &code_binding(&scope.instance_id, &record.app_id, &record.id),
            record.value.expose().as_bytes(),
        )
        .map_err(|e| cipher(format_args!("AppCode {}", record.id), e))?;
    tx.prepare_cached(
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_nonce, value_digest,
                                create_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            seq,
            scope.instance_id,
            record.id,
            &sealed.bytes.expose()[..],
            sealed.nonce.as_ref().map(|n| &n[..]),
            &digest[..],
            record.create_time.unix_nanos(),
        ])
    })
    .map_err(db("insert AppCode"))?;
    tx.commit("commit AppCode")?;
    Ok(record)
}

pub(super) fn get_app_code(
    conn: &mut Connection,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
    app_code_id: &str,
) -> StoreResult<AppCodeRecord> {
    let tx = read_tx(conn)?;
    let seq = app_seq(&tx, scope, app_id)?;
    query_codes(
        &tx,
        sealer,
        &scope.instance_id,
        &format!("{CODE_SELECT} WHERE c.app_seq = ?1 AND c.id = ?2"),
        params![seq, app_code_id],
    )?
    .pop()
    .ok_or(StoreError::AppCodeNotFound)
}

pub(super) fn list_app_codes(
    conn: &mut Connection,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<AppCodeRecord>> {
    let tx = read_tx(conn)?;
    let seq = app_seq(&tx, scope, app_id)?;
    let total: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM app_codes WHERE app_seq = ?1")
        .and_then(|mut s| s.query_row([seq], |r| r.get(0)))
        .map_err(db("count AppCodes"))?;
    let items = query_codes(
        &tx,
        sealer,
        &scope.instance_id,
        &format!("{CODE_SELECT} WHERE c.app_seq = ?1 ORDER BY c.seq LIMIT ?2 OFFSET ?3"),
        params![seq, sql_count(limit), sql_count(offset)],
    )?;
    Ok(Page {
        total: sql_total(total)?,
        items,
    })
}

pub(super) fn delete_app_code(
    conn: &mut Connection,
    sealer: &Sealer,
    retention: u64,
    scope: &Scope,
    app_id: &str,
    app_code_id: &str,
) -> StoreResult<AppCodeRecord> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let seq = app_seq(&tx, scope, app_id)?;
    let record = query_codes(
        &tx,
        sealer,
        &scope.instance_id,
        &format!("{CODE_SELECT} WHERE c.app_seq = ?1 AND c.id = ?2"),
        params![seq, app_code_id],
    )?
    .pop()
    .ok_or(StoreError::AppCodeNotFound)?;
    tx.execute(
        "DELETE FROM app_codes WHERE app_seq = ?1 AND id = ?2",
        params![seq, app_code_id],
    )
    .map_err(db("delete AppCode"))?;
    tx.commit("commit AppCode deletion")?;
    Ok(record)
}

pub(super) fn instance_app_codes(
    conn: &mut Connection,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Vec<AppCodeRecord>> {
    let tx = read_tx(conn)?;
    query_codes(
        &tx,
        sealer,
        instance_id,
        &format!("{CODE_SELECT} WHERE c.instance_id = ?1 ORDER BY c.seq"),
        [instance_id],
    )
}

/// A write transaction of the management API that may change what gateways enforce: the
/// tables' triggers (`triggers.rs`) log every change it makes under one revision of its
/// instance, taken by its first change (none if it changes nothing), in order. It opens a row
/// of `open_writes` for the instance, which the triggers read, and removes it before it
/// commits; dropped without [`commit`](Self::commit), it rolls back with the row.
pub(super) struct Write<'c> {
    tx: Transaction<'c>,
    instance_id: String,
}

impl<'c> std::ops::Deref for Write<'c> {
    type Target = Transaction<'c>;

    fn deref(&self) -> &Transaction<'c> {
        &self.tx
    }
}

impl<'c> Write<'c> {
    /// Begins a write to `instance_id` whose log keeps the last `retention` revisions.
    pub(super) fn begin(
        conn: &'c mut Connection,
        retention: u64,
        instance_id: &str,
    ) -> StoreResult<Self> {
        let tx = write_tx(conn)?;
        tx.prepare_cached("INSERT INTO open_writes (instance_id, retention) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![instance_id, sql_count(retention.max(1))]))
            .map_err(db("open a write"))?;
        Ok(Self {
            tx,
            instance_id: instance_id.to_owned(),
        })
    }

    /// Closes the write and commits it; `what` names it in an error.
    pub(super) fn commit(self, what: &'static str) -> StoreResult<()> {
        self.tx
            .prepare_cached("DELETE FROM open_writes WHERE instance_id = ?1")
            .and_then(|mut s| s.execute([&self.instance_id]))
            .map_err(db("close a write"))?;
        self.tx.commit().map_err(db(what))
    }
}

/// The instance's revision and the newest revision pruned from its log: `(0, 0)` before its
/// first write (or last written before the store kept revisions).
fn instance_revision(tx: &Transaction<'_>, instance_id: &str) -> StoreResult<(u64, u64)> {
    let row: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT revision, pruned_through FROM instance_revisions WHERE instance_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([instance_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db("read the instance's revision"))?;
    let Some((revision, pruned_through)) = row else {
        return Ok((0, 0));
    };
    Ok((
        sql_revision(revision, BACKEND)?,
        sql_revision(pruned_through, BACKEND)?,
    ))
}

pub(super) fn instance_snapshot(
    conn: &mut Connection,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<InstanceSnapshot> {
    // One read transaction: in WAL mode both reads see the database as of the first, so the
    // codes are exactly those of the revision returned.
    let tx = read_tx(conn)?;
    let (revision, _) = instance_revision(&tx, instance_id)?;
    let codes = query_codes(
        &tx,
        sealer,
        instance_id,
        &format!("{CODE_SELECT} WHERE c.instance_id = ?1 ORDER BY c.seq"),
        [instance_id],
    )?;
    Ok(InstanceSnapshot {
        codes,
        revision: Some(revision),
    })
}

/// [`instance_snapshot`], handed to `each` `chunk` codes at a time as they are read, in the
/// same one read transaction; the revision. `each` answers `false` when nobody takes the codes
/// any more: the read stops there.
pub(super) fn instance_snapshot_chunks(
    conn: &mut Connection,
    sealer: &Sealer,
    instance_id: &str,
    chunk: usize,
    each: &mut dyn FnMut(Vec<AppCodeRecord>) -> bool,
) -> StoreResult<Option<u64>> {
    let context = "read AppCodes";
    let tx = read_tx(conn)?;
    let (revision, _) = instance_revision(&tx, instance_id)?;
    let mut stmt = tx
        .prepare_cached(&format!(
            "{CODE_SELECT} WHERE c.instance_id = ?1 ORDER BY c.seq"
        ))
        .map_err(db(context))?;
    let mut rows = stmt.query([instance_id]).map_err(db(context))?;
    let mut codes = Vec::with_capacity(chunk);
    while let Some(row) = rows.next().map_err(db(context))? {
        let raw = RawCode::from_sqlite_row(row).map_err(db(context))?;
        codes.push(raw.open(sealer, instance_id, BACKEND)?);
        if codes.len() >= chunk && !each(std::mem::replace(&mut codes, Vec::with_capacity(chunk))) {
            return Err(StoreError::Unavailable(
                "the snapshot's reader is gone".into(),
            ));
        }
    }
    if !codes.is_empty() {
        each(codes);
    }
    Ok(Some(revision))
}

/// The digest of the instance's AppCodes and the revision it reflects, from one read
/// transaction. SQLite has no hash function: the IDs are read and hashed here, one row at a
/// time.
pub(super) fn instance_digest(
    conn: &mut Connection,
    instance_id: &str,
) -> StoreResult<RevisionDigest> {
    let tx = read_tx(conn)?;
    let (revision, _) = instance_revision(&tx, instance_id)?;
    let mut codes = CodesDigest::default();
    let mut stmt = tx
        .prepare_cached(
            "SELECT a.id, c.id FROM app_codes c JOIN apps a ON a.seq = c.app_seq
             WHERE c.instance_id = ?1",
        )
        .map_err(db("digest the instance's AppCodes"))?;
    let mut rows = stmt
        .query([instance_id])
        .map_err(db("digest the instance's AppCodes"))?;
    let context = "digest the instance's AppCodes";
    while let Some(row) = rows.next().map_err(db(context))? {
        let text = |i| row.get_ref(i).and_then(|v| Ok(v.as_str()?));
        codes.add(text(0).map_err(db(context))?, text(1).map_err(db(context))?);
    }
    Ok(RevisionDigest { revision, codes })
}

pub(super) fn app_code_changes(
    conn: &mut Connection,
    sealer: &Sealer,
    instance_id: &str,
    revision: u64,
) -> StoreResult<Option<AppCodeChanges>> {
    let tx = read_tx(conn)?;
    let (current, pruned_through) = instance_revision(&tx, instance_id)?;
    // Behind the log: changes are missing. Ahead of the store: another database, or this one
    // restored from a backup; either way the reader's codes cannot be patched into ours.
    if revision < pruned_through || revision > current {
        return Ok(None);
    }
    // `revision <= current`, which came from an i64.
    let after = sql_count(revision);
    // Each ID once, where it was last created: an ID deleted and created again (IDs are unique
    // per instance only among existing codes) is the code that exists now. SQLite takes the
    // bare `ord` from the row whose revision `max` chose (a write creates one code at
    // most, so that row is the ID's last creation). `CROSS JOIN` makes SQLite walk the log's
    // range first and look each code up by its ID, whatever the table sizes.
    let created = query_codes(
        &tx,
        sealer,
        instance_id,
        "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time
         FROM (SELECT app_code_id, max(revision) AS revision, ord
               FROM app_code_log
               WHERE instance_id = ?1 AND revision > ?2 AND kind = 'C'
               GROUP BY app_code_id) l
         CROSS JOIN app_codes c ON c.instance_id = ?1 AND c.id = l.app_code_id
         JOIN apps a ON a.seq = c.app_seq
         ORDER BY l.revision, l.ord",
        params![instance_id, after],
    )?;
    let deleted = tx
        .prepare_cached(
            "SELECT app_id, app_code_id FROM app_code_log
             WHERE instance_id = ?1 AND revision > ?2 AND kind = 'D'
             ORDER BY revision, ord",
        )
        .and_then(|mut s| {
            s.query_map(params![instance_id, after], |r| {
                Ok(DeletedAppCode {
                    app_id: r.get(0)?,
                    id: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("read the change log"))?;
    let acls = super::acls::changed_since(&tx, instance_id, after)?;
    let quotas = super::quotas::changed_since(&tx, instance_id, after)?;
    let keys = super::keys::changed_since(&tx, sealer, instance_id, after)?;
    Ok(Some(AppCodeChanges {
        revision: current,
        created,
        deleted,
        acls,
        quotas,
        keys,
    }))
}
