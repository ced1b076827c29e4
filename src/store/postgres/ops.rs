//! The store's operations. Each is either one statement, run with
//! [`Pool::call`](super::pool::Pool::call), or the body of one transaction: the pool borrows a
//! connection, begins with the `BEGIN_*` constant the operation's docs name, runs the body and
//! commits ([`Pool::transaction`](super::pool::Pool::transaction)). The body never begins or
//! ends a transaction itself, so the pool alone decides when a connection is reusable.
//!
//! Writes that change which AppCodes a gateway must accept take the instance's next revision,
//! log what they changed and announce it with `pg_notify`, all inside their transaction
//! ([`record_write`]), so the revision, the log and the announcement exist exactly when (and
//! only if) the change is committed. The revision, the change log (`app_code_log`) and its
//! pruning follow the same rules, under the same names, as in the SQLite store's `ops.rs`.

use futures_util::TryStreamExt;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

use super::announcement::{Event, EventKind};
use super::error::{cipher, corrupt, db, unique_violation};
use super::pool::{Conn, Progress};
use super::shared::Shared;
use crate::secret::Secret;
use crate::store::cipher::{code_binding, Sealer};
use crate::store::sealed::{self, sql_count, sql_revision, RawApp, RawCode};
use crate::store::{
    App, AppChanges, AppCodeChanges, AppCodeRecord, AppFilter, DeletedAppCode, InstanceSnapshot,
    Page, Scope, StoreError, StoreResult, MAX_APP_CODES_PER_APP,
};

/// This store's name in error messages.
const BACKEND: &str = "PostgreSQL";

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

fn sql_total(n: i64) -> StoreResult<u64> {
    sealed::sql_total(n, BACKEND)
}

/// Column `i` of `row`, or a corrupt-data error naming it.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> StoreResult<T> {
    row.try_get(i)
        .map_err(|_| corrupt(format_args!("column {i} has an unexpected type or is NULL")))
}

pub(super) const APP_BY_ID: &str =
    "SELECT seq FROM apps WHERE project_id = $1 AND instance_id = $2 AND id = $3";
pub(super) const APP_BY_ID_LOCKED: &str =
    "SELECT seq FROM apps WHERE project_id = $1 AND instance_id = $2 AND id = $3 FOR UPDATE";

/// The app's row number, or [`StoreError::AppNotFound`].
pub(super) async fn app_seq(
    conn: &mut Conn,
    sql: &'static str,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<i64> {
    let row = conn
        .query_opt(
            "look up app",
            sql,
            &[&scope.project_id, &scope.instance_id, &app_id],
        )
        .await?
        .ok_or(StoreError::AppNotFound)?;
    col(&row, 0)
}

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

/// Records one write that changed the instance's AppCodes, in its transaction and in one
/// statement (one round trip): takes the instance's next revision, logs `events` under it,
/// prunes the log entries that fall out of the last `retention` revisions, and announces
/// `events` with that revision to the nodes listening on the instance's channel (delivered when
/// the transaction commits). Returns the revision.
///
/// The revision comes from `INSERT ... ON CONFLICT DO UPDATE` on the instance's row, which
/// keeps that row locked until the transaction ends: a concurrent write to the instance waits
/// here, and takes the next revision only after this one committed (or rolled back, its
/// revision with it). So revisions are committed, and announced, in order and without gaps,
/// which is what lets a listener tell a missed announcement from the revision numbers. Call it
/// last in the transaction: the lock serializes the instance's writers from here to `COMMIT`,
/// and every other lock a write takes (an app's row, a code's row) is taken before this one, so
/// writers never wait for each other in opposite orders.
pub(super) async fn record_write(
    conn: &mut Conn,
    shared: &Shared,
    instance_id: &str,
    events: &[Event<'_>],
) -> StoreResult<u64> {
    debug_assert!(
        !events.is_empty(),
        "a write that changed nothing takes no revision"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.code()).collect();
    let app_ids: Vec<&str> = events.iter().map(|e| e.app_id).collect();
    let app_code_ids: Vec<&str> = events.iter().map(|e| e.app_code_id).collect();
    // Everything of a payload but its version and revision, which the statement prepends
    // (`Event::encode` writes the same whole).
    let tails: Vec<String> = events.iter().map(|e| e.tail(&shared.origin)).collect();
    let rows = conn
        .query(
            "record the change",
            // Data-modifying CTEs all run, on one snapshot: `pruned` cannot see (nor delete)
            // the rows `logged` inserts, which are newer than anything it prunes anyway. The
            // announcements go out in the order of `$7` (one revision row times the payloads).
            "WITH next AS (
                INSERT INTO instance_revisions AS r (instance_id, revision, pruned_through)
                VALUES ($1, 1, 0)
                ON CONFLICT (instance_id) DO UPDATE
                    SET revision = r.revision + 1,
                        pruned_through = GREATEST(r.pruned_through, r.revision + 1 - $2)
                RETURNING r.revision, r.pruned_through
            ), logged AS (
                INSERT INTO app_code_log (instance_id, revision, ord, app_code_id, app_id,
                                          kind)
                SELECT $1, next.revision, e.ord::integer, e.app_code_id, e.app_id, e.kind
                FROM next, unnest($3::text[], $4::text[], $5::text[])
                    WITH ORDINALITY AS e (kind, app_id, app_code_id, ord)
            ), pruned AS (
                DELETE FROM app_code_log l USING next
                WHERE l.instance_id = $1 AND l.revision <= next.pruned_through
            )
            SELECT next.revision, pg_notify($6, '2 ' || next.revision || ' ' || p)
            FROM next, unnest($7::text[]) AS p",
            &[
                &instance_id,
                &shared.retention,
                &kinds,
                &app_ids,
                &app_code_ids,
                &shared.channel(instance_id),
                &tails,
            ],
        )
        .await?;
    let revision = col(
        rows.first()
            .ok_or_else(|| corrupt("no revision recorded"))?,
        0,
    )?;
    sql_revision(revision, BACKEND)
}

