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
//! every request, flushed every byte and found the socket empty for a second ([`PARK_DELAY`]:
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

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::util::Oneshot;
use tower_service::Service;

use super::limits::Limits;
use super::listener::Listening;
use crate::layer::ConnectionInfo;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Milliseconds since a process-wide origin, plus one (0 means "not set").
fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// What the deadline watcher needs to know about a connection.
#[derive(Debug)]
pub(crate) struct ConnState {
    in_flight: AtomicU32,
    /// When the first byte of a request arrived (0: no request being read).
    reading_since: AtomicU64,
    /// When the last request finished.
    idle_since: AtomicU64,
    /// [`READ_BLOCKED`], [`WRITE_BLOCKED`], [`SERVED`]: what the socket and hyper left.
    flags: AtomicU8,
}

/// The socket's last read found nothing to read.
const READ_BLOCKED: u8 = 1;
/// The socket's last write or flush could not finish: bytes are waiting in a buffer.
const WRITE_BLOCKED: u8 = 2;
/// A request started since the current hyper connection was made.
const SERVED: u8 = 4;

/// How long an HTTP/1 connection stays whole with no request in progress before it is taken
/// apart. A client that sends its next request at once (most of those under load) keeps its
/// hyper connection, so it pays for no new one; and a request body may still be arriving after
/// an early answer, which hyper must see to the end to keep the connection.
const PARK_DELAY: Duration = Duration::from_secs(1);

/// Whether an HTTP/1 connection may be taken apart.
enum Park {
    No,
    Now,
    /// Once idle until then (from [`now_ms`]).
    At(u64),
}

impl ConnState {
    /// The state of a connection accepted at `accepted` (from [`now_ms`]). An HTTP/1 one owes
    /// its first request's headers within the header deadline of that moment.
    fn new(accepted: u64, awaiting_first_request: bool) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicU32::new(0),
            reading_since: AtomicU64::new(if awaiting_first_request { accepted } else { 0 }),
            idle_since: AtomicU64::new(now_ms()),
            flags: AtomicU8::new(0),
        })
    }

    fn set_flag(&self, flag: u8, on: bool) {
        let flags = self.flags.load(Ordering::Relaxed);
        if (flags & flag != 0) != on {
            self.flags.store(flags ^ flag, Ordering::Relaxed);
        }
    }

    /// Whether an HTTP/1 connection may be taken apart, as far as the socket tells: no request
    /// in progress, nothing waiting to be written, nothing more to read, for [`PARK_DELAY`].
    fn park(&self) -> Park {
        if self.in_flight.load(Ordering::Relaxed) != 0
            || self.flags.load(Ordering::Relaxed) & (READ_BLOCKED | WRITE_BLOCKED) != READ_BLOCKED
        {
            return Park::No;
        }
        let at = self.parkable_at();
        if now_ms() >= at {
            Park::Now
        } else {
            Park::At(at)
        }
    }

    fn parkable_at(&self) -> u64 {
        let idle = self.idle_since.load(Ordering::Relaxed);
        idle.saturating_add(PARK_DELAY.as_millis() as u64)
    }

    fn saw_bytes(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.reading_since.load(Ordering::Relaxed) == 0
        {
            self.reading_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// Counts a request in progress on its connection until dropped (with the response body).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.reading_since.store(0, Ordering::Relaxed);
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in progress until it is sent.
pub(crate) struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Adapts a tower service to hyper's, counting each request in progress on the connection and
/// telling the service about the connection.
struct HyperService<S> {
    listening: Arc<Listening<S>>,
    state: Arc<ConnState>,
    info: ConnectionInfo,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for HyperService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Unpin,
    S::Future: Unpin,
{
    type Response = Response<Tracked<B>>;
    type Error = S::Error;
    type Future = TrackedCall<Oneshot<S, Request<Incoming>>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(&self.state);
        self.state.set_flag(SERVED, true);
        req.extensions_mut().insert(self.info);
        TrackedCall {
            call: Oneshot::new(self.listening.service.clone(), req),
            in_flight: Some(in_flight),
        }
    }
}

/// A service call whose response body carries the request's [`InFlight`].
struct TrackedCall<F> {
    call: F,
    in_flight: Option<InFlight>,
}

impl<F, B, E> Future for TrackedCall<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = Result<Response<Tracked<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let res = std::task::ready!(Pin::new(&mut self.call).poll(cx))?;
        let in_flight = self.in_flight.take().expect("polled after completion");
        Poll::Ready(Ok(res.map(|inner| Tracked {
            inner,
            _in_flight: in_flight,
        })))
    }
}

