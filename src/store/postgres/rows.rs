//! What every operation of the store reads rows with: the column reader, the lookups of an
//! app's or a quota's row number by ID, and the columns and readers of the records the tables
//! hold (apps, AppCodes, quotas). The operations' files (`ops.rs`, `acls.rs`, `quotas.rs`,
//! `quota_apps.rs`, `keys.rs`, `revision.rs`) import from here and never from each other for
//! these, so that their imports run one way.

use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

use super::error::corrupt;
use super::pool::Conn;
use crate::secret::Secret;
use crate::store::cipher::Sealer;
use crate::store::sealed::{self, RawApp, RawCode, RawLimit, RawQuota};
use crate::store::{AppCodeRecord, AppQuotaRecord, Scope, StoreError, StoreResult};

/// This store's name in error messages.
pub(super) const BACKEND: &str = "PostgreSQL";

pub(super) fn sql_total(n: i64) -> StoreResult<u64> {
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
    let row = row_by_id(
        conn,
        "look up app",
        sql,
        scope,
        app_id,
        StoreError::AppNotFound,
    )
    .await?;
    col(&row, 0)
}

/// The row `sql` selects by scope and ID (`$1` to `$3`), or `missing` when there is none.
pub(super) async fn row_by_id(
    conn: &mut Conn,
    context: &'static str,
    sql: &'static str,
    scope: &Scope,
    id: &str,
    missing: StoreError,
) -> StoreResult<Row> {
    let params: [&(dyn ToSql + Sync); 3] = [&scope.project_id, &scope.instance_id, &id];
    conn.query_opt(context, sql, &params).await?.ok_or(missing)
}

/// The number `sql` counts: the first column of its one row.
pub(super) async fn count(
    conn: &mut Conn,
    context: &'static str,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<i64> {
    col(&conn.query(context, sql, params).await?[0], 0)
}

macro_rules! app_columns {
    () => {
        "id, name, remark, creator, app_key, app_secret, app_secret_nonce, register_time, \
         update_time, status"
    };
}
pub(super) use app_columns;

/// From the change log, the apps logged as changed (kind `A`: a new key or secret, an ACL, a
/// quota) in instance `$1` after revision `$2`, each once, as `l`, and each app as it is now as
/// `a` (all `NULL` when it is gone). `ORDER BY l.revision, l.ord` lists them in the order of
/// their last change.
macro_rules! changed_apps {
    () => {
        " FROM (SELECT DISTINCT ON (app_id) app_id, revision, ord FROM app_code_log
                WHERE instance_id = $1 AND revision > $2 AND kind = 'A'
                ORDER BY app_id, revision DESC, ord DESC) l
          LEFT JOIN apps a ON a.instance_id = $1 AND a.id = l.app_id "
    };
}
pub(super) use changed_apps;

impl RawApp {
    pub(super) fn from_pg_row(r: &Row) -> StoreResult<Self> {
        Self::from_pg_row_at(r, 0)
    }

    /// The `app_columns!` from column `at` on.
    pub(super) fn from_pg_row_at(r: &Row, at: usize) -> StoreResult<Self> {
        Ok(Self {
            id: col(r, at)?,
            name: col(r, at + 1)?,
            remark: col(r, at + 2)?,
            creator: col(r, at + 3)?,
            app_key: col(r, at + 4)?,
            secret: Secret::new(col(r, at + 5)?),
            nonce: col(r, at + 6)?,
            register_time: col(r, at + 7)?,
            update_time: col(r, at + 8)?,
            status: col(r, at + 9)?,
        })
    }
}

macro_rules! code_select {
    () => {
        "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time \
         FROM app_codes c JOIN apps a ON a.seq = c.app_seq "
    };
}
pub(super) use code_select;

impl RawCode {
    /// From the five columns of `code_select!` starting at `at`.
    pub(super) fn from_pg_row(r: &Row, at: usize) -> StoreResult<Self> {
        Ok(Self {
            id: col(r, at)?,
            app_id: col(r, at + 1)?,
            value: Secret::new(col(r, at + 2)?),
            nonce: col(r, at + 3)?,
            create_time: col(r, at + 4)?,
        })
    }
}

pub(super) fn open_codes(
    rows: &[Row],
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Vec<AppCodeRecord>> {
    rows.iter()
        .map(|r| RawCode::from_pg_row(r, 0)?.open(sealer, instance_id, BACKEND))
        .collect()
}

/// The columns [`raw_quota`] reads, from `app_quotas q`.
macro_rules! quota_select {
    () => {
        "SELECT q.id, q.name, q.call_limits, q.time_unit, q.time_interval, q.reset_time, \
         q.remark, q.create_time, \
         (SELECT count(*) FROM app_quota_bindings b WHERE b.quota_seq = q.seq) \
         FROM app_quotas q "
    };
}
pub(super) use quota_select;

pub(super) const QUOTA_BY_ID: &str =
    "SELECT seq FROM app_quotas WHERE project_id = $1 AND instance_id = $2 AND id = $3";
pub(super) const QUOTA_BY_ID_LOCKED: &str =
    "SELECT seq FROM app_quotas WHERE project_id = $1 AND instance_id = $2 AND id = $3 FOR UPDATE";

pub(super) fn raw_limit(r: &Row, at: usize) -> StoreResult<RawLimit> {
    Ok(RawLimit {
        call_limits: col(r, at)?,
        time_unit: col(r, at + 1)?,
        time_interval: col(r, at + 2)?,
        reset_time: col(r, at + 3)?,
    })
}

pub(super) fn raw_quota(r: &Row) -> StoreResult<RawQuota> {
    Ok(RawQuota {
        id: col(r, 0)?,
        name: col(r, 1)?,
        limit: raw_limit(r, 2)?,
        remark: col(r, 6)?,
        create_time: col(r, 7)?,
        bound_app_num: col(r, 8)?,
    })
}

/// The quota's row number by `sql` ([`QUOTA_BY_ID`] or [`QUOTA_BY_ID_LOCKED`]), or
/// [`StoreError::QuotaNotFound`].
pub(super) async fn quota_seq(
    conn: &mut Conn,
    sql: &'static str,
    scope: &Scope,
    quota_id: &str,
) -> StoreResult<i64> {
    let missing = StoreError::QuotaNotFound;
    let row = row_by_id(conn, "look up app quota", sql, scope, quota_id, missing).await?;
    col(&row, 0)
}

/// The quota at row number `seq`, with the number of apps bound to it.
pub(super) async fn read(conn: &mut Conn, seq: i64) -> StoreResult<AppQuotaRecord> {
    let row = conn
        .query_opt(
            "read app quota",
            concat!(quota_select!(), "WHERE q.seq = $1"),
            &[&seq],
        )
        .await?
        .ok_or(StoreError::QuotaNotFound)?;
    raw_quota(&row)?.open(BACKEND)
}
