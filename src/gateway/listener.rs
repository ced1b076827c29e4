//! Accepting connections on one listener, within its connection cap.
//!
//! Every connection counts against the listener's cap while it is open. One over the cap is
//! refused at once: a plain-HTTP client gets `503 APIG.0201` with `Connection: close`, a TLS
//! one a closed socket. Nothing is queued, so the process never runs out of descriptors and
//! the other listener keeps its share.
//!
//! The workers of the gateway listener all accept from one socket. The kernel wakes every
//! waiting worker for a new connection and the first to call `accept` takes it, so a worker
//! busy serving comes late and a free one takes the connection: nobody waits for a timer or for
//! a particular worker. A socket per worker (`SO_REUSEPORT`) was measured against it and lost:
//! the kernel assigns each connection to one socket by a hash, so connections queue behind a
//! busy worker while the other is idle (BENCHMARKS.md, "New connections").

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::connection::{self, ConnectionService, ResponseBody};
use super::limits::Limits;

/// The open connections of one listener, shared by the tasks (and threads) that accept on it,
/// and how many it refused at its cap.
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>, Arc<AtomicU64>);

impl OpenConnections {
    /// How many connections are open now.
    ///
    /// ```
    /// let open = apig_appcode::gateway::listener::OpenConnections::default();
    /// assert_eq!(open.get(), 0);
    /// ```
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// How many connections were refused at the cap since the start.
    ///
    /// ```
    /// let open = apig_appcode::gateway::listener::OpenConnections::default();
    /// assert_eq!(open.refused(), 0);
    /// ```
    pub fn refused(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }

    /// Counts a refusal; returns the new total.
    fn refuse(&self) -> u64 {
        self.1.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn try_open(&self, max: usize) -> Option<Slot> {
        let prev = self.0.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(Arc::clone(&self.0));
        (prev < max).then_some(slot)
    }
}

/// One open connection's place under the cap, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one listener serves, and how.
#[derive(Clone)]
pub(crate) struct Listening<S> {
    pub(crate) name: &'static str,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limits: Limits,
    pub(crate) open: OpenConnections,
    pub(crate) service: S,
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 77\r\n\
\r\n\
{\"error_code\":\"APIG.0201\",\"error_msg\":\"Too many connections\",\"request_id\":\"\"}";

/// Accepts on `listener` until `shutdown` turns true (see [`accept`]), then gives the open
/// connections up to `drain` to finish, and logs it if some did not.
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    listening: Listening<S>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) where
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let (name, open) = (listening.name, listening.open.clone());
    accept(listener, listening, shutdown).await;
    if !drained(&open, drain).await {
        tracing::warn!(
            listener = name,
            ?drain,
            "connections still open after the drain period"
        );
    }
}

/// Accepts on `listener` until `shutdown` turns true, serving each connection in its own task
/// on the current runtime.
async fn accept<S, B>(
    listener: TcpListener,
    listening: Listening<S>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: ConnectionService<B>,
    B: ResponseBody,
{
    if *shutdown.borrow() {
        return;
    }
    let listening = Arc::new(listening);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors, most likely: worth a pause, not an exit.
                    tracing::warn!(listener = listening.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
        };
        let Some(slot) = listening.open.try_open(listening.limits.max_connections) else {
            refuse(stream, peer, &listening);
            continue;
        };
        let conn = connection::serve(stream, peer, Arc::clone(&listening), shutdown.clone());
        tokio::spawn(async move {
            conn.await;
            drop(slot);
        });
    }
}

fn refuse<S>(stream: TcpStream, peer: SocketAddr, listening: &Listening<S>) {
    let refused = listening.open.refuse();
    // A flood of refusals must not become a flood of log lines: the 1st, 2nd, 4th, 8th...
    if refused.is_power_of_two() {
        tracing::warn!(
            listener = listening.name,
            %peer,
            max_connections = listening.limits.max_connections,
            refused_so_far = refused,
            "connection refused: the listener is at its connection cap"
        );
    }
    if listening.tls.is_none() {
        // Best effort: a fresh socket's send buffer takes this whole.
        let _ = stream.try_write(REFUSAL);
    }
}

/// Waits until `open` has no connection left, or `drain` has passed; says which.
async fn drained(open: &OpenConnections, drain: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + drain;
    while open.get() > 0 {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error_code"], "APIG.0201");
    }

    #[test]
    fn slots_count_open_connections_and_the_cap_refuses_one_more() {
        let open = OpenConnections::default();
        let a = open.try_open(2).unwrap();
        let b = open.try_open(2).unwrap();
        assert!(open.try_open(2).is_none());
        assert_eq!(open.get(), 2);
        drop(a);
        assert!(open.try_open(2).is_some());
        drop(b);
        assert_eq!(open.get(), 0);
    }
}