/// The client's socket, noting when request bytes arrive while no request is in progress.
struct Watched<T> {
    io: T,
    state: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        self.state.set_flag(READ_BLOCKED, polled.is_pending());
        if buf.filled().len() > before {
            self.state.saw_bytes();
        }
        polled
    }
}

impl<T> Watched<T> {
    fn written<R>(&self, polled: Poll<R>) -> Poll<R> {
        self.state.set_flag(WRITE_BLOCKED, polled.is_pending());
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.written(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.written(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.written(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a listener serves: a tower service of requests, cloned for each connection.
pub(crate) trait ConnectionService<B>:
    Service<
        Request<Incoming>,
        Response = Response<B>,
        Error: Into<BoxError>,
        Future: Send + Unpin + 'static,
    > + Clone
    + Send
    + Sync
    + Unpin
    + 'static
{
}

impl<S, B> ConnectionService<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Error: Into<BoxError>,
            Future: Send + Unpin + 'static,
        > + Clone
        + Send
        + Sync
        + Unpin
        + 'static
{
}

/// What such a service answers with.
pub(crate) trait ResponseBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Unpin + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: Body<Data = Bytes, Error: Into<BoxError>> + Unpin + Send + 'static
{
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Why a connection ended before serving anything.
#[derive(Debug)]
enum Refused {
    Silent,
    Closed,
    Io(std::io::Error),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Silent => f.write_str("sent nothing within the header deadline"),
            Self::Closed => f.write_str("closed before sending a request"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Peeks at a plain connection until it shows which protocol it speaks, without consuming.
async fn detect(stream: &TcpStream) -> Result<Protocol, Refused> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await.map_err(Refused::Io)?;
        if n == 0 {
            return Err(Refused::Closed);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Ok(Protocol::Http2);
        }
        // A partial preface: peek returns at once while those bytes sit unread, so wait a
        // little for the rest (bounded by the caller's deadline).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
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
            let proto = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            if proto == Protocol::Http2 {
                state.reading_since.store(0, Ordering::Relaxed);
            }
            boxed(|| run(tls, proto, state, origin, info, listening, shutdown)).await;
        }
    }
}

/// The future `make` returns, on the heap. Made in a plain function: a future made in an
/// `async fn` keeps its room in that function's state even after it is moved into a box.
fn boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::pin(make())
}

/// What the deadline watcher decides when its timer fires.
enum Verdict {
    /// Check again at this time (from [`now_ms`]).
    Wait(u64),
    /// No request in progress for the keep-alive deadline: close once idle.
    Idle,
    /// Request headers took too long: close now.
    HeadersLate,
}

fn verdict(state: &ConnState, proto: Protocol, limits: &Limits) -> Verdict {
    let now = now_ms();
    let at = |since_ms: u64, d: Duration| since_ms.saturating_add(d.as_millis() as u64);
    let wait = Verdict::Wait;
    if state.in_flight.load(Ordering::Relaxed) > 0 {
        return wait(at(now, limits.header_timeout.min(limits.keepalive_timeout)));
    }
    let reading = state.reading_since.load(Ordering::Relaxed);
    if proto == Protocol::Http1 && reading != 0 {
        let deadline = at(reading, limits.header_timeout);
        return if now >= deadline {
            Verdict::HeadersLate
        } else {
            wait(deadline)
        };
    }
    let idle = state.idle_since.load(Ordering::Relaxed);
    let deadline = at(idle, limits.keepalive_timeout);
    if now >= deadline {
        return Verdict::Idle;
    }
    // Wake up when the connection may be taken apart.
    let parkable = state.parkable_at();
    if proto == Protocol::Http1 && now < parkable {
        return wait(parkable.min(deadline));
    }
    wait(deadline)
}

/// The instant of `ms` (from [`now_ms`]), for a timer.
fn instant_of(ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms()))
}

/// The client's transport, whose socket can be waited on for bytes without reading them.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn socket(&self) -> &TcpStream;
}

impl Socket for Watched<TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.io
    }
}

