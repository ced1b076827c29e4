//! Serving one accepted connection, with a deadline for every phase.
//!
//! 1. **Before anything is known:** a plain connection is peeked until it shows HTTP/1 or the
//!    HTTP/2 preface; a TLS one does its handshake (ALPN picks the protocol). Both must finish
//!    within the header deadline, so a socket that sends nothing is closed.
//! 2. **HTTP/1:** the request headers must arrive within the header deadline of their first
//!    byte (of the connection's start, for the first request); a connection with no request in
//!    progress is closed after the keep-alive deadline. When the connection ends while the
//!    client may still be sending (an early 401 or 413), it is half-closed and drained for a
//!    moment ("lingering close"), so that the client reads the answer instead of a reset.
//! 3. **HTTP/2:** pings find dead peers; a connection with no open stream for the keep-alive
//!    deadline gets GOAWAY.
//!
//! **An idle HTTP/1 connection holds no buffer.** hyper keeps its read buffer (8 KiB at least)
//! and its write buffer for the life of a connection, so a client that keeps its connection
//! open between requests would hold them while it says nothing. Instead, once hyper has answered
//! every request, flushed every byte and found the socket empty for a second ([`PARK_DELAY`](state::PARK_DELAY):
//! a client sending its next request at once keeps its hyper connection), it is taken apart
//! ([`http1::Connection::into_parts`]): the socket and any bytes of a next request already read
//! are kept, the rest is freed, and the task waits for the socket to become readable with no
//! buffer at all. Then a new hyper connection serves the next exchange, reading those bytes first
//! ([`Rewind`]). hyper's state between two requests is only its buffers and the keep-alive flag,
//! so the client sees one connection; pipelined requests are still answered in order, since a
//! connection is only taken apart when nothing is left in progress.
//!
//! One timer per connection watches these deadlines and the moment an idle HTTP/1 connection may
//! be taken apart. It is re-armed when it fires, or when it would fire after that moment (at
//! most once per idle period), not on every request: a request costs two atomic counters and
//! three clock reads.

mod detect;
mod drive;
mod io;
mod service;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use self::detect::{detect, Protocol, Refused};
use self::drive::{drive, take_apart, verdict, Ended, Signal, Verdict, Watch};
use self::io::{linger, Rewind, Socket, Watched};
use self::service::HyperService;
pub(crate) use self::service::{ConnectionService, ResponseBody};
use self::state::{instant_of, now_ms, ConnState};
use super::limits::Limits;
use super::open_connections::OpenConnections;
use super::shares::Share;
use crate::layer::ConnectionInfo;

/// What one HTTP/2 stream may hold of its answer that the client's flow-control window or
/// socket will not take yet; hyper's default is 400 KiB. A client that opens many streams of
/// large answers and reads none has the gateway hold up to this much for each, until the send
/// deadline: with 100 such streams the process grew by 72 MB at hyper's default and by 25 MB
/// at this size (the rest is each exchange's upstream connection). Downloads through the
/// gateway (`h2load`, 10 MB and 100 kB bodies) measured no slower.
const H2_SEND_BUFFER: usize = 64 * 1024;

/// What one listener serves, and how; each of its connections shares it.
#[derive(Clone)]
pub(crate) struct Listening<S> {
    pub(crate) name: &'static str,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limits: Limits,
    pub(crate) open: OpenConnections,
    /// This worker's share of the connections, where several workers accept on one socket.
    pub(crate) share: Option<Share>,
    pub(crate) service: S,
}

/// Where a served connection came from, for the service and the logs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) listener: &'static str,
    pub(crate) peer: SocketAddr,
}

/// Serves `stream`, from `peer`, until the client leaves, a deadline passes or `shutdown` turns
/// true (then it finishes the requests in progress).
///
/// The listener's service answers every request of the connection; a request it gets carries
/// [`ConnectionInfo`]. The listener is shared, not copied: a connection that never speaks
/// costs its task and socket, not a copy of the service and the settings.
pub(crate) async fn serve<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    listening: Arc<Listening<S>>,
    shutdown: watch::Receiver<bool>,
) where
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let accepted = now_ms();
    let _ = stream.set_nodelay(true);
    let origin = Origin {
        listener: listening.name,
        peer,
    };
    let info = ConnectionInfo {
        peer,
        tls: listening.tls.is_some(),
    };
    let header_timeout = listening.limits.header_timeout;
    let log_refused = |why: Refused| {
        tracing::debug!(listener = origin.listener, peer = %origin.peer, side = "client", "connection closed: {why}");
    };
    match &listening.tls {
        None => {
            let proto = match tokio::time::timeout(header_timeout, detect(&stream)).await {
                Ok(Ok(p)) => p,
                Ok(Err(why)) => return log_refused(why),
                Err(_) => return log_refused(Refused::Silent),
            };
            let state = ConnState::new(accepted, proto == Protocol::Http1);
            let io = Watched {
                io: stream,
                state: Arc::clone(&state),
            };
            // Boxed: the task of a connection that has not spoken yet (or never will) holds
            // a pointer instead of the whole HTTP state machine inline.
            boxed(|| run(io, proto, state, origin, info, listening, shutdown)).await;
        }
        Some(acceptor) => {
            let deadline = tokio::time::Instant::now() + header_timeout;
            // Nothing of TLS is allocated for a client that has not sent its hello yet: a
            // silent connection costs what a silent plain one does. A peek, not `readable()`,
            // which may report a new socket ready before it has a byte to read (it did for
            // every silent connection of the idle bench).
            match tokio::time::timeout_at(deadline, stream.peek(&mut [0u8; 1])).await {
                Ok(Ok(0)) => return log_refused(Refused::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return log_refused(Refused::Io(e)),
                Err(_) => return log_refused(Refused::Silent),
            }
            let state = ConnState::new(accepted, true);
            let io = Watched {
                io: stream,
                state: Arc::clone(&state),
            };
            // Boxed too: a handshake's state (the TLS session) stays out of every plain
            // connection's task.
            let accept = boxed(|| acceptor.accept(io));
            let tls = match tokio::time::timeout_at(deadline, accept).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return log_refused(Refused::Io(e)),
                Err(_) => return log_refused(Refused::Silent),
            };
            serve_tls(tls, state, origin, info, listening, shutdown).await;
        }
    }
}

