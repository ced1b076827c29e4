//! Change propagation between nodes: the task that `LISTEN`s for one instance and turns
//! announcements (`announcement.rs`) into [`Change`] events for the cache.
//!
//! A receiving node turns a deletion into [`Change::RemoveId`] and a creation into [`Change::Upsert`] after
//! reading the new code by ID (the cache needs the value); it skips creations it wrote itself,
//! which its management API has cached already. A change of an app's ACL or quota becomes
//! [`Change::AppAcl`] and [`Change::AppQuota`], read back the same way. An announcement that a
//! write changed more than it named (a bulk statement) becomes [`Change::Resync`]: the node
//! catches up on the change log.
//!
//! Each instance has its own channel (derived from the schema and the instance ID), so a node
//! hears only about its instance.
//!
//! Nothing committed while a listener is not listening may be lost. A snapshot of the instance
//! ([`before_snapshot`]) first waits (briefly) for the instance's listeners to be listening, so
//! the snapshot a node starts with already follows the first `LISTEN`; a snapshot read while a
//! listener is not listening marks it, and after its next `LISTEN` the listener sends
//! [`Change::Resync`]. After a lost connection it always does: announcements were missed, and
//! only a full snapshot has them. A lost connection is retried with exponential backoff (100 ms
//! doubling up to 5 s); a silent one is found by a heartbeat query.
//!
//! Revisions tell a lost announcement while connected: after each `LISTEN` the listener reads
//! the instance's revision, and revisions are committed (so announced) one after the other, so
//! an announcement more than one revision past the last one relayed means one never arrived:
//! the listener sends [`Change::Resync`] (the node catches up on the change log, not a full
//! snapshot).

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant, MissedTickBehavior};
use tokio_postgres::{AsyncMessage, Notification};

use super::announcement::{decode, Announcement, EventKind};
use super::error::safe_message;
use super::ops;
use super::policy::{self, policy_columns, policy_joins, Policy};
use super::pool::DEFAULT_CONNECT_TIMEOUT;
use super::shared::Shared;
use crate::provider::{Change, ChangeSender, ChangeStream};
use crate::store::{AppCodeRecord, StoreResult};

/// Events buffered between the listener and the cache's refresher.
const CAPACITY: usize = 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A session that lasted this long was healthy: the next reconnection starts from the first
/// backoff again.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// How often the listener checks its connection (and whether anyone still reads its events),
/// and how long `LISTEN` may take.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a heartbeat may go unanswered before the connection counts as dead. Long, because
/// a busy database is not a dead one: with two saturated gateway nodes on this machine, a
/// `SELECT 1` from outside once took 8 s (BENCHMARKS.md), and each false alarm costs a
/// reconnect and a full resync. Notifications keep flowing while a heartbeat waits.
const HEARTBEAT_ANSWER: Duration = Duration::from_secs(30);
/// How long a snapshot waits for the instance's listeners' first attempt to listen.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One listener as snapshots see it.
#[derive(Debug)]
pub(super) struct Listener {
    instance_id: String,
    state: Mutex<ListenState>,
    /// `true` once the first attempt to listen succeeded or failed.
    settled: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct ListenState {
    listening: bool,
    /// A snapshot was read while not listening: resync after the next `LISTEN`.
    snapshot_unseen: bool,
}

impl Listener {
    fn state(&self) -> std::sync::MutexGuard<'_, ListenState> {
        // Two booleans, each written in one step: nothing a panic could leave half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The listeners of a store.
#[derive(Debug, Default)]
pub(super) struct Listeners(Mutex<Vec<Weak<Listener>>>);

impl Listeners {
    fn register(&self, instance_id: &str) -> Arc<Listener> {
        let listener = Arc::new(Listener {
            instance_id: instance_id.to_owned(),
            state: Mutex::default(),
            settled: watch::Sender::new(false),
        });
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|l| l.strong_count() > 0);
        all.push(Arc::downgrade(&listener));
        listener
    }