impl Socket for tokio_rustls::server::TlsStream<Watched<TcpStream>> {
    fn socket(&self) -> &TcpStream {
        &self.get_ref().0.io
    }
}

/// A transport that first gives back the bytes an earlier hyper connection read and did not use.
struct Rewind<T> {
    prefix: Bytes,
    io: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A hyper connection as [`drive`] sees it.
trait Phase {
    /// Whether it can be taken apart while idle (HTTP/1).
    const PARKS: bool;
    /// Polls it; HTTP/1 without shutting the socket, which [`linger`] does.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>>;
    fn graceful(&mut self);
}

type H1<IO, S> = http1::Connection<TokioIo<Rewind<IO>>, S>;

impl<IO, S> Phase for Box<H1<IO, S>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Unpin,
    S::Future: Unpin,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<BoxError>,
{
    const PARKS: bool = true;

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.poll_without_shutdown(cx)
    }

    fn graceful(&mut self) {
        Pin::new(&mut **self).graceful_shutdown();
    }
}

impl<IO, S> Phase for Box<http2::Connection<TokioIo<IO>, S, TokioExecutor>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as Body>::Data: Send,
    <S::ResBody as Body>::Error: Into<BoxError>,
{
    const PARKS: bool = false;

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        Pin::new(&mut **self).poll(cx)
    }

    fn graceful(&mut self) {
        Pin::new(&mut **self).graceful_shutdown();
    }
}

/// How a [`drive`] ended.
enum Ended {
    /// The connection is done (the client left, a deadline passed, or shutdown).
    Done,
    /// Idle with nothing in progress and nothing unsent: the connection may be taken apart.
    Parked,
}

/// What [`drive`] watches besides the connection: its deadlines and the shutdown signal.
struct Watch<'a> {
    state: &'a ConnState,
    proto: Protocol,
    origin: Origin,
    limits: &'a Limits,
    timer: Pin<&'a mut tokio::time::Sleep>,
    /// When the timer fires (from [`now_ms`]).
    armed: u64,
    shutdown: &'a mut watch::Receiver<bool>,
    stopping: bool,
}

/// What polling the connection in [`drive`] gave.
enum Step {
    Done(hyper::Result<()>),
    Parked,
    /// Not idle long enough yet: have the timer fire then.
    Arm(u64),
}

/// What [`Watch::next`] saw.
enum Signal {
    /// Nothing to do yet.
    Wait,
    /// Close the connection now.
    Close,
    /// No request for the keep-alive deadline: close it once idle, within the linger deadline.
    Idle,
    /// Shutdown started: close it once idle.
    Stop,
}

impl Watch<'_> {
    fn arm(&mut self, at: u64) {
        self.armed = at;
        self.timer.as_mut().reset(instant_of(at));
    }

    /// Waits until the timer fires or shutdown starts. `lingering`: the timer is the deadline of
    /// an idle close.
    async fn next(&mut self, lingering: bool) -> Signal {
        tokio::select! {
            () = &mut self.timer => {
                if lingering {
                    // The idle close did not finish within the linger deadline.
                    return Signal::Close;
                }
                match verdict(self.state, self.proto, self.limits) {
                    Verdict::Wait(at) => {
                        self.arm(at);
                        Signal::Wait
                    }
                    Verdict::Idle => {
                        tracing::trace!(listener = self.origin.listener, peer = %self.origin.peer, "closing an idle connection");
                        self.arm(now_ms() + self.limits.linger_timeout.as_millis() as u64);
                        Signal::Idle
                    }
                    Verdict::HeadersLate => {
                        tracing::debug!(listener = self.origin.listener, peer = %self.origin.peer, side = "client", "request headers not received within the header deadline; closing");
                        Signal::Close
                    }
                }
            }
            changed = self.shutdown.changed(), if !self.stopping => {
                if changed.is_err() || *self.shutdown.borrow() {
                    self.stopping = true;
                    return Signal::Stop;
                }
                Signal::Wait
            }
        }
    }
}

