//! Apps under app quotas in the SQLite store: their bindings (one per app) and the calls every
//! node counted in each app's window.

use rusqlite::types::ToSql;
use rusqlite::{params, params_from_iter, Connection, Transaction};

use super::error::{corrupt, db};
use super::rows::{app_seq, count, query_all, query_opt, quota_seq, read, APP_COLUMNS, BACKEND};
use super::transactions::{read_tx, write_tx, Write};
use crate::store::cipher::Sealer;
use crate::store::sealed::{self, sql_count, RawApp};
use crate::store::QuotaAppsWanted;
use crate::store::{
    AppQuotaRecord, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, StoreError,
    StoreResult, Timestamp,
};

/// Forgets the shared count of the app `app_id`, inside a write.
pub(super) fn forget_count(
    tx: &Transaction<'_>,
    instance_id: &str,
    app_id: &str,
) -> StoreResult<()> {
    tx.prepare_cached("DELETE FROM app_quota_counts WHERE instance_id = ?1 AND app_id = ?2")
        .and_then(|mut s| s.execute(params![instance_id, app_id]))
        .map_err(db("delete a quota count"))?;
    Ok(())
}

pub(super) fn bind(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
    app_ids: &[String],
    bound_time: Timestamp,
) -> StoreResult<Vec<QuotaBinding>> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let quota = quota_seq(&tx, scope, quota_id)?;
    let mut bindings = Vec::with_capacity(app_ids.len());
    let mut new: Vec<String> = Vec::new();
    for app_id in app_ids {
        let app = app_seq(&tx, scope, app_id)?;
        let held: Option<(i64, i64)> = query_opt(
            &tx,
            "read the app's quota binding",
            "SELECT quota_seq, bound_time FROM app_quota_bindings WHERE app_seq = ?1",
            [app],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
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
    tx.commit("commit app quota binding")?;
    Ok(bindings)
}

pub(super) fn apps(
    conn: &mut Connection,
    sealer: &Sealer,
    scope: &Scope,
    quota_id: &str,
    wanted: &QuotaAppsWanted,
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
        &wanted.bound,
        &wanted.app_name,
    ];
    let count_sql = format!("SELECT COUNT(*) FROM {FROM} WHERE {FILTER}");
    let total = count(&tx, "count the quota's apps", &count_sql, &filter[..])?;
    let (limit, offset) = (sql_count(wanted.limit), sql_count(wanted.offset));
    let page = filter
        .iter()
        .copied()
        .chain([&limit as &dyn ToSql, &offset]);
    let rows = query_all(
        &tx,
        "list the quota's apps",
        &format!(
            "SELECT {APP_COLUMNS}, b.bound_time FROM {FROM} WHERE {FILTER}
             ORDER BY a.seq LIMIT ?6 OFFSET ?7"
        ),
        params_from_iter(page),
        |r| Ok((RawApp::from_sqlite_row(r)?, r.get::<_, Option<i64>>(10)?)),
    )?;
    let apps = rows.into_iter().map(|(raw, bound_time)| {
        Ok(QuotaApp {
            app: raw.open(sealer, scope, BACKEND)?,
            bound_time: bound_time.map(Timestamp::from_unix_nanos),
        })
    });
    sealed::page(total, BACKEND, apps)
}

pub(super) fn unbind(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    quota_id: &str,
    app_id: &str,
) -> StoreResult<()> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
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
    tx.commit("commit app quota unbinding")
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

pub(super) fn bound_to(
    conn: &mut Connection,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Option<AppQuotaRecord>> {
    let tx = read_tx(conn)?;
    let app = app_seq(&tx, scope, app_id)?;
    let sql = "SELECT quota_seq FROM app_quota_bindings WHERE app_seq = ?1";
    let quota: Option<i64> = query_opt(&tx, "read the app's quota binding", sql, [app], |r| {
        r.get(0)
    })?;
    quota.map(|seq| read(&tx, seq)).transpose()
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
        let held: Option<(i64, i64, i64)> = query_opt(
            &tx,
            "read a quota count",
            "SELECT first_call, window_start, calls FROM app_quota_counts
             WHERE instance_id = ?1 AND app_id = ?2",
            params![instance_id, count.app_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
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