    fn of(&self, instance_id: &str) -> Vec<Arc<Listener>> {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .filter_map(Weak::upgrade)
            .filter(|l| l.instance_id == instance_id)
            .collect()
    }
}

/// Call before reading a snapshot of `instance_id`: waits (at most [`SETTLE_TIMEOUT`]) for the
/// instance's listeners to have tried to listen once, then marks those not listening, so they
/// resync once they are.
pub(super) async fn before_snapshot(listeners: &Listeners, instance_id: &str) {
    let mine = listeners.of(instance_id);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    for listener in &mine {
        let mut settled = listener.settled.subscribe();
        let _ = tokio::time::timeout_at(deadline, settled.wait_for(|s| *s)).await;
    }
    for listener in &mine {
        let mut state = listener.state();
        if !state.listening {
            state.snapshot_unseen = true;
        }
    }
}

/// Starts listening for `instance_id`'s changes; the task stops once the stream is dropped.
pub(super) fn spawn(
    shared: Arc<Shared>,
    listeners: &Listeners,
    instance_id: String,
) -> ChangeStream {
    let (tx, rx) = ChangeStream::channel(CAPACITY);
    let listener = listeners.register(&instance_id);
    let runtime = shared.pool.runtime().clone();
    runtime.spawn(listen(shared, listener, tx));
    rx
}

/// Why a listening session ended.
enum Ended {
    /// Nobody reads the events any more.
    Closed,
    /// The connection failed or could not be made.
    Lost(String),
}

async fn listen(shared: Arc<Shared>, listener: Arc<Listener>, tx: ChangeSender) {
    let instance_id = listener.instance_id.as_str();
    let channel = shared.channel(instance_id);
    let mut backoff = FIRST_BACKOFF;
    let mut first = true;
    loop {
        let started = Instant::now();
        let ended = session(&shared, &listener, &channel, &tx, &mut first).await;
        listener.state().listening = false;
        listener.settled.send_replace(true);
        match ended {
            Ended::Closed => return,
            Ended::Lost(why) => {
                if started.elapsed() >= STABLE_SESSION {
                    backoff = FIRST_BACKOFF;
                }
                tracing::warn!(
                    error = %why,
                    instance_id = %instance_id,
                    retry_in = ?backoff,
                    "PostgreSQL change listener lost its connection; the cache resyncs once it is back"
                );
            }
        }
        sleep(backoff).await;
        if tx.is_closed() {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection: `LISTEN`, resync if needed, then relay announcements until the connection
/// fails or the stream is dropped. `first` is cleared after the first `LISTEN`.
async fn session(
    shared: &Shared,
    listener: &Listener,
    channel: &str,
    tx: &ChangeSender,
    first: &mut bool,
) -> Ended {
    let instance_id = listener.instance_id.as_str();
    let mut config = shared.pool.config().clone();
    let name = format!(
        "{} listener",
        config.get_application_name().unwrap_or("apig-appcode")
    );
    config.application_name(name);
    let connect_timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let (client, mut connection) =
        match timeout(connect_timeout, config.connect(shared.pool.tls().clone())).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Ended::Lost(safe_message(&e)),
            Err(_) => return Ended::Lost(format!("no connection within {connect_timeout:?}")),
        };
    // Notifications arrive on the connection, which a task of its own drives.
    let (notes_tx, mut notes) = mpsc::unbounded_channel::<Notification>();
    let mut driver = AbortOnDrop(tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if notes_tx.send(n).is_err() {
                        return None;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(safe_message(&e)),
                None => return Some("the server closed the connection".to_owned()),
            }
        }
    }));
    match timeout(
        HEARTBEAT,
        client.batch_execute(&format!("LISTEN {channel}")),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ended::Lost(safe_message(&e)),
        Err(_) => return Ended::Lost(format!("LISTEN took longer than {HEARTBEAT:?}")),
    }
    // The revision this session starts from: every write committed from here on is announced
    // to it, in revision order, so a later announcement more than one revision ahead of the
    // last one relayed means one was lost (see `Revisions::observe`).
    let read = timeout(
        HEARTBEAT,
        client.query_opt(
            "SELECT revision FROM instance_revisions WHERE instance_id = $1",
            &[&instance_id],
        ),
    )
    .await;
    let mut revisions = match read {
        Ok(Ok(row)) => {
            let revision = row.map_or(Ok(0), |r| r.try_get::<_, i64>(0));
            match revision.map(u64::try_from) {
                Ok(Ok(revision)) => Revisions { last: revision },
                _ => return Ended::Lost("the instance's revision is unreadable".to_owned()),
            }
        }
        Ok(Err(e)) => return Ended::Lost(safe_message(&e)),
        Err(_) => {
            return Ended::Lost(format!(
                "reading the instance's revision took longer than {HEARTBEAT:?}"
            ))
        }
    };
    tracing::debug!(%instance_id, channel, revision = revisions.last, "listening for AppCode changes");
    // Whatever was committed while nobody listened is only in a full snapshot: after a lost
    // connection, or if a snapshot was read before the first LISTEN.
    let resync = {
        let mut state = listener.state();
        state.listening = true;
        let unseen = std::mem::take(&mut state.snapshot_unseen);
        !std::mem::take(first) || unseen
    };
    listener.settled.send_replace(true);
    if resync && tx.send(Change::Resync).await.is_err() {
        return Ended::Closed;
    }
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The heartbeat in flight, if any: polled beside the notifications, never instead of them.
    let mut probe = std::pin::pin!(None);
    loop {
        tokio::select! {
            note = notes.recv() => match note {
                Some(note) => {
                    if relay(shared, instance_id, &note, &mut revisions, tx).await.is_err() {
                        return Ended::Closed;
                    }
                }
                None => {
                    let why = (&mut driver.0).await.ok().flatten();
                    return Ended::Lost(why.unwrap_or_else(|| "the connection ended".to_owned()));
                }
            },
            _ = heartbeat.tick(), if probe.is_none() => {
                if tx.is_closed() {
                    return Ended::Closed;
                }
                probe.set(Some(timeout(HEARTBEAT_ANSWER, client.simple_query("SELECT 1"))));
            }
            answer = async { probe.as_mut().as_pin_mut().expect("guarded by is_some").await }, if probe.is_some() => {
                probe.set(None);
                match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(safe_message(&e)),
                    Err(_) => {
                        return Ended::Lost(format!(
                            "no answer to a heartbeat within {HEARTBEAT_ANSWER:?}"
                        ))
                    }
                }
            }
        }
    }
}