/// Serves `conn` until it ends, or (HTTP/1) until it is idle and may be taken apart.
///
/// `resumed`: the connection starts with bytes of a request that an earlier one read; it is
/// not taken apart again before that request has started, so a client sending its request a
/// byte at a time does not get a new hyper connection (and a copy of its bytes) for each.
async fn drive<C: Phase>(conn: &mut C, watch: &mut Watch<'_>, resumed: bool) -> Ended {
    watch.state.set_flag(SERVED, false);
    // Told to close (idle, shutdown, or a request in progress when it was to be taken apart):
    // hyper finishes what is in progress, then ends the connection.
    let mut closing = watch.stopping;
    let mut lingering = false;
    if closing {
        conn.graceful();
    }
    let result = loop {
        let (state, armed) = (watch.state, watch.armed);
        let polled = std::future::poll_fn(|cx| match conn.poll(cx) {
            Poll::Ready(done) => Poll::Ready(Step::Done(done)),
            Poll::Pending if C::PARKS && !closing => match state.park() {
                Park::No => Poll::Pending,
                // The timer is re-armed only when it would fire too late: once per idle period
                // at most, not once per request.
                Park::At(at) if at < armed => Poll::Ready(Step::Arm(at)),
                Park::At(_) => Poll::Pending,
                Park::Now if state.flags.load(Ordering::Relaxed) & SERVED == 0 => {
                    // Nothing parsed yet: hyper holds at most the start of a request.
                    if resumed {
                        Poll::Pending
                    } else {
                        Poll::Ready(Step::Parked)
                    }
                }
                Park::Now => {
                    // After an exchange hyper closes an idle connection at once: then it is
                    // taken apart. One with an exchange still in progress ends after it.
                    conn.graceful();
                    closing = true;
                    match conn.poll(cx) {
                        Poll::Ready(Ok(())) => Poll::Ready(Step::Parked),
                        Poll::Ready(Err(e)) => Poll::Ready(Step::Done(Err(e))),
                        Poll::Pending => Poll::Pending,
                    }
                }
            },
            Poll::Pending => Poll::Pending,
        });
        tokio::select! {
            step = polled => match step {
                Step::Done(done) => break done,
                Step::Parked => return Ended::Parked,
                Step::Arm(at) => watch.arm(at),
            },
            signal = watch.next(lingering) => match signal {
                Signal::Wait => {}
                Signal::Close => break Ok(()),
                Signal::Idle | Signal::Stop => {
                    lingering |= matches!(signal, Signal::Idle);
                    if !closing {
                        conn.graceful();
                        closing = true;
                    }
                }
            },
        }
    };
    if let Err(e) = result {
        tracing::debug!(listener = watch.origin.listener, peer = %watch.origin.peer, side = "client", error = %e, "connection ended with an error");
    }
    Ended::Done
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
    let limits = listening.limits;
    let first = match verdict(&state, proto, &limits) {
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
        limits: &limits,
        timer,
        armed: first,
        shutdown: &mut shutdown,
        stopping,
    };
    let mut service = HyperService {
        listening,
        state: Arc::clone(&state),
        info,
    };
    if proto == Protocol::Http2 {
        // Boxed: an HTTP/1 connection's task does not carry HTTP/2's state.
        let mut conn = Box::new(
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(limits.h2_ping_interval))
                .keep_alive_timeout(limits.h2_ping_timeout)
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
                .serve_connection(TokioIo::new(io), service),
        );
        let ended = drive(&mut conn, &mut watch, resumed).await;
        let parts = conn.into_parts();
        (io, service) = (parts.io.into_inner(), parts.service);
        if let Ended::Done = ended {
            return linger(io, limits.linger_timeout).await;
        }
        tracing::trace!(listener = origin.listener, peer = %origin.peer, kept = parts.read_buf.len(), "idle: the connection's buffers are released");
        // Copied: the bytes of a request begun share hyper's whole read buffer.
        if !parts.read_buf.is_empty() {
            let mut prefix = Vec::with_capacity(parts.read_buf.len() + io.prefix.len());
            prefix.extend_from_slice(&parts.read_buf);
            prefix.extend_from_slice(&io.prefix);
            io.prefix = prefix.into();
        }
        drop(parts.read_buf);
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

/// Half-closes the connection, then reads and discards what the client still sends, for up to
/// `timeout`, so that an answer sent before the request was read reaches it ahead of a reset.
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, timeout: Duration) {
    let drain = async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}
