//! Apps under app quotas in the PostgreSQL store: their bindings (one per app) and the calls
//! every node counted in each app's window. Each function is one statement or a transaction
//! body, as in `ops.rs`; writes take their locks in the order `quotas.rs` describes.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::error::{corrupt, db, unique_violation};
use super::pool::Conn;
use super::rows::{
    app_columns, app_seq, col, count, quota_seq, read, APP_BY_ID, BACKEND, QUOTA_BY_ID,
    QUOTA_BY_ID_LOCKED,
};
use crate::store::cipher::Sealer;
use crate::store::sealed::{page, sql_count, sql_total, RawApp};
use crate::store::QuotaAppsWanted;
use crate::store::{
    AppQuotaRecord, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, StoreError,
    StoreResult, Timestamp,
};

/// Forgets the shared counts of the apps `app_ids`, inside a write.
pub(super) async fn forget_counts(
    conn: &mut Conn,
    instance_id: &str,
    app_ids: &[&str],
) -> StoreResult<()> {
    conn.execute(
        "delete quota counts",
        "DELETE FROM app_quota_counts WHERE instance_id = $1 AND app_id = ANY($2)",
        &[&instance_id, &app_ids],
    )
    .await?;
    Ok(())
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction. Locks the quota's row, then every
/// app's in one statement (in row order, so two bindings naming the same apps in another
/// order cannot wait for each other), so a concurrent deletion of an app either came before
/// (and this finds no app) or waits, and a concurrent binding of one of them to another quota
/// is seen.
pub(super) async fn bind(
    conn: &mut Conn,
    scope: &Scope,
    quota_id: &str,
    app_ids: &[String],
    bound_time: Timestamp,
) -> StoreResult<Vec<QuotaBinding>> {
    let quota = quota_seq(conn, QUOTA_BY_ID_LOCKED, scope, quota_id).await?;
    let rows = conn
        .query(
            "lock the apps",
            "SELECT a.id, a.seq, b.quota_seq, b.bound_time
             FROM apps a LEFT JOIN app_quota_bindings b ON b.app_seq = a.seq
             WHERE a.project_id = $1 AND a.instance_id = $2 AND a.id = ANY($3)
             ORDER BY a.seq
             FOR UPDATE OF a",
            &[&scope.project_id, &scope.instance_id, &app_ids],
        )
        .await?;
    let mut apps: HashMap<String, (i64, Option<(i64, i64)>)> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let held = match col::<Option<i64>>(r, 2)? {
            Some(held) => Some((held, col(r, 3)?)),
            None => None,
        };
        apps.insert(col(r, 0)?, (col(r, 1)?, held));
    }
    let mut bindings = Vec::with_capacity(app_ids.len());
    let mut new_seqs = Vec::new();
    for app_id in app_ids {
        let (seq, held) = *apps.get(app_id).ok_or(StoreError::AppNotFound)?;
        match held {
            Some((held, at)) if held == quota => bindings.push(QuotaBinding {
                app_quota_id: quota_id.to_owned(),
                app_id: app_id.clone(),
                bound_time: Timestamp::from_unix_nanos(at),
            }),
            Some(_) => return Err(StoreError::AppHasQuota),
            // Named twice: one binding, listed once.
            None if new_seqs.contains(&seq) => {}
            None => {
                new_seqs.push(seq);
                bindings.push(QuotaBinding {
                    app_quota_id: quota_id.to_owned(),
                    app_id: app_id.clone(),
                    bound_time,
                });
            }
        }
    }
    if new_seqs.is_empty() {
        return Ok(bindings);
    }
    conn.query_raw(
        "INSERT INTO app_quota_bindings (app_seq, quota_seq, bound_time)
         SELECT app_seq, $2, $3 FROM unnest($1::bigint[]) WITH ORDINALITY AS n (app_seq, ord)
         ORDER BY ord",
        &[&new_seqs, &quota, &bound_time.unix_nanos()],
    )
    .await
    .map_err(|e| match unique_violation(&e) {
        Some("app_quota_bindings_by_app") => StoreError::AppHasQuota,
        _ => db("bind app quota")(e),
    })?;
    Ok(bindings)
}

/// The apps of the scope bound to the quota `$3` (`$4`), or bound to none (`!$4`).
macro_rules! quota_apps_from {
    () => {
        " FROM apps a LEFT JOIN app_quota_bindings b ON b.app_seq = a.seq
          WHERE a.project_id = $1 AND a.instance_id = $2
            AND CASE WHEN $4::boolean THEN b.quota_seq = $3 ELSE b.app_seq IS NULL END
            AND ($5::text IS NULL OR strpos(a.name, $5) > 0)"
    };
}