/// The TLS connection `tls`, served from its protocol on, on the heap.
///
/// A plain function so that [`serve`] only moves the stream: rustc keeps room in an async
/// function's state for a local that was ever borrowed, across every later await, and the TLS
/// session (rustls' connection, over a KiB) would sit in the task of every connection, plain
/// or TLS, for its whole life.
fn serve_tls<S, B>(
    tls: tokio_rustls::server::TlsStream<Watched<TcpStream>>,
    state: Arc<ConnState>,
    origin: Origin,
    info: ConnectionInfo,
    listening: Arc<Listening<S>>,
    shutdown: watch::Receiver<bool>,
) -> Pin<Box<impl Future<Output = ()>>>
where
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let proto = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    };
    if proto == Protocol::Http2 {
        state.reading_since.store(0, Ordering::Relaxed);
    }
    Box::pin(run(tls, proto, state, origin, info, listening, shutdown))
}

/// The future `make` returns, on the heap. Made in a plain function: a future made in an
/// `async fn` keeps its room in that function's state even after it is moved into a box.
fn boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::pin(make())
}

#[allow(clippy::too_many_arguments)]
async fn run<IO, S, B>(
    io: IO,
    proto: Protocol,
    state: Arc<ConnState>,
    origin: Origin,
    info: ConnectionInfo,
    listening: Arc<Listening<S>>,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: Socket,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    // Read through the listener, not copied: every parked connection would keep a copy.
    let shared = Arc::clone(&listening);
    let limits = &shared.limits;
    let first = match verdict(&state, proto, limits) {
        Verdict::Wait(at) => at,
        _ => now_ms(),
    };
    let timer = tokio::time::sleep_until(instant_of(first));
    tokio::pin!(timer);
    let stopping = *shutdown.borrow();
    let mut watch = Watch {
        state: &state,
        proto,
        origin,
        limits,
        timer,
        armed: first,
        shutdown: &mut shutdown,
        stopping,
    };
    let mut service = HyperService {
        listening,
        state: Arc::clone(&state),
        info,
        streams: proto == Protocol::Http2,
    };
    if proto == Protocol::Http2 {
        // Boxed: an HTTP/1 connection's task does not carry HTTP/2's state.
        let mut conn = Box::new(
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(limits.h2_ping_interval))
                .keep_alive_timeout(limits.h2_ping_timeout)
                .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
                .max_send_buf_size(H2_SEND_BUFFER)
                .serve_connection(TokioIo::new(io), service),
        );
        drive(&mut conn, &mut watch, false).await;
        return;
    }
    let mut io = Rewind {
        prefix: Bytes::new(),
        io,
    };
    loop {
        let resumed = !io.prefix.is_empty();
        // Boxed: while the connection is idle, neither the hyper connection nor its buffers
        // are held.
        let mut conn = Box::new(
            http1::Builder::new()
                .header_read_timeout(None)
                .max_header_size(limits.max_header_size)
                .serve_connection(TokioIo::new(io), service),
        );
        let ended = drive(&mut conn, &mut watch, resumed).await;
        let kept;
        (io, service, kept) = take_apart(*conn);
        if let Ended::Done = ended {
            return linger(io, limits.linger_timeout).await;
        }
        tracing::trace!(listener = origin.listener, peer = %origin.peer, kept, "idle: the connection's buffers are released");
        // Waits for the socket even when bytes are kept: hyper has read them and found no whole
        // request, so the rest must come first.
        loop {
            tokio::select! {
                ready = io.io.socket().readable() => {
                    if ready.is_err() {
                        return;
                    }
                    break;
                }
                signal = watch.next(false) => match signal {
                    Signal::Wait => {}
                    Signal::Close => return,
                    Signal::Idle | Signal::Stop => return linger(io, limits.linger_timeout).await,
                },
            }
        }
    }
}
