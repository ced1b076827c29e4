//! The instance's revision and change log, under the PostgreSQL store's names: what a reader
//! catches up with.

use rusqlite::{params, Connection, Transaction};

use super::error::db;
use super::policy;
use super::rows::{changed_apps, query_all, query_codes, query_opt, BACKEND};
use super::transactions::read_tx;
use crate::provider::{CodesDigest, RevisionDigest};
use crate::store::cipher::Sealer;
use crate::store::policy::changed_policies;
use crate::store::sealed::{sql_count, sql_revision};
use crate::store::{AppCodeChanges, DeletedAppCode, StoreResult};

/// The instance's revision and the newest revision pruned from its log: `(0, 0)` before its
/// first write (or last written before the store kept revisions).
pub(super) fn instance_revision(
    tx: &Transaction<'_>,
    instance_id: &str,
) -> StoreResult<(u64, u64)> {
    let row: Option<(i64, i64)> = query_opt(
        tx,
        "read the instance's revision",
        "SELECT revision, pruned_through FROM instance_revisions WHERE instance_id = ?1",
        [instance_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some((revision, pruned_through)) = row else {
        return Ok((0, 0));
    };
    Ok((
        sql_revision(revision, BACKEND)?,
        sql_revision(pruned_through, BACKEND)?,
    ))
}

/// The digest of the instance's AppCodes and the revision it reflects, from one read
/// transaction. SQLite has no hash function: the IDs are read and hashed here, one row at a
/// time.
pub(super) fn instance_digest(
    conn: &mut Connection,
    instance_id: &str,
) -> StoreResult<RevisionDigest> {
    let tx = read_tx(conn)?;
    let (revision, _) = instance_revision(&tx, instance_id)?;
    let mut codes = CodesDigest::default();
    let mut stmt = tx
        .prepare_cached(
            "SELECT a.id, c.id FROM app_codes c JOIN apps a ON a.seq = c.app_seq
             WHERE c.instance_id = ?1",
        )
        .map_err(db("digest the instance's AppCodes"))?;
    let mut rows = stmt
        .query([instance_id])
        .map_err(db("digest the instance's AppCodes"))?;
    let context = "digest the instance's AppCodes";
    while let Some(row) = rows.next().map_err(db(context))? {
        let text = |i| row.get_ref(i).and_then(|v| Ok(v.as_str()?));
        codes.add(text(0).map_err(db(context))?, text(1).map_err(db(context))?);
    }
    Ok(RevisionDigest { revision, codes })
}

pub(super) fn app_code_changes(
    conn: &mut Connection,
    sealer: &Sealer,
    instance_id: &str,
    revision: u64,
) -> StoreResult<Option<AppCodeChanges>> {
    let tx = read_tx(conn)?;
    let (current, pruned_through) = instance_revision(&tx, instance_id)?;
    // Behind the log: changes are missing. Ahead of the store: another database, or this one
    // restored from a backup; either way the reader's codes cannot be patched into ours.
    if revision < pruned_through || revision > current {
        return Ok(None);
    }
    // `revision <= current`, which came from an i64.
    let after = sql_count(revision);
    // Each ID once, where it was last created: an ID deleted and created again (IDs are unique
    // per instance only among existing codes) is the code that exists now. SQLite takes the
    // bare `ord` from the row whose revision `max` chose (a write creates one code at
    // most, so that row is the ID's last creation). `CROSS JOIN` makes SQLite walk the log's
    // range first and look each code up by its ID, whatever the table sizes.
    let created = query_codes(
        &tx,
        sealer,
        instance_id,
        "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time
         FROM (SELECT app_code_id, max(revision) AS revision, ord
               FROM app_code_log
               WHERE instance_id = ?1 AND revision > ?2 AND kind = 'C'
               GROUP BY app_code_id) l
         CROSS JOIN app_codes c ON c.instance_id = ?1 AND c.id = l.app_code_id
         JOIN apps a ON a.seq = c.app_seq
         ORDER BY l.revision, l.ord",
        params![instance_id, after],
    )?;
    let deleted = query_all(
        &tx,
        "read the change log",
        "SELECT app_id, app_code_id FROM app_code_log
         WHERE instance_id = ?1 AND revision > ?2 AND kind = 'D'
         ORDER BY revision, ord",
        params![instance_id, after],
        |r| {
            Ok(DeletedAppCode {
                app_id: r.get(0)?,
                id: r.get(1)?,
            })
        },
    )?;
    let mut changes = AppCodeChanges {
        revision: current,
        created,
        deleted,
        ..AppCodeChanges::default()
    };
    let rows = query_all(
        &tx,
        "read the changed apps' ACLs, quotas and keys",
        changed_policies!(changed_apps!()),
        params![instance_id, after],
        |r| policy::read(r, 0),
    )?;
    for raw in rows {
        let (app_id, policy) = raw.open(sealer, instance_id)?;
        policy.add_to(app_id, &mut changes);
    }
    Ok(Some(changes))
}
