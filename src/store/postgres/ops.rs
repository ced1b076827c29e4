//! The store's operations. Each is either one statement, run with
//! [`Pool::call`](super::pool::Pool::call), or the body of one transaction: the pool borrows a
//! connection, begins with the `BEGIN_*` constant the operation's docs name, runs the body and
//! commits ([`Pool::transaction`](super::pool::Pool::transaction)). The body never begins or
//! ends a transaction itself, so the pool alone decides when a connection is reusable.
//!
//! Writes that change which AppCodes a gateway must accept are logged and announced by the
//! tables' triggers (`triggers.rs`), inside their transaction, so the revision, the log and the
//! announcement exist exactly when (and only if) the change is committed, as for a change made
//! with plain SQL. The first logged statement of a write takes the instance's revision and
//! locks its row until the write ends: every other lock a write takes (an app's row, a quota's)
//! it takes before. The revision, the change log (`app_code_log`) and its pruning follow the
//! same rules, under the same names, as in the SQLite store's.

use tokio_postgres::types::ToSql;

use super::error::{cipher, db, unique_violation};
use super::pool::{Conn, Progress};
use super::rows::{
    app_columns, app_seq, code_select, col, count, open_codes, row_by_id, sql_total, APP_BY_ID,
    APP_BY_ID_LOCKED, BACKEND,
};
use super::shared::Shared;
use crate::store::cipher::{code_binding, Sealer};
use crate::store::sealed::{self, sql_count, RawApp, RawCode};
use crate::store::{
    App, AppChanges, AppCodeRecord, AppFilter, InstanceSnapshot, Page, Scope, StoreError,
    StoreResult, MAX_APP_CODES_PER_APP,
};

/// Reads that span several statements see one snapshot.
pub(super) const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
/// Writes take row locks where they need them (see each operation).
pub(super) const BEGIN_WRITE: &str = "BEGIN";
/// A whole instance's AppCodes: its length grows with the instance, so the session's
/// `statement_timeout` (the call timeout) would cut a large one short; the client bounds its
/// progress instead
/// ([`Pool::streaming_transaction`](super::pool::Pool::streaming_transaction)).
/// `REPEATABLE READ`, so that the instance's revision and its codes come from one snapshot.
pub(super) const BEGIN_SNAPSHOT: &str =
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 0";

