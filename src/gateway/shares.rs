//! How the workers that accept on one socket share its connections.
//!
//! The kernel wakes every worker waiting on the socket for a new connection, and the first to
//! call `accept` takes it. A client that opens its connections in a burst (a load balancer's
//! or a client library's pool, wrk) would give all of them to whichever worker woke first, and
//! a keep-alive connection stays with its worker for life: the other cores would serve nothing
//! (seen with a scheduler trace: one worker of two served all 32 connections of a `wrk -c32`
//! run, and requests waited for that worker's core while the other sat idle).
//!
//! So a worker serving more than one connection over the least busy worker's count lets that
//! worker take the next one, and waits for the counts to change instead of for a timer: a
//! worker never stands aside while it is itself the least busy, so some worker is always
//! accepting, and nothing waits on a clock to be accepted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// How many more connections than the least busy worker a worker may serve and still accept.
const SLACK: usize = 1;

/// The connection counts of the workers that accept on one socket.
#[derive(Debug)]
pub(crate) struct Shares {
    serving: Box<[AtomicUsize]>,
    /// Which workers are in their accept loop: one that has stopped (shut down, or its thread
    /// failed) takes no connection, so its count must not hold the others back.
    accepting: Box<[AtomicBool]>,
    changed: Notify,
}

impl Shares {
    /// Shares for `workers` workers (one takes every connection, and only counts them).
    pub(crate) fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            serving: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            accepting: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            changed: Notify::new(),
        })
    }

    /// Worker `worker`'s view of these shares.
    pub(crate) fn worker(self: &Arc<Self>, worker: usize) -> Share {
        assert!(worker < self.serving.len(), "no such worker");
        Share {
            shares: Arc::clone(self),
            worker,
        }
    }
}

/// How many connections each gateway worker serves now, read at scrape time: a worker far
/// above the others would show that its connections are not spread.
///
/// ```
/// use apig_appcode::gateway::Gateway;
/// use apig_appcode::{AppCodeAuthLayer, AppCodeCache};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let auth = AppCodeAuthLayer::new(AppCodeCache::new());
/// let gateway = Gateway::new(auth, "127.0.0.1:8000".parse().unwrap()).workers(2);
/// let per_worker = gateway.worker_connections();
/// let running = gateway.spawn(listener, stopped)?;
/// assert_eq!(per_worker.get(), [0, 0]);
/// stop.send(true).ok();
/// running.join().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WorkerConnections(pub(crate) Arc<Shares>);

