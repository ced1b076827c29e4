//! App quotas in the PostgreSQL store (the apps bound to them and their shared counts are in
//! `quota_apps.rs`). A change of an app's quota is logged and announced as kind `A` by the
//! tables' triggers, like a change of its ACL, so gateways hear of both the same way. Each
//! function is one statement or a transaction body, as in `ops.rs`.
//!
//! Locks, in the order writes take them (so that none waits for another in the opposite
//! order): the quota's row, then the apps' rows in the order of their row numbers, then the
//! instance's revision (taken by the first logged statement, `triggers.rs`).

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::error::{db, unique_violation};
use super::pool::{Conn, Progress};
use super::rows::{
    col, count, quota_select, quota_seq, raw_limit, raw_quota, read, row_by_id, BACKEND,
    QUOTA_BY_ID_LOCKED,
};
use crate::quota::AppQuota;
use crate::store::sealed::{page, sql_count, RawLimit};
use crate::store::{AppQuotaRecord, Page, Scope, StoreError, StoreResult};

/// The IDs of the apps bound to the quota at `seq`, in the order they were bound.
async fn bound_apps(conn: &mut Conn, seq: i64) -> StoreResult<Vec<String>> {
    let rows = conn
        .query(
            "read the quota's apps",
            "SELECT a.id FROM app_quota_bindings b JOIN apps a ON a.seq = b.app_seq
             WHERE b.quota_seq = $1 ORDER BY b.seq",
            &[&seq],
        )
        .await?;
    rows.iter().map(|r| col(r, 0)).collect()
}

/// What a quota's INSERT and UPDATE both write, in the order both bind it (`$1` to `$6`): its
/// name, its limit's four columns and its remark.
fn written<'a>(record: &'a AppQuotaRecord, limit: &'a RawLimit) -> [&'a (dyn ToSql + Sync); 6] {
    [
        &record.name,
        &limit.call_limits,
        &limit.time_unit,
        &limit.time_interval,
        &limit.reset_time,
        &record.remark,
    ]
}

/// A write to `app_quotas` that a concurrent one beat to a name after the check, or another
/// failure of `what`.
fn unique_conflict(e: tokio_postgres::Error, what: &'static str) -> StoreError {
    match unique_violation(&e) {
        Some("app_quotas_by_name") => StoreError::QuotaNameExists,
        _ => db(what)(e),
    }
}