async fn exists(
    conn: &mut Conn,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<bool> {
    Ok(conn
        .query_opt("check uniqueness", sql, params)
        .await?
        .is_some())
}

/// Fails with [`StoreError::AppNameExists`] or [`StoreError::AppKeyExists`] (the name first,
/// as every store checks it) when an app of `app`'s scope other than `except` holds its name or
/// key.
async fn name_and_key_free(conn: &mut Conn, app: &App, except: Option<&str>) -> StoreResult<()> {
    let checks: [(&'static str, &(dyn ToSql + Sync), StoreError); 2] = [
        (
            "SELECT 1 FROM apps WHERE project_id = $1 AND instance_id = $2 AND name = $3
                                  AND id IS DISTINCT FROM $4::text",
            &app.name,
            StoreError::AppNameExists,
        ),
        (
            "SELECT 1 FROM apps WHERE project_id = $1 AND instance_id = $2 AND app_key = $3
                                  AND id IS DISTINCT FROM $4::text",
            &app.app_key,
            StoreError::AppKeyExists,
        ),
    ];
    let scope = &app.scope;
    for (sql, value, taken) in checks {
        let params: [&(dyn ToSql + Sync); 4] =
            [&scope.project_id, &scope.instance_id, value, &except];
        if exists(conn, sql, &params).await? {
            return Err(taken);
        }
    }
    Ok(())
}

/// A [`BEGIN_WRITE`] transaction. The checks cannot lock rows that do not exist yet: a
/// concurrent creation taking the same ID, name or key after them is caught by the unique
/// constraints.
pub(super) async fn create_app(conn: &mut Conn, shared: &Shared, app: App) -> StoreResult<App> {
    let sealer = &shared.sealer;
    let scope = &app.scope;
    name_and_key_free(conn, &app, None).await?;
    if exists(
        conn,
        APP_BY_ID,
        &[&scope.project_id, &scope.instance_id, &app.id],
    )
    .await?
    {
        return Err(sealed::duplicate_app_id(&app.id));
    }
    let sealed = sealed::seal_secret(sealer, &app, BACKEND)?;
    let nonce = sealed.nonce.as_ref().map(|n| &n[..]);
    let inserted = conn
        .query_raw(
            "INSERT INTO apps (project_id, instance_id, id, name, remark, creator, app_key,
                               app_secret, app_secret_nonce, register_time, update_time, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &scope.project_id,
                &scope.instance_id,
                &app.id,
                &app.name,
                &app.remark,
                &app.creator,
                &app.app_key,
                &&sealed.bytes.expose()[..],
                &nonce,
                &app.register_time.unix_nanos(),
                &app.update_time.unix_nanos(),
                &app.status,
            ],
        )
        .await;
    match inserted {
        Ok(_) => {}
        // A concurrent creation won the race after the checks above.
        Err(e) => {
            return Err(match unique_violation(&e) {
                Some("apps_by_id") => sealed::duplicate_app_id(&app.id),
                _ => unique_conflict(e, "insert app"),
            })
        }
    }
    Ok(app)
}

/// A write to `apps` that a concurrent one beat to a name or key after the checks, or
/// another failure of `what`.
fn unique_conflict(e: tokio_postgres::Error, what: &'static str) -> StoreError {
    match unique_violation(&e) {
        Some("apps_by_name") => StoreError::AppNameExists,
        Some("apps_by_key") => StoreError::AppKeyExists,
        _ => db(what)(e),
    }
}

/// One statement.
pub(super) async fn get_app(
    conn: &mut Conn,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<App> {
    read_app(conn, sealer, APP_ROW, scope, app_id).await
}

const APP_ROW: &str = concat!(
    "SELECT ",
    app_columns!(),
    " FROM apps WHERE project_id = $1 AND instance_id = $2 AND id = $3"
);
const APP_ROW_LOCKED: &str = concat!(
    "SELECT ",
    app_columns!(),
    " FROM apps WHERE project_id = $1 AND instance_id = $2 AND id = $3 FOR UPDATE"
);

/// The app by `sql` ([`APP_ROW`] or [`APP_ROW_LOCKED`]), its secret opened.
async fn read_app(
    conn: &mut Conn,
    sealer: &Sealer,
    sql: &'static str,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<App> {
    let row = row_by_id(
        conn,
        "read app",
        sql,
        scope,
        app_id,
        StoreError::AppNotFound,
    )
    .await?;
    RawApp::from_pg_row(&row)?.open(sealer, scope, BACKEND)
}

/// A [`BEGIN_WRITE`] transaction. Locks the app's row, so concurrent updates of one app apply
/// one after the other, each to what the previous one left. The checks against the scope's
/// other apps cannot lock rows that do not exist yet: a concurrent creation or update taking
/// the same name or key after them is caught by the unique constraints, as on creation.
pub(super) async fn update_app(
    conn: &mut Conn,
    shared: &Shared,
    scope: &Scope,
    app_id: &str,
    changes: AppChanges,
) -> StoreResult<App> {
    let sealer = &shared.sealer;
    // A secret is sealed anew (a fresh nonce) only when it changes: the row's bytes stay as
    // they are otherwise, and the change log's trigger sees no new secret.
    let new_secret = changes.app_secret.is_some();
    let app = changes.apply_to(read_app(conn, sealer, APP_ROW_LOCKED, scope, app_id).await?);
    name_and_key_free(conn, &app, Some(app_id)).await?;
    let sealed = sealed::seal_secret(sealer, &app, BACKEND)?;
    let nonce = sealed.nonce.as_ref().map(|n| &n[..]);
    let updated = conn
        .query_raw(
            "UPDATE apps SET name = $4, remark = $5, app_key = $6,
                             app_secret = CASE WHEN $10 THEN $7 ELSE app_secret END,
                             app_secret_nonce = CASE WHEN $10 THEN $8 ELSE app_secret_nonce END,
                             update_time = $9
             WHERE project_id = $1 AND instance_id = $2 AND id = $3",
            &[
                &scope.project_id,
                &scope.instance_id,
                &app.id,
                &app.name,
                &app.remark,
                &app.app_key,
                &&sealed.bytes.expose()[..],
                &nonce,
                &app.update_time.unix_nanos(),
                &new_secret,
            ],
        )
        .await;
    if let Err(e) = updated {
        return Err(unique_conflict(e, "update app"));
    }
    Ok(app)
}

/// `$3`..`$8`: id, name, name_exact, status, app_key, creator; `NULL` matches every app.
/// `strpos` makes "contains" literal and case-sensitive, like [`str::contains`].
macro_rules! app_filter {
    () => {
        "project_id = $1 AND instance_id = $2
         AND ($3::text IS NULL OR id = $3)
         AND ($4::text IS NULL OR CASE WHEN $5::boolean THEN name = $4 ELSE strpos(name, $4) > 0 END)
         AND ($6::integer IS NULL OR status = $6)
         AND ($7::text IS NULL OR app_key = $7)
         AND ($8::text IS NULL OR creator = $8)"
    };
}

/// A [`BEGIN_READ`] transaction: the total and the page agree.
pub(super) async fn list_apps(
    conn: &mut Conn,
    sealer: &Sealer,
    scope: &Scope,
    f: &AppFilter,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<App>> {
    let (limit, offset) = (sql_count(limit), sql_count(offset));
    let params: [&(dyn ToSql + Sync); 10] = [
        &scope.project_id,
        &scope.instance_id,
        &f.id,
        &f.name,
        &f.name_exact,
        &f.status,
        &f.app_key,
        &f.creator,
        &limit,
        &offset,
    ];
    let total = count(
        conn,
        "count apps",
        concat!("SELECT count(*) FROM apps WHERE ", app_filter!()),
        &params[..8],
    )
    .await?;
    let rows = conn
        .query(
            "list apps",
            concat!(
                "SELECT ",
                app_columns!(),
                " FROM apps WHERE ",
                app_filter!(),
                " ORDER BY seq LIMIT $9 OFFSET $10"
            ),
            &params,
        )
        .await?;
    let apps = rows
        .iter()
        .map(|r| RawApp::from_pg_row(r)?.open(sealer, scope, BACKEND));
    sealed::page(total, BACKEND, apps)
}

/// A [`BEGIN_WRITE`] transaction. Locks the app's row first, so a concurrent
/// [`create_app_code`] either committed before (and its code is deleted and returned here) or
/// finds the app gone.
pub(super) async fn delete_app(
    conn: &mut Conn,
    shared: &Shared,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Vec<AppCodeRecord>> {
    let seq = app_seq(conn, APP_BY_ID_LOCKED, scope, app_id).await?;
    let rows = conn
        .query(
            "read the app's AppCodes",
            concat!(code_select!(), "WHERE c.app_seq = $1 ORDER BY c.seq"),
            &[&seq],
        )
        .await?;
    let codes = open_codes(&rows, &shared.sealer, &scope.instance_id)?;
    conn.execute(
        "delete the app's AppCodes",
        "DELETE FROM app_codes WHERE app_seq = $1",
        &[&seq],
    )
    .await?;
    super::acls::delete(conn, seq).await?;
    super::quota_apps::leave(conn, &scope.instance_id, seq, app_id).await?;
    conn.execute("delete app", "DELETE FROM apps WHERE seq = $1", &[&seq])
        .await?;
    Ok(codes)
}

/// A [`BEGIN_WRITE`] transaction. Locks the app's row (`FOR UPDATE`) before counting its codes,
/// so concurrent creations for one app, from any number of nodes, count one after the other and
/// never exceed the quota. The value's uniqueness is the `app_codes_by_value` index's job: a
/// concurrent insert of the same value into another app waits for this one and then fails.
pub(super) async fn create_app_code(
    conn: &mut Conn,
    shared: &Shared,
    scope: &Scope,
    record: AppCodeRecord,
) -> StoreResult<AppCodeRecord> {
    let seq = app_seq(conn, APP_BY_ID_LOCKED, scope, &record.app_id).await?;
    let digest = shared.sealer.digest(record.value.expose().as_bytes());
    let digest = &digest[..];
    if exists(
        conn,
        "SELECT 1 FROM app_codes WHERE instance_id = $1 AND value_digest = $2",
        &[&scope.instance_id, &digest],
    )
    .await?
    {
        return Err(StoreError::AppCodeExists);
    }
    let held = count(
        conn,
        "count AppCodes",
        "SELECT count(*) FROM app_codes WHERE app_seq = $1",
        &[&seq],
    )
    .await?;
    if sql_total(held)? >= MAX_APP_CODES_PER_APP as u64 {
        return Err(StoreError::AppCodeQuotaExceeded);
    }
    if exists(
        conn,
        "SELECT 1 FROM app_codes WHERE instance_id = $1 AND id = $2",
        &[&scope.instance_id, &record.id],
    )
    .await?
    {
        return Err(duplicate_code_id(&record.id));
    }
    let sealed = shared
        .sealer
        .seal(
            &code_binding(&scope.instance_id, &record.app_id, &record.id),
            record.value.expose().as_bytes(),
        )
        .map_err(|e| cipher(format_args!("AppCode {}", record.id), e))?;
    let nonce = sealed.nonce.as_ref().map(|n| &n[..]);
    let inserted = conn
        .query_raw(
            "INSERT INTO app_codes (app_seq, instance_id, id, value, value_nonce, value_digest,
                                    create_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &seq,
                &scope.instance_id,
                &record.id,
                &&sealed.bytes.expose()[..],
                &nonce,
                &digest,
                &record.create_time.unix_nanos(),
            ],
        )
        .await;
    if let Err(e) = inserted {
        return Err(match unique_violation(&e) {
            Some("app_codes_by_value") => StoreError::AppCodeExists,
            Some("app_codes_by_id") => duplicate_code_id(&record.id),
            _ => db("insert AppCode")(e),
        });
    }
    Ok(record)
}

fn duplicate_code_id(id: &str) -> StoreError {
    StoreError::Backend(format!("an AppCode with ID {id} exists in the instance already").into())
}

/// One statement.
pub(super) async fn get_app_code(
    conn: &mut Conn,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
    app_code_id: &str,
) -> StoreResult<AppCodeRecord> {
    // One row if the app exists; its code columns are NULL if the code does not.
    let row = conn
        .query_opt(
            "read AppCode",
            "SELECT c.id IS NOT NULL, c.id, a.id, c.value, c.value_nonce, c.create_time
             FROM apps a LEFT JOIN app_codes c ON c.app_seq = a.seq AND c.id = $4
             WHERE a.project_id = $1 AND a.instance_id = $2 AND a.id = $3",
            &[&scope.project_id, &scope.instance_id, &app_id, &app_code_id],
        )
        .await?
        .ok_or(StoreError::AppNotFound)?;
    if !col::<bool>(&row, 0)? {
        return Err(StoreError::AppCodeNotFound);
    }
    RawCode::from_pg_row(&row, 1)?.open(sealer, &scope.instance_id, BACKEND)
}

/// A [`BEGIN_READ`] transaction: the total and the page agree.
pub(super) async fn list_app_codes(
    conn: &mut Conn,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<AppCodeRecord>> {
    let seq = app_seq(conn, APP_BY_ID, scope, app_id).await?;
    let total = count(
        conn,
        "count AppCodes",
        "SELECT count(*) FROM app_codes WHERE app_seq = $1",
        &[&seq],
    )
    .await?;
    let rows = conn
        .query(
            "list AppCodes",
            concat!(
                code_select!(),
                "WHERE c.app_seq = $1 ORDER BY c.seq LIMIT $2 OFFSET $3"
            ),
            &[&seq, &sql_count(limit), &sql_count(offset)],
        )
        .await?;
    Ok(Page {
        total: sql_total(total)?,
        items: open_codes(&rows, sealer, &scope.instance_id)?,
    })
}

/// A [`BEGIN_WRITE`] transaction.
pub(super) async fn delete_app_code(
    conn: &mut Conn,
    shared: &Shared,
    scope: &Scope,
    app_id: &str,
    app_code_id: &str,
) -> StoreResult<AppCodeRecord> {
    let deleted = conn
        .query_opt(
            "delete AppCode",
            "DELETE FROM app_codes c USING apps a
             WHERE a.seq = c.app_seq AND a.project_id = $1 AND a.instance_id = $2 AND a.id = $3
               AND c.id = $4
             RETURNING c.id, a.id, c.value, c.value_nonce, c.create_time",
            &[&scope.project_id, &scope.instance_id, &app_id, &app_code_id],
        )
        .await?;
    let Some(row) = deleted else {
        app_seq(conn, APP_BY_ID, scope, app_id).await?;
        return Err(StoreError::AppCodeNotFound);
    };
    RawCode::from_pg_row(&row, 0)?.open(&shared.sealer, &scope.instance_id, BACKEND)
}

/// Every AppCode of the instance in creation order. Sorted after the join: the first row
/// comes once every row is read.
const CODES_BY_CREATION: &str = concat!(code_select!(), "WHERE c.instance_id = $1 ORDER BY c.seq");

/// Every AppCode of the instance, app by app. A merge join of two index scans (the codes by
/// app, the apps by key), so rows stream from the first: millions of codes load without the
/// sort, the hash table and the parallel workers of [`CODES_BY_CREATION`]'s plan, and a reader
/// bounded by its progress sees rows at once.
const CODES_BY_APP: &str = concat!(
    code_select!(),
    "WHERE c.instance_id = $1 ORDER BY c.app_seq, c.seq"
);

/// A [`BEGIN_SNAPSHOT`] transaction: every AppCode of the instance, in creation order. Each row
/// is `progress`: the read may take as long as the instance needs, as long as rows keep coming.
pub(super) async fn instance_app_codes(
    conn: &mut Conn,
    progress: &Progress,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Vec<AppCodeRecord>> {
    let mut codes = Vec::new();
    let mut push = |c| codes.push(c);
    each_instance_app_code(
        conn,
        progress,
        sealer,
        instance_id,
        CODES_BY_CREATION,
        &mut push,
    )
    .await?;
    Ok(codes)
}

/// Every AppCode of the instance as `sql` reads them, each decoded and handed to `sink` as its
/// row arrives.
async fn each_instance_app_code(
    conn: &mut Conn,
    progress: &Progress,
    sealer: &Sealer,
    instance_id: &str,
    sql: &'static str,
    sink: &mut (dyn FnMut(AppCodeRecord) + Send),
) -> StoreResult<()> {
    let context = "read the instance's AppCodes";
    conn.for_each_row(context, sql, &[&instance_id], progress, |row| {
        sink(RawCode::from_pg_row(row, 0)?.open(sealer, instance_id, BACKEND)?);
        Ok(())
    })
    .await
}

/// A [`BEGIN_SNAPSHOT`] transaction: every AppCode of the instance, in creation order, and the
/// revision they reflect, from one `REPEATABLE READ` snapshot, so the codes are exactly those of
/// that revision (a write committing meanwhile is in neither). Bounded by progress, like
/// [`instance_app_codes`].
pub(super) async fn instance_snapshot(
    conn: &mut Conn,
    progress: &Progress,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<InstanceSnapshot> {
    let (revision, _) = super::revision::instance_revision(conn, instance_id).await?;
    progress.tick();
    let codes = instance_app_codes(conn, progress, sealer, instance_id).await?;
    Ok(InstanceSnapshot {
        codes,
        revision: Some(revision),
    })
}

/// [`instance_snapshot`] app by app ([`CODES_BY_APP`]), each AppCode handed to `sink` as its row
/// arrives; the revision.
pub(super) async fn instance_snapshot_into(
    conn: &mut Conn,
    progress: &Progress,
    sealer: &Sealer,
    instance_id: &str,
    sink: &mut (dyn FnMut(AppCodeRecord) + Send),
) -> StoreResult<Option<u64>> {
    let (revision, _) = super::revision::instance_revision(conn, instance_id).await?;
    progress.tick();
    each_instance_app_code(conn, progress, sealer, instance_id, CODES_BY_APP, sink).await?;
    Ok(Some(revision))
}

/// One statement: one AppCode of the instance by its ID, wherever its app is; `None` if it does
/// not exist (any more).
pub(super) async fn app_code_by_id(
    conn: &mut Conn,
    sealer: &Sealer,
    instance_id: &str,
    app_code_id: &str,
) -> StoreResult<Option<AppCodeRecord>> {
    let row = conn
        .query_opt(
            "read AppCode",
            concat!(code_select!(), "WHERE c.instance_id = $1 AND c.id = $2"),
            &[&instance_id, &app_code_id],
        )
        .await?;
    row.map(|r| RawCode::from_pg_row(&r, 0)?.open(sealer, instance_id, BACKEND))
        .transpose()
}
