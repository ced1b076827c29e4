//! App quotas in the SQLite store: the quotas, one binding row per app bound to one, and the
//! counts nodes share. A change of an app's quota is logged as kind `A`, like a change of its
//! ACL, so gateways catch up on both from one revision.

use rusqlite::types::ToSql;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, Transaction};

use super::error::{corrupt, db};
use super::ops::{app_seq, read_tx, record_write, write_tx, Kind, APP_COLUMNS};
use crate::quota::AppQuota;
use crate::store::cipher::Sealer;
use crate::store::sealed::{self, sql_count, RawApp, RawLimit, RawQuota};
use crate::store::{
    AppQuotaRecord, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, StoreError,
    StoreResult, Timestamp,
};

/// This store's name in error messages.
const BACKEND: &str = "SQLite";

/// The columns [`raw_quota`] reads, from `app_quotas q`.
const QUOTA_SELECT: &str = "SELECT q.id, q.name, q.call_limits, q.time_unit, q.time_interval, \
     q.reset_time, q.remark, q.create_time, \
     (SELECT COUNT(*) FROM app_quota_bindings b WHERE b.quota_seq = q.seq) \
     FROM app_quotas q";

fn raw_limit(r: &Row<'_>, at: usize) -> rusqlite::Result<RawLimit> {
    Ok(RawLimit {
        call_limits: r.get(at)?,
        time_unit: r.get(at + 1)?,
        time_interval: r.get(at + 2)?,
        reset_time: r.get(at + 3)?,
    })
}

fn raw_quota(r: &Row<'_>) -> rusqlite::Result<RawQuota> {
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
fn quota_seq(tx: &Transaction<'_>, scope: &Scope, quota_id: &str) -> StoreResult<i64> {
    tx.prepare_cached(
        "SELECT seq FROM app_quotas WHERE project_id = ?1 AND instance_id = ?2 AND id = ?3",
    )
    .and_then(|mut s| {
        s.query_row(
            params![scope.project_id, scope.instance_id, quota_id],
            |r| r.get(0),
        )
        .optional()
    })
    .map_err(db("look up app quota"))?
    .ok_or(StoreError::QuotaNotFound)
}

fn read(tx: &Transaction<'_>, seq: i64) -> StoreResult<AppQuotaRecord> {
    tx.prepare_cached(&format!("{QUOTA_SELECT} WHERE q.seq = ?1"))
        .and_then(|mut s| s.query_row([seq], raw_quota).optional())
        .map_err(db("read app quota"))?
        .ok_or(StoreError::QuotaNotFound)?
        .open(BACKEND)
}

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

/// The IDs of the apps bound to the quota at `seq`, in the order they were bound.
fn bound_apps(tx: &Transaction<'_>, seq: i64) -> StoreResult<Vec<String>> {
    tx.prepare_cached(
        "SELECT a.id FROM app_quota_bindings b JOIN apps a ON a.seq = b.app_seq
         WHERE b.quota_seq = ?1 ORDER BY b.seq",
    )
    .and_then(|mut s| {
        s.query_map([seq], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()
    })
    .map_err(db("read the quota's apps"))
}

/// Logs a change of each app's quota under the instance's next revision.
fn log_changes(
    tx: &Transaction<'_>,
    retention: u64,
    scope: &Scope,
    app_ids: &[String],
) -> StoreResult<()> {
    let entries: Vec<_> = app_ids
        .iter()
        .map(|app| (Kind::Policy, app.as_str(), ""))
        .collect();
    record_write(tx, retention, &scope.instance_id, &entries)
}

/// Forgets the shared count of the app `app_id`, inside a write.
fn forget_count(tx: &Transaction<'_>, instance_id: &str, app_id: &str) -> StoreResult<()> {
    tx.prepare_cached("DELETE FROM app_quota_counts WHERE instance_id = ?1 AND app_id = ?2")
        .and_then(|mut s| s.execute(params![instance_id, app_id]))
        .map_err(db("delete a quota count"))?;
    Ok(())
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
    tx.prepare_cached(
        "INSERT INTO app_quotas (project_id, instance_id, id, name, call_limits, time_unit,
                                 time_interval, reset_time, remark, create_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            scope.project_id,
            scope.instance_id,
            record.id,
            record.name,
            limit.call_limits,
            limit.time_unit,
            limit.time_interval,
            limit.reset_time,
            record.remark,
            record.create_time.unix_nanos(),
        ])
    })
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
    let total: i64 = tx
        .prepare_cached(&format!("SELECT COUNT(*) FROM app_quotas q WHERE {FILTER}"))
        .and_then(|mut s| {
            s.query_row(params![scope.project_id, scope.instance_id, name], |r| {
                r.get(0)
            })
        })
        .map_err(db("count app quotas"))?;
    let raws = tx
        .prepare_cached(&format!(
            "{QUOTA_SELECT} WHERE {FILTER} ORDER BY q.seq LIMIT ?4 OFFSET ?5"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![
                    scope.project_id,
                    scope.instance_id,
                    name,
                    sql_count(limit),
                    sql_count(offset)
                ],
                raw_quota,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("list app quotas"))?;
    Ok(Page {
        total: sealed::sql_total(total, BACKEND)?,
        items: raws
            .into_iter()
            .map(|raw| raw.open(BACKEND))
            .collect::<StoreResult<_>>()?,
    })
}

