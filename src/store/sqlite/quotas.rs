//! App quotas in the SQLite store (the apps bound to them and their shared counts are in
//! `quota_apps.rs`). A change of an app's quota is logged as kind `A`, like a change of its
//! ACL, so gateways catch up on both from one revision.

use rusqlite::types::ToSql;
use rusqlite::{params, Connection, Transaction};

use super::error::db;
use super::rows::{
    count, instance_rows, query_all, quota_seq, raw_limit, raw_quota, read, BACKEND, QUOTA_SELECT,
};
use super::transactions::{read_tx, write_tx, Write};
use crate::quota::AppQuota;
use crate::store::sealed::{self, sql_count, RawLimit};
use crate::store::{AppQuotaRecord, Page, Scope, StoreError, StoreResult};

/// Whether a quota of the instance other than the one at row `except` is named `name`.
fn name_taken(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    except: Option<i64>,
) -> StoreResult<bool> {
    tx.prepare_cached(
        "SELECT 1 FROM app_quotas WHERE instance_id = ?1 AND name = ?2 AND seq IS NOT ?3",
    )
    .and_then(|mut s| s.exists(params![scope.instance_id, name, except]))
    .map_err(db("check uniqueness"))
}

/// What a quota's INSERT and UPDATE both write, under the parameter names both take: its name,
/// its limit's four columns and its remark.
fn written<'a>(
    record: &'a AppQuotaRecord,
    limit: &'a RawLimit,
) -> [(&'static str, &'a dyn ToSql); 6] {
    [
        (":name", &record.name),
        (":call_limits", &limit.call_limits),
        (":time_unit", &limit.time_unit),
        (":time_interval", &limit.time_interval),
        (":reset_time", &limit.reset_time),
        (":remark", &record.remark),
    ]
}

/// The IDs of the apps bound to the quota at `seq`, in the order they were bound.
fn bound_apps(tx: &Transaction<'_>, seq: i64) -> StoreResult<Vec<String>> {
    query_all(
        tx,
        "read the quota's apps",
        "SELECT a.id FROM app_quota_bindings b JOIN apps a ON a.seq = b.app_seq
         WHERE b.quota_seq = ?1 ORDER BY b.seq",
        [seq],
        |r| r.get(0),
    )
}

pub(super) fn create(
    conn: &mut Connection,
    scope: &Scope,
    record: AppQuotaRecord,
) -> StoreResult<AppQuotaRecord> {
    let tx = write_tx(conn)?;
    if name_taken(&tx, scope, &record.name, None)? {
        return Err(StoreError::QuotaNameExists);
    }
    let id_taken = match quota_seq(&tx, scope, &record.id) {
        Ok(_) => true,
        Err(StoreError::QuotaNotFound) => false,
        Err(e) => return Err(e),
    };
    // IDs are generated, so this is a fault, not a client error.
    if id_taken {
        return Err(StoreError::Backend(
            format!(
                "an app quota with ID {} exists in the scope already",
                record.id
            )
            .into(),
        ));
    }
    let limit = RawLimit::of(&record.quota, BACKEND)?;
    let created = record.create_time.unix_nanos();
    let only_inserted: [(&str, &dyn ToSql); 4] = [
        (":project_id", &scope.project_id),
        (":instance_id", &scope.instance_id),
        (":id", &record.id),
        (":create_time", &created),
    ];
    let params = [&written(&record, &limit)[..], &only_inserted].concat();
    tx.prepare_cached(
        "INSERT INTO app_quotas (project_id, instance_id, id, name, call_limits, time_unit,
                                 time_interval, reset_time, remark, create_time)
         VALUES (:project_id, :instance_id, :id, :name, :call_limits, :time_unit,
                 :time_interval, :reset_time, :remark, :create_time)",
    )
    .and_then(|mut s| s.execute(&params[..]))
    .map_err(db("insert app quota"))?;
    tx.commit().map_err(db("commit app quota"))?;
    Ok(AppQuotaRecord {
        bound_app_num: 0,
        ..record
    })
}