/// A [`BEGIN_READ`](super::ops::BEGIN_READ) transaction: the total and the page agree.
pub(super) async fn apps(
    conn: &mut Conn,
    sealer: &Sealer,
    scope: &Scope,
    quota_id: &str,
    wanted: &QuotaAppsWanted,
) -> StoreResult<Page<QuotaApp>> {
    let quota = quota_seq(conn, QUOTA_BY_ID, scope, quota_id).await?;
    let filter: [&(dyn ToSql + Sync); 5] = [
        &scope.project_id,
        &scope.instance_id,
        &quota,
        &wanted.bound,
        &wanted.app_name,
    ];
    let count_sql = concat!("SELECT count(*)", quota_apps_from!());
    let total = count(conn, "count the quota's apps", count_sql, &filter).await?;
    let rows = conn
        .query(
            "list the quota's apps",
            concat!(
                "SELECT ",
                app_columns!(),
                ", b.bound_time",
                quota_apps_from!(),
                " ORDER BY a.seq LIMIT $6 OFFSET $7"
            ),
            &[
                &scope.project_id,
                &scope.instance_id,
                &quota,
                &wanted.bound,
                &wanted.app_name,
                &sql_count(wanted.limit),
                &sql_count(wanted.offset),
            ],
        )
        .await?;
    let apps = rows.iter().map(|r| {
        Ok(QuotaApp {
            app: RawApp::from_pg_row(r)?.open(sealer, scope, BACKEND)?,
            bound_time: col::<Option<i64>>(r, 10)?.map(Timestamp::from_unix_nanos),
        })
    });
    page(total, BACKEND, apps)
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction.
pub(super) async fn unbind(
    conn: &mut Conn,
    scope: &Scope,
    quota_id: &str,
    app_id: &str,
) -> StoreResult<()> {
    let quota = quota_seq(conn, QUOTA_BY_ID, scope, quota_id).await?;
    let n = conn
        .execute(
            "unbind app quota",
            "DELETE FROM app_quota_bindings b USING apps a
             WHERE b.app_seq = a.seq AND b.quota_seq = $1
               AND a.project_id = $2 AND a.instance_id = $3 AND a.id = $4",
            &[&quota, &scope.project_id, &scope.instance_id, &app_id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::AppNotFound);
    }
    forget_counts(conn, &scope.instance_id, &[app_id]).await
}

/// Unbinds the app at `seq` from its quota, if it has one, and forgets its shared count, inside
/// the write deleting it; whether it had a quota.
pub(super) async fn leave(
    conn: &mut Conn,
    instance_id: &str,
    seq: i64,
    app_id: &str,
) -> StoreResult<bool> {
    let n = conn
        .execute(
            "unbind app quota",
            "DELETE FROM app_quota_bindings WHERE app_seq = $1",
            &[&seq],
        )
        .await?;
    forget_counts(conn, instance_id, &[app_id]).await?;
    Ok(n > 0)
}

/// A [`BEGIN_READ`](super::ops::BEGIN_READ) transaction.
pub(super) async fn bound_to(
    conn: &mut Conn,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Option<AppQuotaRecord>> {
    let app = app_seq(conn, APP_BY_ID, scope, app_id).await?;
    let row = conn
        .query_opt(
            "read the app's quota binding",
            "SELECT quota_seq FROM app_quota_bindings WHERE app_seq = $1",
            &[&app],
        )
        .await?;
    match row {
        Some(r) => read(conn, col(&r, 0)?).await.map(Some),
        None => Ok(None),
    }
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction: one `INSERT ... ON CONFLICT DO
/// UPDATE` per count, which adds under the row's lock, so concurrent callers lose nothing. The
/// rule is [`SharedCount::add`]'s, in SQL; a sum beyond a `bigint` saturates (the quota is used
/// up either way).
///
/// The rows are written in the order of their app IDs, so that two nodes flushing the same
/// apps in other orders never wait for each other's locks; counts of one app keep their order,
/// and the results come back in the order given.
pub(super) async fn add_counts(
    conn: &mut Conn,
    instance_id: &str,
    counts: &[QuotaCount],
) -> StoreResult<Vec<SharedCount>> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| counts[a].app_id.cmp(&counts[b].app_id));
    let mut shared = vec![None; counts.len()];
    for i in order {
        let count = &counts[i];
        let rows = conn
            .query(
                "add a quota count",
                "INSERT INTO app_quota_counts AS c (instance_id, app_id, first_call, window_start,
                                                    calls)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (instance_id, app_id) DO UPDATE SET
                     window_start = GREATEST(c.window_start, excluded.window_start),
                     calls = CASE
                         WHEN excluded.window_start < c.window_start THEN c.calls
                         WHEN excluded.window_start > c.window_start THEN excluded.calls
                         WHEN c.calls > 9223372036854775807 - excluded.calls
                             THEN 9223372036854775807
                         ELSE c.calls + excluded.calls
                     END
                 RETURNING c.first_call, c.window_start, c.calls",
                &[
                    &instance_id,
                    &count.app_id,
                    &count.first_call,
                    &count.window_start,
                    &sql_count(count.calls),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| corrupt("no quota count returned"))?;
        shared[i] = Some(SharedCount {
            first_call: col(row, 0)?,
            window_start: col(row, 1)?,
            calls: sql_total(col(row, 2)?, BACKEND)?,
        });
    }
    Ok(shared.into_iter().flatten().collect())
}
