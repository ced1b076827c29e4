//! App ACLs in the SQLite store: one row per app that has one, its changes in the change log
//! (kind `A`) like those of AppCodes, so gateways catch up on both from one revision.

use rusqlite::{params, Connection, Transaction};

use super::error::{corrupt, db};
use super::rows::{app_seq, instance_rows, query_opt};
use super::transactions::{read_tx, Write};
use crate::acl::AppAcl;
use crate::store::{Scope, StoreResult};

/// The ACL stored as `kind` and `values` (one a line), or a corrupt-data error.
pub(super) fn decode(kind: &str, values: &str) -> StoreResult<AppAcl> {
    let kind = kind
        .parse()
        .map_err(|_| corrupt(format_args!("an app ACL of type {kind:?}")))?;
    AppAcl::new(kind, values.lines()).map_err(|e| corrupt(format_args!("an app ACL: {e}")))
}

fn read(tx: &Transaction<'_>, seq: i64) -> StoreResult<Option<AppAcl>> {
    let sql = "SELECT kind, acl_values FROM app_acls WHERE app_seq = ?1";
    let row: Option<(String, String)> = query_opt(tx, "read app ACL", sql, [seq], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    row.map(|(kind, values)| decode(&kind, &values)).transpose()
}

pub(super) fn get(
    conn: &mut Connection,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Option<AppAcl>> {
    let tx = read_tx(conn)?;
    let seq = app_seq(&tx, scope, app_id)?;
    read(&tx, seq)
}

pub(super) fn set(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    app_id: &str,
    acl: &AppAcl,
) -> StoreResult<()> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let seq = app_seq(&tx, scope, app_id)?;
    tx.prepare_cached(
        "INSERT INTO app_acls (app_seq, kind, acl_values) VALUES (?1, ?2, ?3)
         ON CONFLICT (app_seq) DO UPDATE SET kind = excluded.kind, acl_values = excluded.acl_values",
    )
    .and_then(|mut s| s.execute(params![seq, acl.kind().as_str(), acl.values().join("\n")]))
    .map_err(db("write app ACL"))?;
    tx.commit("commit app ACL")
}

/// Removes the ACL of the app at `seq` inside a write; whether it had one.
pub(super) fn delete(tx: &Transaction<'_>, seq: i64) -> StoreResult<bool> {
    let n = tx
        .prepare_cached("DELETE FROM app_acls WHERE app_seq = ?1")
        .and_then(|mut s| s.execute([seq]))
        .map_err(db("delete app ACL"))?;
    Ok(n > 0)
}

pub(super) fn remove(
    conn: &mut Connection,
    retention: u64,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<bool> {
    let tx = Write::begin(conn, retention, &scope.instance_id)?;
    let seq = app_seq(&tx, scope, app_id)?;
    let had = delete(&tx, seq)?;
    tx.commit("commit app ACL removal")?;
    Ok(had)
}

pub(super) fn of_instance(
    conn: &mut Connection,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppAcl)>> {
    instance_rows(
        conn,
        "read the instance's app ACLs",
        "SELECT a.id, x.kind, x.acl_values FROM app_acls x JOIN apps a ON a.seq = x.app_seq
         WHERE a.instance_id = ?1 ORDER BY a.seq",
        instance_id,
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        },
        |(app, kind, values)| Ok((app, decode(&kind, &values)?)),
    )
}