pub(super) fn get(
    conn: &mut Connection,
    scope: &Scope,
    quota_id: &str,
) -> StoreResult<AppQuotaRecord> {
    let tx = read_tx(conn)?;
    let seq = quota_seq(&tx, scope, quota_id)?;
    read(&tx, seq)
}

pub(super) fn list(
    conn: &mut Connection,
    scope: &Scope,
    name: Option<&str>,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<AppQuotaRecord>> {
    // `instr` makes "contains" literal and case-sensitive, like `str::contains`.
    const FILTER: &str = "q.project_id = ?1 AND q.instance_id = ?2 \
                          AND (?3 IS NULL OR instr(q.name, ?3) > 0)";
    let tx = read_tx(conn)?;
    let count_sql = format!("SELECT COUNT(*) FROM app_quotas q WHERE {FILTER}");
    let params = params![scope.project_id, scope.instance_id, name];
    let total = count(&tx, "count app quotas", &count_sql, params)?;
    let raws = query_all(
        &tx,
        "list app quotas",
        &format!("{QUOTA_SELECT} WHERE {FILTER} ORDER BY q.seq LIMIT ?4 OFFSET ?5"),
        params![
            scope.project_id,
            scope.instance_id,
            name,
            sql_count(limit),
            sql_count(offset)
        ],
        raw_quota,
    )?;
    sealed::page(
        total,
        BACKEND,
        raws.into_iter().map(|raw| raw.open(BACKEND)),
    )
}

pub(super) fn update(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
    record: AppQuotaRecord,
) -> StoreResult<AppQuotaRecord> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let seq = quota_seq(&tx, scope, quota_id)?;
    if name_taken(&tx, scope, &record.name, Some(seq))? {
        return Err(StoreError::QuotaNameExists);
    }
    let limit = RawLimit::of(&record.quota, BACKEND)?;
    let mut params = written(&record, &limit).to_vec();
    params.push((":seq", &seq));
    tx.prepare_cached(
        "UPDATE app_quotas SET name = :name, call_limits = :call_limits, time_unit = :time_unit,
                               time_interval = :time_interval, reset_time = :reset_time,
                               remark = :remark
         WHERE seq = :seq",
    )
    .and_then(|mut s| s.execute(&params[..]))
    .map_err(db("update app quota"))?;
    let updated = read(&tx, seq)?;
    tx.commit("commit app quota")?;
    Ok(updated)
}

pub(super) fn delete(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
) -> StoreResult<()> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let seq = quota_seq(&tx, scope, quota_id)?;
    let bound = bound_apps(&tx, seq)?;
    for app in &bound {
        super::quota_apps::forget_count(&tx, &scope.instance_id, app)?;
    }
    tx.execute("DELETE FROM app_quota_bindings WHERE quota_seq = ?1", [seq])
        .and_then(|_| tx.execute("DELETE FROM app_quotas WHERE seq = ?1", [seq]))
        .map_err(db("delete app quota"))?;
    tx.commit("commit app quota deletion")
}

pub(super) fn of_instance(
    conn: &mut Connection,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppQuota)>> {
    instance_rows(
        conn,
        "read the instance's app quotas",
        "SELECT a.id, q.call_limits, q.time_unit, q.time_interval,
                COALESCE(q.reset_time, b.bound_time / 1000000000)
         FROM app_quota_bindings b
         JOIN apps a ON a.seq = b.app_seq
         JOIN app_quotas q ON q.seq = b.quota_seq
         WHERE a.instance_id = ?1 ORDER BY b.seq",
        instance_id,
        |r| Ok((r.get::<_, String>(0)?, raw_limit(r, 1)?)),
        |(app, limit)| {
            let quota = quota_of(&app, limit)?;
            Ok((app, quota))
        },
    )
}

/// The quota of the app `app_id`, its columns checked.
pub(super) fn quota_of(app_id: &str, limit: RawLimit) -> StoreResult<AppQuota> {
    limit.open(format_args!("the quota of app {app_id}"), BACKEND)
}