/// The instance's revision and the newest revision pruned from its log: `(0, 0)` before its
/// first write (or last written before the store kept revisions).
async fn instance_revision(conn: &mut Conn, instance_id: &str) -> StoreResult<(u64, u64)> {
    let row = conn
        .query_opt(
            "read the instance's revision",
            "SELECT revision, pruned_through FROM instance_revisions WHERE instance_id = $1",
            &[&instance_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok((0, 0));
    };
    Ok((
        sql_revision(col(&row, 0)?, BACKEND)?,
        sql_revision(col(&row, 1)?, BACKEND)?,
    ))
}

macro_rules! app_columns {
    () => {
        "id, name, remark, creator, app_key, app_secret, app_secret_nonce, register_time, \
         update_time, status"
    };
}
pub(super) use app_columns;

impl RawApp {
    pub(super) fn from_pg_row(r: &Row) -> StoreResult<Self> {
        Ok(Self {
            id: col(r, 0)?,
            name: col(r, 1)?,
            remark: col(r, 2)?,
            creator: col(r, 3)?,
            app_key: col(r, 4)?,
            secret: Secret::new(col(r, 5)?),
            nonce: col(r, 6)?,
            register_time: col(r, 7)?,
            update_time: col(r, 8)?,
            status: col(r, 9)?,
        })
    }
}

macro_rules! code_select {
    () => {
        "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time \
         FROM app_codes c JOIN apps a ON a.seq = c.app_seq "
    };
}

impl RawCode {
    /// From the five columns of `code_select!` starting at `at`.
    fn from_pg_row(r: &Row, at: usize) -> StoreResult<Self> {
        Ok(Self {
            id: col(r, at)?,
            app_id: col(r, at + 1)?,
            value: Secret::new(col(r, at + 2)?),
            nonce: col(r, at + 3)?,
            create_time: col(r, at + 4)?,
        })
    }
}

fn open_codes(rows: &[Row], sealer: &Sealer, instance_id: &str) -> StoreResult<Vec<AppCodeRecord>> {
    rows.iter()
        .map(|r| RawCode::from_pg_row(r, 0)?.open(sealer, instance_id, BACKEND))
        .collect()
}

/// A [`BEGIN_WRITE`] transaction. The checks cannot lock rows that do not exist yet: a
/// concurrent creation taking the same ID, name or key after them is caught by the unique
/// constraints.
pub(super) async fn create_app(conn: &mut Conn, sealer: &Sealer, app: App) -> StoreResult<App> {
    let scope = &app.scope;
    let in_scope = [&scope.project_id as &(dyn ToSql + Sync), &scope.instance_id];
    let checks: [(&'static str, &(dyn ToSql + Sync), StoreError); 2] = [
        (
            "SELECT 1 FROM apps WHERE project_id = $1 AND instance_id = $2 AND name = $3",
            &app.name,
            StoreError::AppNameExists,
        ),
        (
            "SELECT 1 FROM apps WHERE project_id = $1 AND instance_id = $2 AND app_key = $3",
            &app.app_key,
            StoreError::AppKeyExists,
        ),
    ];
    for (sql, value, taken) in checks {
        if exists(conn, sql, &[in_scope[0], in_scope[1], value]).await? {
            return Err(taken);
        }
    }
    if exists(conn, APP_BY_ID, &[in_scope[0], in_scope[1], &app.id]).await? {
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
        Ok(_) => Ok(app),
        // A concurrent creation won the race after the checks above.
        Err(e) => Err(match unique_violation(&e) {
            Some("apps_by_id") => sealed::duplicate_app_id(&app.id),
            _ => unique_conflict(e, "insert app"),
        }),
    }
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
    let row = conn
        .query_opt(
            "read app",
            sql,
            &[&scope.project_id, &scope.instance_id, &app_id],
        )
        .await?
        .ok_or(StoreError::AppNotFound)?;
    RawApp::from_pg_row(&row)?.open(sealer, scope, BACKEND)
}

/// A [`BEGIN_WRITE`] transaction. Locks the app's row, so concurrent updates of one app apply
/// one after the other, each to what the previous one left. The checks against the scope's
/// other apps cannot lock rows that do not exist yet: a concurrent creation or update taking
/// the same name or key after them is caught by the unique constraints, as on creation.
pub(super) async fn update_app(
    conn: &mut Conn,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
    changes: AppChanges,
) -> StoreResult<App> {
    let app = changes.apply_to(read_app(conn, sealer, APP_ROW_LOCKED, scope, app_id).await?);
    let checks: [(&'static str, &(dyn ToSql + Sync), StoreError); 2] = [
        (
            "SELECT 1 FROM apps
             WHERE project_id = $1 AND instance_id = $2 AND name = $3 AND id <> $4",
            &app.name,
            StoreError::AppNameExists,
        ),
        (
            "SELECT 1 FROM apps
             WHERE project_id = $1 AND instance_id = $2 AND app_key = $3 AND id <> $4",
            &app.app_key,
            StoreError::AppKeyExists,
        ),
    ];
    for (sql, value, taken) in checks {
        if exists(
            conn,
            sql,
            &[&scope.project_id, &scope.instance_id, value, &app_id],
        )
        .await?
        {
            return Err(taken);
        }
    }
    let sealed = sealed::seal_secret(sealer, &app, BACKEND)?;
    let nonce = sealed.nonce.as_ref().map(|n| &n[..]);
    let updated = conn
        .query_raw(
            "UPDATE apps SET name = $4, remark = $5, app_key = $6, app_secret = $7,
                             app_secret_nonce = $8, update_time = $9
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
            ],
        )
        .await;
    match updated {
        Ok(_) => Ok(app),
        Err(e) => Err(unique_conflict(e, "update app")),
    }
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
    let total: i64 = col(
        &conn
            .query(
                "count apps",
                concat!("SELECT count(*) FROM apps WHERE ", app_filter!()),
                &params[..8],
            )
            .await?[0],
        0,
    )?;
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
    Ok(Page {
        total: sql_total(total)?,
        items: rows
            .iter()
            .map(|r| RawApp::from_pg_row(r)?.open(sealer, scope, BACKEND))
            .collect::<StoreResult<_>>()?,
    })
}

/// One statement.
pub(super) async fn count_app_codes(
    conn: &mut Conn,
    scope: &Scope,
    app_ids: &[String],
) -> StoreResult<Vec<u64>> {
    if app_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = conn
        .query(
            "count AppCodes",
            "SELECT (SELECT count(*) FROM app_codes c JOIN apps a ON a.seq = c.app_seq
                     WHERE a.project_id = $1 AND a.instance_id = $2 AND a.id = q.id)
             FROM unnest($3::text[]) WITH ORDINALITY AS q (id, ord)
             ORDER BY q.ord",
            &[&scope.project_id, &scope.instance_id, &app_ids],
        )
        .await?;
    rows.iter().map(|r| sql_total(col(r, 0)?)).collect()
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
    let had_acl = super::acls::delete(conn, seq).await?;
    let had_quota = super::quota_apps::leave(conn, &scope.instance_id, seq, app_id).await?;
    conn.execute("delete app", "DELETE FROM apps WHERE seq = $1", &[&seq])
        .await?;
    let mut events: Vec<Event<'_>> = codes
        .iter()
        .map(|c| Event {
            kind: EventKind::Deleted,
            app_id: &c.app_id,
            app_code_id: &c.id,
        })
        .collect();
    if had_acl || had_quota {
        events.push(Event {
            kind: EventKind::Policy,
            app_id,
            app_code_id: "",
        });
    }
    // An app without codes, ACL or quota changed nothing a gateway enforces: no revision,
    // nothing to announce.
    if !events.is_empty() {
        record_write(conn, shared, &scope.instance_id, &events).await?;
    }
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
    let held: i64 = col(
        &conn
            .query(
                "count AppCodes",
                "SELECT count(*) FROM app_codes WHERE app_seq = $1",
                &[&seq],
            )
            .await?[0],
        0,
    )?;
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
    let event = Event {
        kind: EventKind::Created,
        app_id: &record.app_id,
        app_code_id: &record.id,
    };
    record_write(conn, shared, &scope.instance_id, &[event]).await?;
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
    let total: i64 = col(
        &conn
            .query(
                "count AppCodes",
                "SELECT count(*) FROM app_codes WHERE app_seq = $1",
                &[&seq],
            )
            .await?[0],
        0,
    )?;
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
    let record =
        RawCode::from_pg_row(&row, 0)?.open(&shared.sealer, &scope.instance_id, BACKEND)?;
    let event = Event {
        kind: EventKind::Deleted,
        app_id: &record.app_id,
        app_code_id: &record.id,
    };
    record_write(conn, shared, &scope.instance_id, &[event]).await?;
    Ok(record)
}

/// A [`BEGIN_SNAPSHOT`] transaction: every AppCode of the instance, in creation order, decoded
/// as the rows stream in (a large instance is never held twice in memory). Each row is
/// `progress`: the read may take as long as the instance needs, as long as rows keep coming.
pub(super) async fn instance_app_codes(
    conn: &mut Conn,
    progress: &Progress,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Vec<AppCodeRecord>> {
    let rows = conn
        .query_stream(
            "read the instance's AppCodes",
            concat!(code_select!(), "WHERE c.instance_id = $1 ORDER BY c.seq"),
            &[&instance_id],
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    let mut codes = Vec::new();
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(db("read the instance's AppCodes"))?
    {
        progress.tick();
        codes.push(RawCode::from_pg_row(&row, 0)?.open(sealer, instance_id, BACKEND)?);
    }
    Ok(codes)
}

/// A [`BEGIN_SNAPSHOT`] transaction: every AppCode of the instance and the revision they
/// reflect, from one `REPEATABLE READ` snapshot, so the codes are exactly those of that
/// revision (a write committing meanwhile is in neither). Bounded by progress, like
/// [`instance_app_codes`].
pub(super) async fn instance_snapshot(
    conn: &mut Conn,
    progress: &Progress,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<InstanceSnapshot> {
    let (revision, _) = instance_revision(conn, instance_id).await?;
    progress.tick();
    let codes = instance_app_codes(conn, progress, sealer, instance_id).await?;
    Ok(InstanceSnapshot {
        codes,
        revision: Some(revision),
    })
}

/// A [`BEGIN_READ`] transaction: what changed in the instance's AppCodes after `revision` (see
/// [`Store::app_code_changes`](crate::store::Store::app_code_changes)), from one
/// `REPEATABLE READ` snapshot, so the revision, the log and the codes agree.
pub(super) async fn app_code_changes(
    conn: &mut Conn,
    sealer: &Sealer,
    instance_id: &str,
    revision: u64,
) -> StoreResult<Option<AppCodeChanges>> {
    let (current, pruned_through) = instance_revision(conn, instance_id).await?;
    // Behind the log: changes are missing. Ahead of the store: another database, or this one
    // restored from a backup; either way the reader's codes cannot be patched into ours.
    if revision < pruned_through || revision > current {
        return Ok(None);
    }
    let mut changes = AppCodeChanges {
        revision: current,
        ..AppCodeChanges::default()
    };
    if revision == current {
        return Ok(Some(changes));
    }
    // `revision <= current`, which came from a bigint.
    let after = sql_count(revision);
    // Each ID once, where it was last created: an ID deleted and created again (IDs are unique
    // per instance only among existing codes) is the code that exists now.
    let rows = conn
        .query(
            "read the created AppCodes",
            "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time
             FROM (SELECT DISTINCT ON (app_code_id) app_code_id, revision, ord
                   FROM app_code_log
                   WHERE instance_id = $1 AND revision > $2 AND kind = 'C'
                   ORDER BY app_code_id, revision DESC, ord DESC) l
             JOIN app_codes c ON c.instance_id = $1 AND c.id = l.app_code_id
             JOIN apps a ON a.seq = c.app_seq
             ORDER BY l.revision, l.ord",
            &[&instance_id, &after],
        )
        .await?;
    changes.created = open_codes(&rows, sealer, instance_id)?;
    let rows = conn
        .query(
            "read the deleted AppCodes",
            "SELECT app_id, app_code_id FROM app_code_log
             WHERE instance_id = $1 AND revision > $2 AND kind = 'D'
             ORDER BY revision, ord",
            &[&instance_id, &after],
        )
        .await?;
    changes.deleted = rows
        .iter()
        .map(|r| {
            Ok(DeletedAppCode {
                app_id: col(r, 0)?,
                id: col(r, 1)?,
            })
        })
        .collect::<StoreResult<_>>()?;
    changes.acls = super::acls::changed_since(conn, instance_id, after).await?;
    changes.quotas = super::quotas::changed_since(conn, instance_id, after).await?;
    Ok(Some(changes))
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
