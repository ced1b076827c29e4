//! The instance's revision and its change log: what a write records ([`record_write`]) and
//! what a reader behind it catches up with ([`app_code_changes`]). The rules are the SQLite
//! store's, under the same names.

use super::announcement::Event;
use super::error::corrupt;
use super::ops::{col, open_codes, BACKEND};
use super::pool::Conn;
use super::shared::Shared;
use crate::store::cipher::Sealer;
use crate::store::sealed::{sql_count, sql_revision};
use crate::store::{AppCodeChanges, DeletedAppCode, StoreResult};

/// Records one write that changed the instance's AppCodes, in its transaction and in one
/// statement (one round trip): takes the instance's next revision, logs `events` under it,
/// prunes the log entries that fall out of the last `retention` revisions, and announces
/// `events` with that revision to the nodes listening on the instance's channel (delivered when
/// the transaction commits). Returns the revision.
///
/// The revision comes from `INSERT ... ON CONFLICT DO UPDATE` on the instance's row, which
/// keeps that row locked until the transaction ends: a concurrent write to the instance waits
/// here, and takes the next revision only after this one committed (or rolled back, its
/// revision with it). So revisions are committed, and announced, in order and without gaps,
/// which is what lets a listener tell a missed announcement from the revision numbers. Call it
/// last in the transaction: the lock serializes the instance's writers from here to `COMMIT`,
/// and every other lock a write takes (an app's row, a code's row) is taken before this one, so
/// writers never wait for each other in opposite orders.
pub(super) async fn record_write(
    conn: &mut Conn,
    shared: &Shared,
    instance_id: &str,
    events: &[Event<'_>],
) -> StoreResult<u64> {
    debug_assert!(
        !events.is_empty(),
        "a write that changed nothing takes no revision"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.code()).collect();
    let app_ids: Vec<&str> = events.iter().map(|e| e.app_id).collect();
    let app_code_ids: Vec<&str> = events.iter().map(|e| e.app_code_id).collect();
    // Everything of a payload but its version and revision, which the statement prepends
    // (`Event::encode` writes the same whole).
    let tails: Vec<String> = events.iter().map(|e| e.tail(&shared.origin)).collect();
    let rows = conn
        .query(
            "record the change",
            // Data-modifying CTEs all run, on one snapshot: `pruned` cannot see (nor delete)
            // the rows `logged` inserts, which are newer than anything it prunes anyway. The
            // announcements go out in the order of `$7` (one revision row times the payloads).
            "WITH next AS (
                INSERT INTO instance_revisions AS r (instance_id, revision, pruned_through)
                VALUES ($1, 1, 0)
                ON CONFLICT (instance_id) DO UPDATE
                    SET revision = r.revision + 1,
                        pruned_through = GREATEST(r.pruned_through, r.revision + 1 - $2)
                RETURNING r.revision, r.pruned_through
            ), logged AS (
                INSERT INTO app_code_log (instance_id, revision, ord, app_code_id, app_id,
                                          kind)
                SELECT $1, next.revision, e.ord::integer, e.app_code_id, e.app_id, e.kind
                FROM next, unnest($3::text[], $4::text[], $5::text[])
                    WITH ORDINALITY AS e (kind, app_id, app_code_id, ord)
            ), pruned AS (
                DELETE FROM app_code_log l USING next
                WHERE l.instance_id = $1 AND l.revision <= next.pruned_through
            )
            SELECT next.revision, pg_notify($6, '2 ' || next.revision || ' ' || p)
            FROM next, unnest($7::text[]) AS p",
            &[
                &instance_id,
                &shared.retention,
                &kinds,
                &app_ids,
                &app_code_ids,
                &shared.channel(instance_id),
                &tails,
            ],
        )
        .await?;
    let revision = col(
        rows.first()
            .ok_or_else(|| corrupt("no revision recorded"))?,
        0,
    )?;
    sql_revision(revision, BACKEND)
}

/// The instance's revision and the newest revision pruned from its log: `(0, 0)` before its
/// first write (or last written before the store kept revisions).
pub(super) async fn instance_revision(
    conn: &mut Conn,
    instance_id: &str,
) -> StoreResult<(u64, u64)> {
    let row = conn
        .query_opt(
            "read the instance's revision",
            "SELECT revision, pruned_through FROM instance_revisions WHERE instance_id = $1",
            &[&instance_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok((0, 0));
    };
    Ok((
        sql_revision(col(&row, 0)?, BACKEND)?,
        sql_revision(col(&row, 1)?, BACKEND)?,
    ))
}

/// A [`BEGIN_READ`] transaction: what changed in the instance's AppCodes after `revision` (see
/// [`Store::app_code_changes`](crate::store::Store::app_code_changes)), from one
/// `REPEATABLE READ` snapshot, so the revision, the log and the codes agree.
pub(super) async fn app_code_changes(
    conn: &mut Conn,
    sealer: &Sealer,
    instance_id: &str,
    revision: u64,
) -> StoreResult<Option<AppCodeChanges>> {
    let (current, pruned_through) = instance_revision(conn, instance_id).await?;
    // Behind the log: changes are missing. Ahead of the store: another database, or this one
    // restored from a backup; either way the reader's codes cannot be patched into ours.
    if revision < pruned_through || revision > current {
        return Ok(None);
    }
    let mut changes = AppCodeChanges {
        revision: current,
        ..AppCodeChanges::default()
    };
    if revision == current {
        return Ok(Some(changes));
    }
    // `revision <= current`, which came from a bigint.
    let after = sql_count(revision);
    // Each ID once, where it was last created: an ID deleted and created again (IDs are unique
    // per instance only among existing codes) is the code that exists now.
    let rows = conn
        .query(
            "read the created AppCodes",
            "SELECT c.id, a.id, c.value, c.value_nonce, c.create_time
             FROM (SELECT DISTINCT ON (app_code_id) app_code_id, revision, ord
                   FROM app_code_log
                   WHERE instance_id = $1 AND revision > $2 AND kind = 'C'
                   ORDER BY app_code_id, revision DESC, ord DESC) l
             JOIN app_codes c ON c.instance_id = $1 AND c.id = l.app_code_id
             JOIN apps a ON a.seq = c.app_seq
             ORDER BY l.revision, l.ord",
            &[&instance_id, &after],
        )
        .await?;
    changes.created = open_codes(&rows, sealer, instance_id)?;
    let rows = conn
        .query(
            "read the deleted AppCodes",
            "SELECT app_id, app_code_id FROM app_code_log
             WHERE instance_id = $1 AND revision > $2 AND kind = 'D'
             ORDER BY revision, ord",
            &[&instance_id, &after],
        )
        .await?;
    changes.deleted = rows
        .iter()
        .map(|r| {
            Ok(DeletedAppCode {
                app_id: col(r, 0)?,
                id: col(r, 1)?,
            })
        })
        .collect::<StoreResult<_>>()?;
    changes.acls = super::acls::changed_since(conn, instance_id, after).await?;
    changes.quotas = super::quotas::changed_since(conn, instance_id, after).await?;
    changes.keys = super::keys::changed_since(conn, sealer, instance_id, after).await?;
    Ok(Some(changes))
}