impl WorkerConnections {
    /// The connections each worker serves now, by worker index.
    pub fn get(&self) -> Vec<usize> {
        self.0
            .serving
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

/// One worker's share of a socket's connections.
#[derive(Debug, Clone)]
pub(crate) struct Share {
    shares: Arc<Shares>,
    worker: usize,
}

impl Share {
    /// Whether this worker should accept the next connection: it serves at most [`SLACK`]
    /// more than the least busy worker that is accepting.
    pub(crate) fn may_accept(&self) -> bool {
        let Shares {
            serving, accepting, ..
        } = &*self.shares;
        let mine = serving[self.worker].load(Ordering::Relaxed);
        let least = serving
            .iter()
            .zip(accepting.iter())
            .filter(|(_, on)| on.load(Ordering::Relaxed))
            .map(|(n, _)| n.load(Ordering::Relaxed))
            .min()
            .unwrap_or(mine);
        mine <= least + SLACK
    }

    /// Marks this worker as accepting until the returned guard is dropped (when its accept
    /// loop ends, by shutdown or by a panic unwinding).
    pub(crate) fn accepting(&self) -> Accepting {
        self.shares.accepting[self.worker].store(true, Ordering::Relaxed);
        self.shares.changed.notify_waiters();
        Accepting(self.clone())
    }

    /// Waits until this worker may accept again. The shares change only when a connection
    /// opens or closes or a worker starts or stops accepting, and each change wakes the waiting
    /// workers to look again.
    pub(crate) async fn turn(&self) {
        loop {
            let changed = self.shares.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change between the two is not missed.
            changed.as_mut().enable();
            if self.may_accept() {
                return;
            }
            changed.await;
        }
    }

    /// Counts a connection this worker serves until the returned guard is dropped.
    pub(crate) fn serve(&self) -> Serving {
        self.shares.serving[self.worker].fetch_add(1, Ordering::Relaxed);
        self.shares.changed.notify_waiters();
        Serving(self.clone())
    }
}

/// A worker in its accept loop, until dropped.
#[derive(Debug)]
pub(crate) struct Accepting(Share);

impl Drop for Accepting {
    fn drop(&mut self) {
        let Share { shares, worker } = &self.0;
        shares.accepting[*worker].store(false, Ordering::Relaxed);
        shares.changed.notify_waiters();
    }
}

/// A connection counted in its worker's share, until dropped.
#[derive(Debug)]
pub(crate) struct Serving(Share);

impl Drop for Serving {
    fn drop(&mut self) {
        let Share { shares, worker } = &self.0;
        shares.serving[*worker].fetch_sub(1, Ordering::Relaxed);
        shares.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_always_accepts_and_counts_its_connections() {
        let shares = Shares::new(1);
        let only = shares.worker(0);
        let held: Vec<_> = (0..3).map(|_| only.serve()).collect();
        assert!(only.may_accept());
        assert_eq!(WorkerConnections(Arc::clone(&shares)).get(), [3]);
        drop(held);
        assert_eq!(WorkerConnections(shares).get(), [0]);
    }

    #[test]
    fn a_burst_of_connections_is_spread_over_the_workers() {
        let shares = Shares::new(2);
        let (a, b) = (shares.worker(0), shares.worker(1));
        let _on = (a.accepting(), b.accepting());
        // Worker a woke first and would take the whole burst.
        let mut held = vec![a.serve()];
        assert!(
            a.may_accept(),
            "one over the least busy is within the slack"
        );
        held.push(a.serve());
        assert!(!a.may_accept(), "two over: the other worker takes the next");
        assert!(b.may_accept(), "the least busy worker always accepts");
        held.push(b.serve());
        assert!(a.may_accept());
        drop(held);
        assert!(a.may_accept() && b.may_accept());
    }

    #[test]
    fn a_worker_that_stopped_accepting_holds_nobody_back() {
        let shares = Shares::new(2);
        let (a, b) = (shares.worker(0), shares.worker(1));
        let a_on = a.accepting();
        let b_on = b.accepting();
        let held: Vec<_> = (0..2).map(|_| a.serve()).collect();
        assert!(!a.may_accept());
        // b's loop ended (its thread died, say) with no connection: a takes them all.
        drop(b_on);
        assert!(a.may_accept());
        let more: Vec<_> = (0..5).map(|_| a.serve()).collect();
        assert!(a.may_accept());
        drop((held, more, a_on));
    }

    /// `share` waiting for its turn, checked to be waiting (it is over its share).
    async fn standing_aside(share: &Share) -> tokio::task::JoinHandle<()> {
        let waiting = tokio::spawn({
            let share = share.clone();
            async move { share.turn().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the worker is over its share");
        waiting
    }

    #[tokio::test]
    async fn a_worker_that_stops_accepting_wakes_the_one_standing_aside() {
        let shares = Shares::new(2);
        let (a, b) = (shares.worker(0), shares.worker(1));
        let (_a_on, b_on) = (a.accepting(), b.accepting());
        let _held = (a.serve(), a.serve());
        let waiting = standing_aside(&a).await;
        drop(b_on);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_worker_standing_aside_resumes_when_the_counts_change() {
        let shares = Shares::new(2);
        let (a, b) = (shares.worker(0), shares.worker(1));
        let _on = (a.accepting(), b.accepting());
        let (first, second) = (a.serve(), a.serve());
        let waiting = standing_aside(&a).await;
        // Either the other worker taking one or one of a's own closing lets it accept again.
        let taken = b.serve();
        waiting.await.unwrap();
        drop((first, second, taken));
        let (_c, d) = (a.serve(), a.serve());
        let waiting = standing_aside(&a).await;
        drop(d);
        waiting.await.unwrap();
    }
}
