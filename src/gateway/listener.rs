//! Accepting connections on one listener, within its connection cap.
//!
//! Every connection counts against the listener's cap while it is open. One over the cap is
//! refused at once: a plain-HTTP client gets `503 APIG.0201` with `Connection: close`, a TLS
//! one a closed socket. Nothing is queued, so the process never runs out of descriptors and
//! the other listener keeps its share.
//!
//! The workers of the gateway listener all accept from one socket. The kernel wakes every
//! waiting worker for a new connection and the first to call `accept` takes it, so a worker
//! busy serving comes late and a free one takes the connection; a worker already serving more
//! than its share stands aside until the counts change (`shares.rs`), so a burst of
//! connections is spread over the workers. Nobody waits for a timer. A socket per worker
//! (`SO_REUSEPORT`) was measured against it and lost: the kernel assigns each connection to one
//! socket by a hash, so connections queue behind a busy worker while the other is idle
//! (BENCHMARKS.md, "New connections").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::connection::{self, ConnectionService, Listening, ResponseBody};
pub use super::open_connections::OpenConnections;
use super::shares::Share;

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
    let _accepting = listening.share.as_ref().map(Share::accepting);
    loop {
        if let Some(share) = listening.share.as_ref().filter(|s| !s.may_accept()) {
            tokio::select! {
                () = share.turn() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
            continue;
        }
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
        let serving = listening.share.as_ref().map(Share::serve);
        let conn = connection::serve(stream, peer, Arc::clone(&listening), shutdown.clone());
        tokio::spawn(async move {
            conn.await;
            drop((slot, serving));
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
}
