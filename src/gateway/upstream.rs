//! One worker's HTTP/1.1 connections to the upstream.
//!
//! Each gateway worker thread owns an [`UpstreamPool`]: a stack of idle
//! `hyper::client::conn::http1` senders, most recently used first. A request takes one (or dials
//! a new connection), and the response body gives it back once the upstream has sent the whole
//! answer. Nothing crosses threads: the mutex is only ever taken by its own worker, so it costs
//! an uncontended lock, unlike a shared pool's channel and cross-thread wake-ups.
//!
//! What every worker shares is the count of exchanges in progress, capped at the gateway's
//! connection cap. That cap is the gateway's share of descriptors, two per connection: the
//! client's and, while it has a request upstream, the upstream's. An HTTP/1 connection has at
//! most one exchange at a time, but an HTTP/2 one up to 200: without the cap on exchanges, two
//! clients with streams to a slow upstream could take every descriptor the process has, and
//! with them every listener's `accept` and the store's files.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body_error::{Peer, ProxyBodyError};
use super::client_body::ClientBody;
use super::open_connections::{OpenConnections, Slot};
use crate::read_deadline::ReadDeadline;

/// How long dialling the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per worker; more are closed.
const MAX_IDLE: usize = 256;

/// Why the upstream gave no answer.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// The TCP connection could not be made.
    Connect(std::io::Error),
    /// Dialling took longer than [`CONNECT_TIMEOUT`].
    ConnectTimeout,
    /// As many exchanges as the gateway's connection cap are in progress already.
    Busy,
    /// The connection failed while sending the request or reading the answer.
    Exchange(hyper::Error),
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::ConnectTimeout => write!(f, "connect: no answer within {CONNECT_TIMEOUT:?}"),
            Self::Busy => {
                f.write_str("as many upstream exchanges as the connection cap are in progress")
            }
            Self::Exchange(e) => {
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

struct Idle {
    sender: SendRequest<ClientBody>,
    since: Instant,
}

/// The upstream exchanges in progress on every worker, and how many there may be.
#[derive(Debug, Clone)]
pub(crate) struct Exchanges {
    pub(crate) open: OpenConnections,
    pub(crate) max: usize,
}

/// A worker's idle connections to one upstream.
pub(crate) struct UpstreamPool {
    authority: Authority,
    keepalive: Duration,
    read_timeout: Duration,
    exchanges: Exchanges,
    idle: Mutex<Vec<Idle>>,
}

impl fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl UpstreamPool {
    /// A pool dialling `authority`, within `exchanges`; a connection idle for `keepalive` is
    /// not reused, and a response body that sends nothing for `read_timeout` while it is read
    /// fails.
    pub(crate) fn new(
        authority: Authority,
        keepalive: Duration,
        read_timeout: Duration,
        exchanges: Exchanges,
    ) -> Arc<Self> {
        Arc::new(Self {
            authority,
            keepalive,
            read_timeout,
            exchanges,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The upstream's `host:port`.
    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Sends `req` on an idle connection or a new one. A request that a reused connection
    /// refused before writing anything (the upstream closed it meanwhile) is sent again on
    /// another; one that was written is never sent twice.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<ClientBody>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let Some(exchange) = self.exchanges.open.try_open(self.exchanges.max) else {
            let refused = self.exchanges.open.refuse();
            // The 1st, 2nd, 4th, 8th... so that a flood of them is not a flood of log lines.
            if refused.is_power_of_two() {
                tracing::warn!(
                    side = "upstream",
                    max_exchanges = self.exchanges.max,
                    refused_so_far = refused,
                    "request refused: as many upstream exchanges as the connection cap are in progress"
                );
            }
            return Err(UpstreamError::Busy);
        };
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(res) => {
                    let (parts, body) = res.into_parts();
                    let body = PooledBody {
                        inner: body,
                        sender: Some(sender),
                        pool: Arc::clone(self),
                        deadline: ReadDeadline::new(self.read_timeout),
                        done: false,
                        _exchange: exchange,
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::Exchange(e.into_error())),
                },
            }
        }
    }

    fn take_idle(&self) -> Option<SendRequest<ClientBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() && conn.since.elapsed() < self.keepalive {
                return Some(conn.sender);
            }
        }
        None
    }

    fn put_back(&self, sender: SendRequest<ClientBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<SendRequest<ClientBody>, UpstreamError> {
        let addr = (
            self.authority.host(),
            self.authority.port_u16().unwrap_or(80),
        );
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Exchange)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(side = "upstream", error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// The upstream's response body; gives the connection back to its pool once read to the end.
///
/// An upstream that stops sending in the middle of it fails the body after the read deadline
/// (nginx's `proxy_read_timeout` applies between reads of the body too): otherwise a hung
/// backend would hold the client's connection and its own forever.
#[derive(Debug)]
pub(crate) struct PooledBody {
    inner: Incoming,
    sender: Option<SendRequest<ClientBody>>,
    pool: Arc<UpstreamPool>,
    deadline: ReadDeadline,
    done: bool,
    /// Its place among the exchanges in progress, given back with the body.
    _exchange: Slot,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = ProxyBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ProxyBodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(polled) => {
                this.deadline.progressed();
                this.done = polled.is_none();
                Poll::Ready(polled.map(|frame| {
                    frame.map_err(|error| ProxyBodyError::Read {
                        from: Peer::Upstream,
                        error,
                    })
                }))
            }
            Poll::Pending => {
                ready!(this.deadline.poll_expired(cx));
                let timeout = this.deadline.timeout();
                tracing::warn!(
                    side = "upstream",
                    ?timeout,
                    "the upstream stopped sending its response body; closing"
                );
                Poll::Ready(Some(Err(ProxyBodyError::Stalled {
                    from: Peer::Upstream,
                    after: timeout,
                })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body dropped half-read leaves the connection mid-message: hyper closes it when the
        // sender goes, which is what must happen.
        if let Some(sender) = self.sender.take() {
            if self.done || self.inner.is_end_stream() {
                self.pool.put_back(sender);
            }
        }
    }
}