/// The last revision a listening session relayed, and what a new announcement's revision says
/// about the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revisions {
    last: u64,
}

/// What an announcement's revision says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sequence {
    /// The next revision, or another event of the last one (a write announces each code it
    /// changed under one revision), or an older one (see [`Revisions::observe`]).
    InOrder,
    /// At least one revision between the last one and this one was never announced here.
    Missed,
}

impl Revisions {
    /// Takes in an announcement's revision.
    ///
    /// One more than the last is the expected next write; more than that, a write this session
    /// never heard of (a notification lost, or written without one): the cache must catch up
    /// on what it missed. Revisions commit in order and one at a time
    /// (`revision::record_write`), and PostgreSQL delivers a session's notifications in commit
    /// order, so no legitimate announcement comes early.
    ///
    /// At or below the last one is the same write again (its other codes) or a write that
    /// committed after `LISTEN` but before the session read its starting revision: those are
    /// announced to it and counted in that revision already. Either way it is relayed as any
    /// other, and the last revision does not go back: a deletion is idempotent, and a creation
    /// is read back by ID, so relaying it again only repeats what the cache holds, whereas
    /// dropping it could lose a write the node's snapshot predates.
    fn observe(&mut self, revision: u64) -> Sequence {
        let sequence = if revision > self.last.saturating_add(1) {
            Sequence::Missed
        } else {
            Sequence::InOrder
        };
        self.last = self.last.max(revision);
        sequence
    }
}

