//! What every operation of the store reads rows with: the lookups of an app's or a quota's
//! row number by ID, and the columns and readers of the records the tables hold (apps,
//! AppCodes, quotas). The operations' files (`ops.rs`, `acls.rs`, `quotas.rs`, `quota_apps.rs`,
//! `keys.rs`, `revision.rs`) import from here and never from each other for these, so that
//! their imports run one way.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::error::db;
use super::transactions::read_tx;
use crate::secret::Secret;
use crate::store::cipher::Sealer;
use crate::store::sealed::{self, RawApp, RawCode, RawLimit, RawQuota};
use crate::store::{App, AppCodeRecord, AppQuotaRecord, Scope, StoreError, StoreResult};

/// This store's name in error messages.
pub(super) const BACKEND: &str = "SQLite";

pub(super) fn sql_total(n: i64) -> StoreResult<u64> {
    sealed::sql_total(n, BACKEND)
}

/// The number `sql` counts: the first column of its one row.
pub(super) fn count(
    tx: &Transaction<'_>,
    context: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<i64> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get(0)))
        .map_err(db(context))
}

/// The row number of the row `sql` selects by scope and ID (`?1` to `?3`), or `missing` when
/// there is none.
fn seq_by_id(
    tx: &Transaction<'_>,
    context: &'static str,
    sql: &str,
    scope: &Scope,
    id: &str,
    missing: StoreError,
) -> StoreResult<i64> {
    let params = params![scope.project_id, scope.instance_id, id];
    query_opt(tx, context, sql, params, |r| r.get(0))?.ok_or(missing)
}

/// The app's row number, or [`StoreError::AppNotFound`].
pub(super) fn app_seq(tx: &Transaction<'_>, scope: &Scope, app_id: &str) -> StoreResult<i64> {
    let sql = "SELECT seq FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3";
    seq_by_id(
        tx,
        "look up app",
        sql,
        scope,
        app_id,
        StoreError::AppNotFound,
    )
}

/// From the change log, the apps logged as changed (kind `A`: a new key or secret, an ACL, a
/// quota) in instance `?1` after revision `?2`, each once, as `l`, and each app as it is now as
/// `a` (all `NULL` when it is gone). `ORDER BY l.revision, l.ord` lists them in the order of
/// their last change: SQLite takes the bare `ord` from the row whose revision `max` chose, and a
/// write logs an app once at most.
macro_rules! changed_apps {
    () => {
        " FROM (SELECT app_id, max(revision) AS revision, ord FROM app_code_log
                WHERE instance_id = ?1 AND revision > ?2 AND kind = 'A'
                GROUP BY app_id) l
          LEFT JOIN apps a ON a.instance_id = ?1 AND a.id = l.app_id "
    };
}
pub(super) use changed_apps;

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

pub(super) const CODE_SELECT: &str = "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time \
                           FROM app_codes c JOIN apps a ON a.seq = c.app_seq";

impl RawCode {
    pub(super) fn from_sqlite_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            app_id: r.get(1)?,
            value: Secret::new(r.get(2)?),
            nonce: r.get(3)?,
            create_time: r.get(4)?,
        })
    }
}

/// Every row `sql` selects, each read by `row`; an error names `context`.
pub(super) fn query_all<T>(
    conn: &Connection,
    context: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, row)?.collect())
        .map_err(db(context))
}

/// Every row `sql` selects of the instance `?1`, in one read transaction, each read by `row`
/// and then decoded by `open` (which, unlike a row reader, may find the data corrupt): all of
/// an instance's ACLs, quotas or keys, as a gateway loads them.
pub(super) fn instance_rows<R, T>(
    conn: &mut Connection,
    context: &'static str,
    sql: &str,
    instance_id: &str,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<R>,
    open: impl FnMut(R) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let tx = read_tx(conn)?;
    let rows = query_all(&tx, context, sql, [instance_id], row)?;
    rows.into_iter().map(open).collect()
}

/// The first row `sql` selects, read by `row`, or `None` when it selects none; an error names
/// `context`.
pub(super) fn query_opt<T>(
    conn: &Connection,
    context: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, row).optional())
        .map_err(db(context))
}

/// The AppCodes `sql` (a [`CODE_SELECT`]) selects, opened.
pub(super) fn query_codes(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    instance_id: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<AppCodeRecord>> {
    let raws = query_all(tx, "read AppCodes", sql, params, RawCode::from_sqlite_row)?;
    raws.into_iter()
        .map(|raw| raw.open(sealer, instance_id, BACKEND))
        .collect()
}

/// The app by ID, opened, or [`StoreError::AppNotFound`].
pub(super) fn read_app(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<App> {
    let sql = format!(
        "SELECT {APP_COLUMNS} FROM apps WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3"
    );
    let params = params![scope.project_id, scope.instance_id, app_id];
    query_opt(tx, "read app", &sql, params, RawApp::from_sqlite_row)?
        .ok_or(StoreError::AppNotFound)?
        .open(sealer, scope, BACKEND)
}

/// The columns [`raw_quota`] reads, from `app_quotas q`.
pub(super) const QUOTA_SELECT: &str =
    "SELECT q.id, q.name, q.call_limits, q.time_unit, q.time_interval, \
     q.reset_time, q.remark, q.create_time, \
     (SELECT COUNT(*) FROM app_quota_bindings b WHERE b.quota_seq = q.seq) \
     FROM app_quotas q";

pub(super) fn raw_limit(r: &Row<'_>, at: usize) -> rusqlite::Result<RawLimit> {
    Ok(RawLimit {
        call_limits: r.get(at)?,
        time_unit: r.get(at + 1)?,
        time_interval: r.get(at + 2)?,
        reset_time: r.get(at + 3)?,
    })
}

pub(super) fn raw_quota(r: &Row<'_>) -> rusqlite::Result<RawQuota> {
    Ok(RawQuota {
        id: r.get(0)?,
        name: r.get(1)?,
        limit: raw_limit(r, 2)?,
        remark: r.get(6)?,
        create_time: r.get(7)?,
        bound_app_num: r.get(8)?,
    })
}

/// The quota's row number, or [`StoreError::QuotaNotFound`].
pub(super) fn quota_seq(tx: &Transaction<'_>, scope: &Scope, quota_id: &str) -> StoreResult<i64> {
    let sql = "SELECT seq FROM app_quotas WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3";
    let missing = StoreError::QuotaNotFound;
    seq_by_id(tx, "look up app quota", sql, scope, quota_id, missing)
}

/// The quota at row number `seq`, with the number of apps bound to it.
pub(super) fn read(tx: &Transaction<'_>, seq: i64) -> StoreResult<AppQuotaRecord> {
    let sql = format!("{QUOTA_SELECT} WHERE q.seq = ?1");
    query_opt(tx, "read app quota", &sql, [seq], raw_quota)?
        .ok_or(StoreError::QuotaNotFound)?
        .open(BACKEND)
}
