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
//! One timer per connection watches these deadlines. It is re-armed when it fires, not on every
//! request: a request costs two atomic counters and two clock reads.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
use tokio_rustls::TlsAcceptor;
use tower::util::Oneshot;
use tower_service::Service;

use super::limits::Limits;
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
}

impl ConnState {
    /// The state of a connection accepted at `accepted` (from [`now_ms`]). An HTTP/1 one owes
    /// its first request's headers within the header deadline of that moment.
    fn new(accepted: u64, awaiting_first_request: bool) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicU32::new(0),
            reading_since: AtomicU64::new(if awaiting_first_request { accepted } else { 0 }),
            idle_since: AtomicU64::new(now_ms()),
        })
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
    service: S,
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
        req.extensions_mut().insert(self.info);
        TrackedCall {
            call: Oneshot::new(self.service.clone(), req),
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
        if buf.filled().len() > before {
            self.state.saw_bytes();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
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

/// Serves `stream` until the client leaves, a deadline passes or `shutdown` turns true (then
/// it finishes the requests in progress).
///
/// `service` answers every request of the connection; a request it gets carries
/// [`ConnectionInfo`].
pub(crate) async fn serve<S, B>(
    stream: TcpStream,
    origin: Origin,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    service: S,
    shutdown: watch::Receiver<bool>,
) where
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let accepted = now_ms();
    let _ = stream.set_nodelay(true);
    let info = ConnectionInfo {
        peer: origin.peer,
        tls: tls.is_some(),
    };
    let log_refused = |why: Refused| {
        tracing::debug!(listener = origin.listener, peer = %origin.peer, side = "client", "connection closed: {why}");
    };
    match tls {
        None => {
            let proto = match tokio::time::timeout(limits.header_timeout, detect(&stream)).await {
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
            // this pointer instead of the whole HTTP state machine inline.
            Box::pin(run(
                io, proto, state, origin, info, limits, service, shutdown,
            ))
            .await;
        }
        Some(acceptor) => {
            let deadline = tokio::time::Instant::now() + limits.header_timeout;
            // Nothing of TLS is allocated for a client that has not sent its hello yet: a
            // silent connection costs what a silent plain one does.
            match tokio::time::timeout_at(deadline, stream.readable()).await {
                Ok(Ok(())) => {}
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
            let accept = Box::pin(acceptor.accept(io));
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
            Box::pin(run(
                tls, proto, state, origin, info, limits, service, shutdown,
            ))
            .await;
        }
    }
}

/// What the deadline watcher decides when its timer fires.
enum Verdict {
    /// Check again at this time.
    Wait(Instant),
    /// No request in progress for the keep-alive deadline: close once idle.
    Idle,
    /// Request headers took too long: close now.
    HeadersLate,
}

fn verdict(state: &ConnState, proto: Protocol, limits: &Limits) -> Verdict {
    let now = now_ms();
    let at = |since_ms: u64, d: Duration| since_ms.saturating_add(d.as_millis() as u64);
    let wait = |deadline_ms: u64| {
        Verdict::Wait(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now)))
    };
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
    let deadline = at(
        state.idle_since.load(Ordering::Relaxed),
        limits.keepalive_timeout,
    );
    if now >= deadline {
        Verdict::Idle
    } else {
        wait(deadline)
    }
}

/// Either protocol's connection, so one loop can watch both.
// One per connection, pinned in its task: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Served<IO, S>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming>,
{
    H1(http1::Connection<IO, S>),
    H2(http2::Connection<IO, S, TokioExecutor>),
}

#[allow(clippy::too_many_arguments)]
async fn run<IO, S, B>(
    io: IO,
    proto: Protocol,
    state: Arc<ConnState>,
    origin: Origin,
    info: ConnectionInfo,
    limits: Limits,
    service: S,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let hyper_service = HyperService {
        service,
        state: Arc::clone(&state),
        info,
    };
    let io = TokioIo::new(io);
    let mut conn = match proto {
        Protocol::Http1 => Served::H1(
            http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(io, hyper_service),
        ),
        Protocol::Http2 => Served::H2(
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(limits.h2_ping_interval))
                .keep_alive_timeout(limits.h2_ping_timeout)
                .serve_connection(io, hyper_service),
        ),
    };

    let first = match verdict(&state, proto, &limits) {
        Verdict::Wait(at) => at,
        _ => Instant::now(),
    };
    let timer = tokio::time::sleep_until(first.into());
    tokio::pin!(timer);
    let mut closing = false;
    let mut stopping = *shutdown.borrow();
    if stopping {
        graceful(&mut conn);
    }
    let result = loop {
        tokio::select! {
            done = poll_conn(&mut conn) => break done,
            () = &mut timer => {
                if closing {
                    // The idle close did not finish within the linger deadline.
                    break Ok(());
                }
                match verdict(&state, proto, &limits) {
                    Verdict::Wait(at) => timer.as_mut().reset(at.into()),
                    Verdict::Idle => {
                        tracing::trace!(listener = origin.listener, peer = %origin.peer, "closing an idle connection");
                        graceful(&mut conn);
                        closing = true;
                        timer.as_mut().reset((Instant::now() + limits.linger_timeout).into());
                    }
                    Verdict::HeadersLate => {
                        tracing::debug!(listener = origin.listener, peer = %origin.peer, side = "client", "request headers not received within the header deadline; closing");
                        break Ok(());
                    }
                }
            }
            changed = shutdown.changed(), if !stopping => {
                if changed.is_err() || *shutdown.borrow() {
                    stopping = true;
                    graceful(&mut conn);
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(listener = origin.listener, peer = %origin.peer, side = "client", error = %e, "connection ended with an error");
    }
    if let Served::H1(conn) = conn {
        let io = conn.into_parts().io.into_inner();
        linger(io, limits.linger_timeout).await;
    }
}

fn graceful<IO, S>(conn: &mut Served<IO, S>)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Unpin,
    S::Future: Unpin,
    S::ResBody: 'static,
    S::Future: Send + 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: Send,
    <S::ResBody as Body>::Data: Send,
{
    match conn {
        Served::H1(c) => Pin::new(c).graceful_shutdown(),
        Served::H2(c) => Pin::new(c).graceful_shutdown(),
    }
}

/// Polls the connection; HTTP/1 without shutting the socket, which [`linger`] does.
fn poll_conn<'a, IO, S>(conn: &'a mut Served<IO, S>) -> impl Future<Output = hyper::Result<()>> + 'a
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Unpin,
    S::Future: Unpin,
    S::ResBody: 'static + Send,
    S::Future: Send + 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    <S::ResBody as Body>::Data: Send,
{
    std::future::poll_fn(move |cx| match conn {
        Served::H1(c) => c.poll_without_shutdown(cx),
        Served::H2(c) => Pin::new(c).poll(cx),
    })
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