pub(super) fn update(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
    record: AppQuotaRecord,
) -> StoreResult<AppQuotaRecord> {
    let tx = write_tx(conn)?;
    let seq = quota_seq(&tx, scope, quota_id)?;
    if name_taken(&tx, scope, &record.name, Some(seq))? {
        return Err(StoreError::QuotaNameExists);
    }
    let limit = RawLimit::of(&record.quota, BACKEND)?;
    tx.prepare_cached(
        "UPDATE app_quotas SET name = ?2, call_limits = ?3, time_unit = ?4, time_interval = ?5,
                               reset_time = ?6, remark = ?7
         WHERE seq = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            seq,
            record.name,
            limit.call_limits,
            limit.time_unit,
            limit.time_interval,
            limit.reset_time,
            record.remark,
        ])
    })
    .map_err(db("update app quota"))?;
    let bound = bound_apps(&tx, seq)?;
    // A quota no app is bound to changes nothing a gateway enforces: no revision.
    if !bound.is_empty() {
        log_changes(&tx, retention, scope, &bound)?;
    }
    let updated = read(&tx, seq)?;
    tx.commit().map_err(db("commit app quota"))?;
    Ok(updated)
}

pub(super) fn delete(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
) -> StoreResult<()> {
    let tx = write_tx(conn)?;
    let seq = quota_seq(&tx, scope, quota_id)?;
    let bound = bound_apps(&tx, seq)?;
    for app in &bound {
        forget_count(&tx, &scope.instance_id, app)?;
    }
    tx.execute("DELETE FROM app_quota_bindings WHERE quota_seq = ?1", [seq])
        .and_then(|_| tx.execute("DELETE FROM app_quotas WHERE seq = ?1", [seq]))
        .map_err(db("delete app quota"))?;
    if !bound.is_empty() {
        log_changes(&tx, retention, scope, &bound)?;
    }
    tx.commit().map_err(db("commit app quota deletion"))
}

