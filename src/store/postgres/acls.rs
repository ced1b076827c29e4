//! App ACLs in the PostgreSQL store: one row per app that has one, its changes logged (kind
//! `A`) and announced by the table's triggers like those of AppCodes, so gateways hear of both
//! the same way.
//! Each function is one statement or a transaction body, as in `ops.rs`.

use tokio_postgres::Row;

use super::error::corrupt;
use super::pool::{Conn, Progress};
use super::rows::{app_seq, col, APP_BY_ID, APP_BY_ID_LOCKED};
use crate::acl::AppAcl;
use crate::store::{Scope, StoreResult};

/// The ACL in columns `i` (type) and `i + 1` (values) of `row`, or a corrupt-data error.
pub(super) fn decode(row: &Row, i: usize) -> StoreResult<AppAcl> {
    let kind: String = col(row, i)?;
    let values: Vec<String> = col(row, i + 1)?;
    let kind = kind
        .parse()
        .map_err(|_| corrupt(format_args!("an app ACL of type {kind:?}")))?;
    AppAcl::new(kind, values).map_err(|e| corrupt(format_args!("an app ACL: {e}")))
}

/// A [`BEGIN_READ`](super::ops::BEGIN_READ) transaction.
pub(super) async fn get(
    conn: &mut Conn,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Option<AppAcl>> {
    let seq = app_seq(conn, APP_BY_ID, scope, app_id).await?;
    let row = conn
        .query_opt(
            "read app ACL",
            "SELECT kind, acl_values FROM app_acls WHERE app_seq = $1",
            &[&seq],
        )
        .await?;
    row.map(|r| decode(&r, 0)).transpose()
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction. Locks the app's row first, so a
/// concurrent deletion of the app either came before (and this finds no app) or waits.
pub(super) async fn set(
    conn: &mut Conn,
    scope: &Scope,
    app_id: &str,
    acl: &AppAcl,
) -> StoreResult<()> {
    let seq = app_seq(conn, APP_BY_ID_LOCKED, scope, app_id).await?;
    conn.execute(
        "write app ACL",
        "INSERT INTO app_acls (app_seq, kind, acl_values) VALUES ($1, $2, $3)
         ON CONFLICT (app_seq) DO UPDATE SET kind = excluded.kind, acl_values = excluded.acl_values",
        &[&seq, &acl.kind().as_str(), &acl.values()],
    )
    .await?;
    Ok(())
}

/// Removes the ACL of the app at `seq` inside a write; whether it had one.
pub(super) async fn delete(conn: &mut Conn, seq: i64) -> StoreResult<bool> {
    let n = conn
        .execute(
            "delete app ACL",
            "DELETE FROM app_acls WHERE app_seq = $1",
            &[&seq],
        )
        .await?;
    Ok(n > 0)
}

/// A [`BEGIN_WRITE`](super::ops::BEGIN_WRITE) transaction.
pub(super) async fn remove(conn: &mut Conn, scope: &Scope, app_id: &str) -> StoreResult<bool> {
    let seq = app_seq(conn, APP_BY_ID_LOCKED, scope, app_id).await?;
    delete(conn, seq).await
}

/// A [`BEGIN_SNAPSHOT`](super::ops::BEGIN_SNAPSHOT) transaction: the ACL of every app of the
/// instance that has one, decoded as the rows stream in. Each row is `progress`: an instance
/// with many ACLs takes as long as it needs, as long as rows keep coming.
pub(super) async fn of_instance(
    conn: &mut Conn,
    progress: &Progress,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppAcl)>> {
    let context = "read the instance's app ACLs";
    let sql = "SELECT a.id, x.kind, x.acl_values FROM app_acls x JOIN apps a ON a.seq = x.app_seq
               WHERE a.instance_id = $1 ORDER BY a.seq";
    let mut acls = Vec::new();
    conn.for_each_row(context, sql, &[&instance_id], progress, |row| {
        acls.push((col(row, 0)?, decode(row, 1)?));
        Ok(())
    })
    .await?;
    Ok(acls)
}