/// IDs are generated, so this is a fault, not a client error.
fn duplicate_quota_id(id: &str) -> StoreError {
    StoreError::Backend(format!("an app quota with ID {id} exists in the scope already").into())
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction. The check cannot lock a row that
/// does not exist yet: a concurrent creation taking the same name after it is caught by the
/// unique constraint.
pub(super) async fn create(
    conn: &mut Conn,
    scope: &Scope,
    record: AppQuotaRecord,
) -> StoreResult<AppQuotaRecord> {
    let taken = conn
        .query_opt(
            "check uniqueness",
            "SELECT 1 FROM app_quotas WHERE instance_id = $1 AND name = $2",
            &[&scope.instance_id, &record.name],
        )
        .await?;
    if taken.is_some() {
        return Err(StoreError::QuotaNameExists);
    }
    let limit = RawLimit::of(&record.quota, BACKEND)?;
    let created = record.create_time.unix_nanos();
    let only_inserted: [&(dyn ToSql + Sync); 4] =
        [&scope.project_id, &scope.instance_id, &record.id, &created];
    let params: Vec<_> = written(&record, &limit)
        .into_iter()
        .chain(only_inserted)
        .collect();
    let inserted = conn
        .query_raw(
            "INSERT INTO app_quotas (name, call_limits, time_unit, time_interval, reset_time,
                                     remark, project_id, instance_id, id, create_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &params,
        )
        .await;
    match inserted {
        Ok(_) => Ok(AppQuotaRecord {
            bound_app_num: 0,
            ..record
        }),
        Err(e) if unique_violation(&e) == Some("app_quotas_by_id") => {
            Err(duplicate_quota_id(&record.id))
        }
        Err(e) => Err(unique_conflict(e, "insert app quota")),
    }
}

/// One statement.
pub(super) async fn get(
    conn: &mut Conn,
    scope: &Scope,
    quota_id: &str,
) -> StoreResult<AppQuotaRecord> {
    const BY_ID: &str = concat!(
        quota_select!(),
        "WHERE q.project_id = $1 AND q.instance_id = $2 AND q.id = $3"
    );
    let missing = StoreError::QuotaNotFound;
    let row = row_by_id(conn, "read app quota", BY_ID, scope, quota_id, missing).await?;
    raw_quota(&row)?.open(BACKEND)
}

/// `strpos` makes "contains" literal and case-sensitive, like [`str::contains`].
macro_rules! quota_filter {
    () => {
        "q.project_id = $1 AND q.instance_id = $2 AND ($3::text IS NULL OR strpos(q.name, $3) > 0)"
    };
}

/// A [`BEGIN_READ`](super::ops::BEGIN_READ) transaction: the total and the page agree.
pub(super) async fn list(
    conn: &mut Conn,
    scope: &Scope,
    name: Option<&str>,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<AppQuotaRecord>> {
    let total = count(
        conn,
        "count app quotas",
        concat!("SELECT count(*) FROM app_quotas q WHERE ", quota_filter!()),
        &[&scope.project_id, &scope.instance_id, &name],
    )
    .await?;
    let rows = conn
        .query(
            "list app quotas",
            concat!(
                quota_select!(),
                "WHERE ",
                quota_filter!(),
                " ORDER BY q.seq LIMIT $4 OFFSET $5"
            ),
            &[
                &scope.project_id,
                &scope.instance_id,
                &name,
                &sql_count(limit),
                &sql_count(offset),
            ],
        )
        .await?;
    page(
        total,
        BACKEND,
        rows.iter().map(|r| raw_quota(r)?.open(BACKEND)),
    )
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction. Locks the quota's row, so the apps
/// it logs are those bound when it commits: a binding to it waits.
pub(super) async fn update(
    conn: &mut Conn,
    scope: &Scope,
    quota_id: &str,
    record: AppQuotaRecord,
) -> StoreResult<AppQuotaRecord> {
    let seq = quota_seq(conn, QUOTA_BY_ID_LOCKED, scope, quota_id).await?;
    let taken = conn
        .query_opt(
            "check uniqueness",
            "SELECT 1 FROM app_quotas WHERE instance_id = $1 AND name = $2 AND seq <> $3",
            &[&scope.instance_id, &record.name, &seq],
        )
        .await?;
    if taken.is_some() {
        return Err(StoreError::QuotaNameExists);
    }
    let limit = RawLimit::of(&record.quota, BACKEND)?;
    let params: Vec<_> = written(&record, &limit)
        .into_iter()
        .chain([&seq as &(dyn ToSql + Sync)])
        .collect();
    conn.query_raw(
        "UPDATE app_quotas SET name = $1, call_limits = $2, time_unit = $3, time_interval = $4,
                               reset_time = $5, remark = $6
         WHERE seq = $7",
        &params,
    )
    .await
    .map_err(|e| unique_conflict(e, "update app quota"))?;
    read(conn, seq).await
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction, locking the quota's row as
/// [`update`] does.
pub(super) async fn delete(conn: &mut Conn, scope: &Scope, quota_id: &str) -> StoreResult<()> {
    let seq = quota_seq(conn, QUOTA_BY_ID_LOCKED, scope, quota_id).await?;
    let bound = bound_apps(conn, seq).await?;
    let ids: Vec<&str> = bound.iter().map(String::as_str).collect();
    super::quota_apps::forget_counts(conn, &scope.instance_id, &ids).await?;
    conn.execute(
        "unbind the quota's apps",
        "DELETE FROM app_quota_bindings WHERE quota_seq = $1",
        &[&seq],
    )
    .await?;
    conn.execute(
        "delete app quota",
        "DELETE FROM app_quotas WHERE seq = $1",
        &[&seq],
    )
    .await?;
    Ok(())
}

/// The quota in columns `at..at + 4` of `row`, `None` if they are NULL (no quota).
pub(super) fn quota_in(row: &Row, at: usize, app_id: &str) -> StoreResult<Option<AppQuota>> {
    if col::<Option<i64>>(row, at)?.is_none() {
        return Ok(None);
    }
    raw_limit(row, at)?
        .open(format_args!("the quota of app {app_id}"), BACKEND)
        .map(Some)
}

/// A [`BEGIN_SNAPSHOT`](super::ops::BEGIN_SNAPSHOT) transaction: the quota of every app of the
/// instance bound to one, decoded as the rows stream in. Each row is `progress`, as in
/// `acls::of_instance`.
pub(super) async fn of_instance(
    conn: &mut Conn,
    progress: &Progress,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppQuota)>> {
    let context = "read the instance's app quotas";
    let sql = "SELECT a.id, q.call_limits, q.time_unit, q.time_interval,
                      COALESCE(q.reset_time, b.bound_time / 1000000000)
               FROM app_quota_bindings b
               JOIN apps a ON a.seq = b.app_seq
               JOIN app_quotas q ON q.seq = b.quota_seq
               WHERE a.instance_id = $1 ORDER BY b.seq";
    let mut quotas = Vec::new();
    conn.for_each_row(context, sql, &[&instance_id], progress, |row| {
        let app_id: String = col(row, 0)?;
        let quota = raw_limit(row, 1)?.open(format_args!("the quota of app {app_id}"), BACKEND)?;
        quotas.push((app_id, quota));
        Ok(())
    })
    .await?;
    Ok(quotas)
}