pub(super) fn bind(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
    app_ids: &[String],
    bound_time: Timestamp,
) -> StoreResult<Vec<QuotaBinding>> {
    let tx = write_tx(conn)?;
    let quota = quota_seq(&tx, scope, quota_id)?;
    let mut bindings = Vec::with_capacity(app_ids.len());
    let mut new: Vec<String> = Vec::new();
    for app_id in app_ids {
        let app = app_seq(&tx, scope, app_id)?;
        let held: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT quota_seq, bound_time FROM app_quota_bindings WHERE app_seq = ?1",
            )
            .and_then(|mut s| {
                s.query_row([app], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(db("read the app's quota binding"))?;
        match held {
            // Bound by this call already (the app was named twice): one binding, listed once.
            Some(_) if new.contains(app_id) => continue,
            Some((held, at)) if held == quota => bindings.push(QuotaBinding {
                app_quota_id: quota_id.to_owned(),
                app_id: app_id.clone(),
                bound_time: Timestamp::from_unix_nanos(at),
            }),
            // Dropping the transaction rolls back the bindings made so far: all or none.
            Some(_) => return Err(StoreError::AppHasQuota),
            None => {
                tx.prepare_cached(
                    "INSERT INTO app_quota_bindings (app_seq, quota_seq, bound_time)
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![app, quota, bound_time.unix_nanos()]))
                .map_err(db("bind app quota"))?;
                new.push(app_id.clone());
                bindings.push(QuotaBinding {
                    app_quota_id: quota_id.to_owned(),
                    app_id: app_id.clone(),
                    bound_time,
                });
            }
        }
    }
    if !new.is_empty() {
        log_changes(&tx, retention, scope, &new)?;
    }
    tx.commit().map_err(db("commit app quota binding"))?;
    Ok(bindings)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn apps(
    conn: &mut Connection,
    sealer: &Sealer,
    scope: &Scope,
    quota_id: &str,
    bound: bool,
    app_name: Option<&str>,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<QuotaApp>> {
    // `?3`: the quota's row; `?4`: its apps, or those bound to none.
    const FILTER: &str = "a.project_id = ?1 AND a.instance_id = ?2
        AND CASE WHEN ?4 THEN b.quota_seq = ?3 ELSE b.app_seq IS NULL END
        AND (?5 IS NULL OR instr(a.name, ?5) > 0)";
    const FROM: &str = "apps a LEFT JOIN app_quota_bindings b ON b.app_seq = a.seq";
    let tx = read_tx(conn)?;
    let quota = quota_seq(&tx, scope, quota_id)?;
    let filter: [&dyn ToSql; 5] = [
        &scope.project_id,
        &scope.instance_id,
        &quota,
        &bound,
        &app_name,
    ];
    let total: i64 = tx
        .prepare_cached(&format!("SELECT COUNT(*) FROM {FROM} WHERE {FILTER}"))
        .and_then(|mut s| s.query_row(&filter[..], |r| r.get(0)))
        .map_err(db("count the quota's apps"))?;
    let (limit, offset) = (sql_count(limit), sql_count(offset));
    let page = filter
        .iter()
        .copied()
        .chain([&limit as &dyn ToSql, &offset]);
    let rows = tx
        .prepare_cached(&format!(
            "SELECT {APP_COLUMNS}, b.bound_time FROM {FROM} WHERE {FILTER}
             ORDER BY a.seq LIMIT ?6 OFFSET ?7"
        ))
        .and_then(|mut s| {
            s.query_map(params_from_iter(page), |r| {
                Ok((RawApp::from_sqlite_row(r)?, r.get::<_, Option<i64>>(10)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("list the quota's apps"))?;
    Ok(Page {
        total: sealed::sql_total(total, BACKEND)?,
        items: rows
            .into_iter()
            .map(|(raw, bound_time)| {
                Ok(QuotaApp {
                    app: raw.open(sealer, scope, BACKEND)?,
                    bound_time: bound_time.map(Timestamp::from_unix_nanos),
                })
            })
            .collect::<StoreResult<_>>()?,
    })
}

pub(super) fn unbind(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
    app_id: &str,
) -> StoreResult<()> {
    let tx = write_tx(conn)?;
    let quota = quota_seq(&tx, scope, quota_id)?;
    let n = tx
        .prepare_cached(
            "DELETE FROM app_quota_bindings WHERE quota_seq = ?1 AND app_seq =
                 (SELECT seq FROM apps WHERE project_id = ?2 AND instance_id = ?3 AND id = ?4)",
        )
        .and_then(|mut s| s.execute(params![quota, scope.project_id, scope.instance_id, app_id]))
        .map_err(db("unbind app quota"))?;
    if n == 0 {
        return Err(StoreError::AppNotFound);
    }
    forget_count(&tx, &scope.instance_id, app_id)?;
    log_changes(&tx, retention, scope, &[app_id.to_owned()])?;
    tx.commit().map_err(db("commit app quota unbinding"))
}

/// Unbinds the app at `seq` from its quota, if it has one, and forgets its shared count, inside
/// the write deleting it; whether it had a quota.
pub(super) fn leave(
    tx: &Transaction<'_>,
    instance_id: &str,
    seq: i64,
    app_id: &str,
) -> StoreResult<bool> {
    let n = tx
        .prepare_cached("DELETE FROM app_quota_bindings WHERE app_seq = ?1")
        .and_then(|mut s| s.execute([seq]))
        .map_err(db("unbind app quota"))?;
    forget_count(tx, instance_id, app_id)?;
    Ok(n > 0)
}

pub(super) fn of_app(
    conn: &mut Connection,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Option<AppQuotaRecord>> {
    let tx = read_tx(conn)?;
    let app = app_seq(&tx, scope, app_id)?;
    let quota: Option<i64> = tx
        .prepare_cached("SELECT quota_seq FROM app_quota_bindings WHERE app_seq = ?1")
        .and_then(|mut s| s.query_row([app], |r| r.get(0)).optional())
        .map_err(db("read the app's quota binding"))?;
    quota.map(|seq| read(&tx, seq)).transpose()
}

pub(super) fn of_instance(
    conn: &mut Connection,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppQuota)>> {
    let tx = read_tx(conn)?;
    let rows = tx
        .prepare_cached(
            "SELECT a.id, q.call_limits, q.time_unit, q.time_interval, q.reset_time
             FROM app_quota_bindings b
             JOIN apps a ON a.seq = b.app_seq
             JOIN app_quotas q ON q.seq = b.quota_seq
             WHERE a.instance_id = ?1 ORDER BY b.seq",
        )
        .and_then(|mut s| {
            s.query_map([instance_id], |r| {
                Ok((r.get::<_, String>(0)?, raw_limit(r, 1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("read the instance's app quotas"))?;
    rows.into_iter()
        .map(|(app, limit)| {
            let quota = limit.open(format_args!("the quota of app {app}"), BACKEND)?;
            Ok((app, quota))
        })
        .collect()
}

/// In one `IMMEDIATE` transaction, so writers in any process add one after the other and no
/// call is lost between reading a count and writing it back.
pub(super) fn add_counts(
    conn: &mut Connection,
    instance_id: &str,
    counts: &[QuotaCount],
) -> StoreResult<Vec<SharedCount>> {
    let tx = write_tx(conn)?;
    let mut shared = Vec::with_capacity(counts.len());
    for count in counts {
        let held: Option<(i64, i64, i64)> = tx
            .prepare_cached(
                "SELECT first_call, window_start, calls FROM app_quota_counts
                 WHERE instance_id = ?1 AND app_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![instance_id, count.app_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(db("read a quota count"))?;
        let held = held
            .map(|(first_call, window_start, calls)| {
                let calls = u64::try_from(calls).map_err(|_| {
                    corrupt(format_args!("negative quota count of app {}", count.app_id))
                })?;
                Ok::<_, StoreError>(SharedCount {
                    first_call,
                    window_start,
                    calls,
                })
            })
            .transpose()?;
        let now = SharedCount::add(held, count);
        // Beyond SQL's signed integers a count only saturates: the quota is used up either way.
        let calls = sql_count(now.calls);
        tx.prepare_cached(
            "INSERT INTO app_quota_counts (instance_id, app_id, first_call, window_start, calls)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (instance_id, app_id) DO UPDATE SET
                 first_call = excluded.first_call,
                 window_start = excluded.window_start,
                 calls = excluded.calls",
        )
        .and_then(|mut s| {
            s.execute(params![
                instance_id,
                count.app_id,
                now.first_call,
                now.window_start,
                calls
            ])
        })
        .map_err(db("write a quota count"))?;
        shared.push(SharedCount {
            calls: calls.unsigned_abs(),
            ..now
        });
    }
    tx.commit().map_err(db("commit quota counts"))?;
    Ok(shared)
}

/// The apps whose ACL or quota changed after revision `after` (each once, in the order of its
/// last change) and the quota each has now, inside the reader's transaction.
pub(super) fn changed_since(
    tx: &Transaction<'_>,
    instance_id: &str,
    after: i64,
) -> StoreResult<Vec<(String, Option<AppQuota>)>> {
    // SQLite takes the bare `ord` from the row whose revision `max` chose: a write logs an app
    // once at most.
    let rows = tx
        .prepare_cached(
            "SELECT l.app_id, q.call_limits, q.time_unit, q.time_interval, q.reset_time
             FROM (SELECT app_id, max(revision) AS revision, ord FROM app_code_log
                   WHERE instance_id = ?1 AND revision > ?2 AND kind = 'A'
                   GROUP BY app_id) l
             LEFT JOIN apps a ON a.instance_id = ?1 AND a.id = l.app_id
             LEFT JOIN app_quota_bindings b ON b.app_seq = a.seq
             LEFT JOIN app_quotas q ON q.seq = b.quota_seq
             ORDER BY l.revision, l.ord",
        )
        .and_then(|mut s| {
            s.query_map(params![instance_id, after], |r| {
                let limit = match r.get::<_, Option<i64>>(1)? {
                    Some(_) => Some(raw_limit(r, 1)?),
                    None => None,
                };
                Ok((r.get::<_, String>(0)?, limit))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("read the changed app quotas"))?;
    rows.into_iter()
        .map(|(app, limit)| {
            let quota = limit
                .map(|l| l.open(format_args!("the quota of app {app}"), BACKEND))
                .transpose()?;
            Ok((app, quota))
        })
        .collect()
}
