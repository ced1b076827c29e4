//! The store's operations as blocking functions on one connection, each one transaction.
//!
//! Writes that change which AppCodes a gateway must accept are [`Write`]s: the tables'
//! triggers (`triggers.rs`) take the instance's next revision and log what they changed, inside
//! the transaction, so the revision and the log exist exactly when (and only if) the change is
//! committed, as for a change made with plain SQL. The revision, the change log
//! (`app_code_log`) and its pruning follow the same rules, under the same names, as in the
//! PostgreSQL store, whose triggers also announce each write.

use rusqlite::types::ToSql;
use rusqlite::{params, params_from_iter, Connection, Transaction};

use super::error::{cipher, db};
use super::revision::instance_revision;
use super::rows::{
    app_seq, count, query_all, query_codes, read_app, sql_total, APP_COLUMNS, BACKEND, CODE_SELECT,
};
use super::transactions::{read_tx, Write};
use crate::store::cipher::{code_binding, Sealer};
use crate::store::sealed::{self, sql_count, RawApp, RawCode};
use crate::store::{
    App, AppChanges, AppCodeRecord, AppFilter, InstanceSnapshot, Page, Scope, StoreError,
    StoreResult, MAX_APP_CODES_PER_APP,
};

fn exists(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> StoreResult<bool> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.exists(params))
        .map_err(db("check uniqueness"))
}

/// How many AppCodes the app at row `seq` holds.
fn codes_held(tx: &Transaction<'_>, seq: i64) -> StoreResult<u64> {
    let sql = "SELECT COUNT(*) FROM app_codes WHERE app_seq = ?1";
    sql_total(count(tx, "count AppCodes", sql, [seq])?)
}

/// The AppCode `app_code_id` of the app at row `seq`, or [`StoreError::AppCodeNotFound`].
fn code_of_app(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    scope: &Scope,
    seq: i64,
    app_code_id: &str,
) -> StoreResult<AppCodeRecord> {
    query_codes(
        tx,
        sealer,
        &scope.instance_id,
        &format!("{CODE_SELECT} WHERE c.app_seq = ?1 AND c.id = ?2"),
        params![seq, app_code_id],
    )?
    .pop()
    .ok_or(StoreError::AppCodeNotFound)
}

/// Fails with [`StoreError::AppNameExists`] or [`StoreError::AppKeyExists`] (the name first,
/// as every store checks it) when an app of `app`'s scope other than `except` holds its name or
/// key.
fn name_and_key_free(tx: &Transaction<'_>, app: &App, except: Option<&str>) -> StoreResult<()> {
    let checks = [
        ("name", &app.name, StoreError::AppNameExists),
        ("app_key", &app.app_key, StoreError::AppKeyExists),
    ];
    let scope = &app.scope;
    for (column, value, taken) in checks {
        let sql = format!(
            "SELECT 1 FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND {column} = ?3 \
             AND id IS NOT ?4"
        );
        let params = params![scope.project_id, scope.instance_id, value, except];
        if exists(tx, &sql, params)? {
            return Err(taken);
        }
    }
    Ok(())
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
    name_and_key_free(&tx, &app, None)?;
    let sql = "SELECT 1 FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3";
    if exists(
        &tx,
        sql,
        params![scope.project_id, scope.instance_id, app.id],
    )? {
        return Err(sealed::duplicate_app_id(&app.id));
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

/// Reads the app, applies `changes`, checks the new name and key against the scope's other
/// apps and writes every changeable column back (the secret only when it changed). The write
/// transaction is `IMMEDIATE`, so no other writer can slip between the checks and the update.
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
    name_and_key_free(&tx, &app, Some(app_id))?;
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
    let count_sql = format!("SELECT COUNT(*) FROM apps WHERE {APP_FILTER}");
    let total = count(&tx, "count apps", &count_sql, &filter[..])?;
    let (limit, offset) = (sql_count(limit), sql_count(offset));
    let page = filter
        .iter()
        .copied()
        .chain([&limit as &dyn ToSql, &offset]);
    let sql = format!(
        "SELECT {APP_COLUMNS} FROM apps WHERE {APP_FILTER} ORDER BY seq LIMIT ?9 OFFSET ?10"
    );
    let raws = query_all(
        &tx,
        "list apps",
        &sql,
        params_from_iter(page),
        RawApp::from_sqlite_row,
    )?;
    let apps = raws.into_iter().map(|raw| raw.open(sealer, scope, BACKEND));
    sealed::page(total, BACKEND, apps)
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
    if codes_held(&tx, seq)? >= MAX_APP_CODES_PER_APP as u64 {
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
    code_of_app(&tx, sealer, scope, seq, app_code_id)
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
    let total = codes_held(&tx, seq)?;
    let items = query_codes(
        &tx,
        sealer,
        &scope.instance_id,
        &format!("{CODE_SELECT} WHERE c.app_seq = ?1 ORDER BY c.seq LIMIT ?2 OFFSET ?3"),
        params![seq, sql_count(limit), sql_count(offset)],
    )?;
    Ok(Page { total, items })
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
    let record = code_of_app(&tx, sealer, scope, seq, app_code_id)?;
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
