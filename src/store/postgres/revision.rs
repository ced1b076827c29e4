//! The instance's revision and its change log: what a reader behind it catches up with
//! ([`app_code_changes`]). The triggers of `triggers.rs` write both, for every change of the
//! tables. The rules are the SQLite store's, under the same names.

use super::policy;
use super::pool::{Conn, Progress};
use super::rows::{changed_apps, col, open_codes, BACKEND};
use crate::provider::{CodesDigest, RevisionDigest};
use crate::store::cipher::Sealer;
use crate::store::policy::changed_policies;
use crate::store::sealed::{sql_count, sql_revision};
use crate::store::{AppCodeChanges, DeletedAppCode, StoreResult};

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

/// A [`BEGIN_SNAPSHOT`](super::ops::BEGIN_SNAPSHOT) transaction: the digest of the instance's
/// AppCodes (see [`CodesDigest`]) and the revision it reflects, computed in the database: each
/// code's `hashtextextended` is a signed `bigint`, summed exactly and taken modulo 2^64, the
/// codes of a slice of [`DIGEST_SLICE`] app sequence numbers per statement, each slice
/// `progress`.
///
/// The check runs every few minutes on every node, whatever happens, so it is planned to cost
/// little: a slice is a merge join of the apps' and their codes' indexes over the same range of
/// app sequence numbers (one pass over each, in order), on one backend without JIT, where a
/// slice of codes alone had the planner hash the whole apps table again for every slice.
pub(super) async fn instance_digest(
    conn: &mut Conn,
    progress: &Progress,
    instance_id: &str,
) -> StoreResult<RevisionDigest> {
    let (revision, _) = instance_revision(conn, instance_id).await?;
    progress.tick();
    // Background work: no parallel workers, and no compiling of what runs a few times.
    for setting in [
        "SET LOCAL max_parallel_workers_per_gather = 0",
        "SET LOCAL jit = off",
    ] {
        conn.execute("plan the digest", setting, &[]).await?;
    }
    // The bounds of every instance's apps (one look at each end of the primary key); slices
    // of other instances' apps cost a range scan that finds none of this one's.
    let bounds = conn
        .query_opt(
            "digest the instance's AppCodes",
            "SELECT min(seq), max(seq) FROM apps",
            &[],
        )
        .await?
        .ok_or_else(|| super::error::corrupt("no digest"))?;
    let (first, last): (Option<i64>, Option<i64>) = (col(&bounds, 0)?, col(&bounds, 1)?);
    let mut codes = CodesDigest::default();
    let (Some(mut from), Some(last)) = (first, last) else {
        return Ok(RevisionDigest { revision, codes });
    };
    // Slice by slice, each a short statement and a tick of progress: the whole instance may
    // take longer than one call may, and the read is bounded by its progress like a snapshot.
    while from <= last {
        let to = from.saturating_add(DIGEST_SLICE - 1).min(last);
        let row = conn
            .query_opt(
                "digest the instance's AppCodes",
                "SELECT count(*), (((COALESCE(sum(hashtextextended(c.id COLLATE \"C\",
                            hashtextextended(a.id COLLATE \"C\", 0))), 0)
                        % 18446744073709551616) + 18446744073709551616)
                        % 18446744073709551616)::text
                 FROM apps a JOIN app_codes c ON c.app_seq = a.seq
                 WHERE a.instance_id = $1 AND c.instance_id = $1
                   AND a.seq BETWEEN $2 AND $3 AND c.app_seq BETWEEN $2 AND $3",
                &[&instance_id, &from, &to],
            )
            .await?
            .ok_or_else(|| super::error::corrupt("no digest"))?;
        let count: i64 = col(&row, 0)?;
        let sum: String = col(&row, 1)?;
        let sum: u64 = sum
            .parse()
            .map_err(|_| super::error::corrupt("a digest out of range"))?;
        codes.count = codes
            .count
            .wrapping_add(crate::store::sealed::sql_total(count, BACKEND)?);
        codes.sum = codes.sum.wrapping_add(sum);
        progress.tick();
        from = to.saturating_add(1);
    }
    Ok(RevisionDigest { revision, codes })
}

/// App sequence numbers per statement of [`instance_digest`]: the API keeps an app to five
/// codes, so 250 000 codes a statement at most unless the tables were written around it.
const DIGEST_SLICE: i64 = 50_000;

/// A [`BEGIN_READ`](super::ops::BEGIN_READ) transaction: what changed in the instance's AppCodes after `revision` (see
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
    let rows = conn
        .query(
            "read the changed apps' ACLs, quotas and keys",
            changed_policies!(changed_apps!()),
            &[&instance_id, &after],
        )
        .await?;
    for row in &rows {
        let app_id: String = col(row, 0)?;
        policy::read(row, 1, &app_id, true, sealer, instance_id)?.add_to(app_id, &mut changes);
    }
    Ok(Some(changes))
}