/// Turns one announcement into change events: a resync if it shows that an announcement was
/// missed, then its own event. `Err` once the stream is dropped.
async fn relay(
    shared: &Shared,
    instance_id: &str,
    note: &Notification,
    revisions: &mut Revisions,
    tx: &ChangeSender,
) -> Result<(), crate::provider::Closed> {
    let Some(Announcement {
        event,
        origin,
        revision,
    }) = decode(note.payload())
    else {
        // Another version's announcement (a rolling upgrade): its writer may keep no change
        // log, so only a full snapshot is sure to hold its change.
        tracing::warn!("unreadable AppCode change notification; reloading every code");
        return tx.send(Change::Reload).await;
    };
    // Own-origin creations (skipped below) count too: their revision was taken all the same.
    let last = revisions.last;
    if revisions.observe(revision) == Sequence::Missed {
        tracing::info!(
            %instance_id,
            last,
            revision,
            "missed an AppCode change notification; resyncing"
        );
        tx.send(Change::Resync).await?;
    }
    // After a resync the event is relayed anyway: the cache applies it at once, whereas the
    // resync takes a round trip to the store.
    match event.kind {
        // The write's other changes are only in the log.
        EventKind::More => tx.send(Change::Resync).await,
        EventKind::Deleted => {
            tx.send(Change::RemoveId(event.app_code_id.to_owned()))
                .await
        }
        // This store wrote it; the management API that called it has cached the code.
        EventKind::Created if origin == shared.origin => Ok(()),
        // The event does not say whether the app's ACL or its quota changed: both are read.
        // The management API applies an ACL it wrote to this node's cache, so that is skipped
        // for this store's own writes; a quota change (a quota updated or deleted changes every
        // app bound to it) is applied here for every node, the writer's included.
        // The app's signing key is read for every origin too: a secret reset must refuse the
        // old secret on every node, the writer's included, at once.
        EventKind::Policy => {
            let own = origin == shared.origin;
            match app_policy(shared, instance_id, event.app_id, !own).await {
                Ok(Policy { acl, quota, key }) => {
                    if !own {
                        tx.send(Change::AppAcl {
                            app_id: event.app_id.to_owned(),
                            acl: acl.map(Arc::new),
                        })
                        .await?;
                    }
                    tx.send(Change::AppQuota {
                        app_id: event.app_id.to_owned(),
                        quota: quota.map(Arc::new),
                    })
                    .await?;
                    tx.send(Change::AppKey {
                        app_id: event.app_id.to_owned(),
                        key: key.map(Arc::new),
                    })
                    .await
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        app_id = %event.app_id,
                        "cannot read a changed app's ACL, quota or key; resyncing"
                    );
                    tx.send(Change::Resync).await
                }
            }
        }
        EventKind::Created => match app_code_by_id(shared, instance_id, event.app_code_id).await {
            Ok(Some(record)) => {
                let identity = record.identity();
                tx.send(Change::Upsert {
                    code: record.value,
                    identity,
                })
                .await
            }
            // Deleted since; its deletion is announced after this.
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    app_code_id = %event.app_code_id,
                    "cannot read a new AppCode; resyncing"
                );
                tx.send(Change::Resync).await
            }
        },
    }
}

/// What an app named by an announcement has now: its ACL (decoded only `with_acl`), its quota
/// and its key, none of them once the app is gone.
async fn app_policy(
    shared: &Shared,
    instance_id: &str,
    app_id: &str,
    with_acl: bool,
) -> StoreResult<Policy> {
    let context = "read app ACL, quota and key";
    let row = shared
        .pool
        .call(context, async |conn| {
            let sql = concat!(
                "SELECT ",
                policy_columns!(),
                " FROM apps a",
                policy_joins!(),
                "WHERE a.instance_id = $1 AND a.id = $2"
            );
            conn.query_opt(context, sql, &[&instance_id, &app_id]).await
        })
        .await?;
    // No row: no such app, so it has no ACL, no quota and no key.
    let policy = row
        .map(|row| policy::read(&row, 0, app_id, with_acl, &shared.sealer, instance_id))
        .transpose()?;
    Ok(policy.unwrap_or_default())
}

/// The new code an announcement names, read back by ID (the cache needs its value).
async fn app_code_by_id(
    shared: &Shared,
    instance_id: &str,
    app_code_id: &str,
) -> StoreResult<Option<AppCodeRecord>> {
    shared
        .pool
        .call("read AppCode", async |conn| {
            ops::app_code_by_id(conn, &shared.sealer, instance_id, app_code_id).await
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_skipped_is_a_missed_announcement() {
        let mut revisions = Revisions { last: 4 };
        // The next write, then its other codes.
        assert_eq!(revisions.observe(5), Sequence::InOrder);
        assert_eq!(revisions.observe(5), Sequence::InOrder);
        // Revision 6 never arrived.
        assert_eq!(revisions.observe(7), Sequence::Missed);
        assert_eq!(revisions.last, 7);
        // Older than the last: relayed, and the last one stays.
        assert_eq!(revisions.observe(3), Sequence::InOrder);
        assert_eq!(revisions.last, 7);
        assert_eq!(revisions.observe(8), Sequence::InOrder);
        // An instance never written starts at 0: its first write is 1.
        assert_eq!(Revisions { last: 0 }.observe(1), Sequence::InOrder);
        assert_eq!(Revisions { last: 0 }.observe(2), Sequence::Missed);
        assert_eq!(
            Revisions { last: u64::MAX }.observe(u64::MAX),
            Sequence::InOrder
        );
    }
}
