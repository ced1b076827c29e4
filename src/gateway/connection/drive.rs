//! Driving one hyper connection to its end, or (HTTP/1) until it is idle and may be taken apart,
//! while one timer watches its deadlines and the shutdown signal.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::detect::Protocol;
use super::io::Rewind;
use super::service::BoxError;
use super::state::{instant_of, now_ms, ConnState, Park, SERVED};
use super::Origin;
use crate::gateway::limits::Limits;

/// What the deadline watcher decides when its timer fires.
pub(super) enum Verdict {
    /// Check again at this time (from [`now_ms`]).
    Wait(u64),
    /// No request in progress for the keep-alive deadline: close once idle.
    Idle,
    /// Request headers took too long: close now.
    HeadersLate,
    /// The client has taken nothing of what is written to it for the send deadline (HTTP/2: of
    /// one stream's answer): close now.
    SendLate,
}

pub(super) fn verdict(state: &ConnState, proto: Protocol, limits: &Limits) -> Verdict {
    let now = now_ms();
    let at = |since_ms: u64, d: Duration| since_ms.saturating_add(d.as_millis() as u64);
    // Checked first: a client that reads nothing holds its connection busy, and the other
    // deadlines apply to idle ones.
    let blocked = state.stuck_since();
    let send_deadline = match blocked {
        0 => u64::MAX,
        since => at(since, limits.send_timeout),
    };
    if now >= send_deadline {
        return Verdict::SendLate;
    }
    let wait = |at: u64| Verdict::Wait(at.min(send_deadline));
    if state.in_flight.load(Ordering::Relaxed) > 0 {
        // Soon enough to see a write that starts to wait from now on.
        let check = limits
            .header_timeout
            .min(limits.keepalive_timeout)
            .min(limits.send_timeout);
        return wait(at(now, check));
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

/// A hyper connection as [`drive`] sees it.
pub(super) trait Phase {
    /// Whether it can be taken apart while idle (HTTP/1).
    const PARKS: bool;
    /// Polls it; HTTP/1 without shutting the socket, which [`linger`](super::io::linger) does.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>>;
    fn graceful(&mut self);
}

pub(super) type H1<IO, S> = http1::Connection<TokioIo<Rewind<IO>>, S>;

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

/// Takes an idle HTTP/1 connection apart: its transport, with the bytes of a next request that
/// hyper already read put back in front, its service, and how many bytes those were. hyper's
/// connection and buffers are freed.
///
/// A plain function for the reason given at [`serve_tls`](super::serve_tls): hyper's parts,
/// borrowed in `run`, would keep room for a second transport in every connection's state.
pub(super) fn take_apart<IO, S>(conn: H1<IO, S>) -> (Rewind<IO>, S, usize)
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody: Body<Error: Into<BoxError>> + 'static>,
{
    let parts = conn.into_parts();
    let mut io = parts.io.into_inner();
    let kept = parts.read_buf.len();
    // Copied: the bytes of a request begun share hyper's whole read buffer.
    if kept > 0 {
        let mut prefix = Vec::with_capacity(kept + io.prefix.len());
        prefix.extend_from_slice(&parts.read_buf);
        prefix.extend_from_slice(&io.prefix);
        io.prefix = prefix.into();
    }
    (io, parts.service, kept)
}

/// How a [`drive`] ended.
pub(super) enum Ended {
    /// The connection is done (the client left, a deadline passed, or shutdown).
    Done,
    /// Idle with nothing in progress and nothing unsent: the connection may be taken apart.
    Parked,
}

/// What [`drive`] watches besides the connection: its deadlines and the shutdown signal.
pub(super) struct Watch<'a> {
    pub(super) state: &'a ConnState,
    pub(super) proto: Protocol,
    pub(super) origin: Origin,
    pub(super) limits: &'a Limits,
    pub(super) timer: Pin<&'a mut tokio::time::Sleep>,
    /// When the timer fires (from [`now_ms`]).
    pub(super) armed: u64,
    pub(super) shutdown: &'a mut watch::Receiver<bool>,
    pub(super) stopping: bool,
}

/// What polling the connection in [`drive`] gave.
pub(super) enum Step {
    Done(hyper::Result<()>),
    Parked,
    /// Not idle long enough yet: have the timer fire then.
    Arm(u64),
}

/// What [`Watch::next`] saw.
pub(super) enum Signal {
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
    pub(super) fn arm(&mut self, at: u64) {
        self.armed = at;
        self.timer.as_mut().reset(instant_of(at));
    }

    /// Waits until the timer fires or shutdown starts. `lingering`: the timer is the deadline of
    /// an idle close.
    pub(super) async fn next(&mut self, lingering: bool) -> Signal {
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
                    Verdict::SendLate => {
                        tracing::debug!(listener = self.origin.listener, peer = %self.origin.peer, side = "client", "the client read nothing of its answer within the send deadline; closing");
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
pub(super) async fn drive<C: Phase>(conn: &mut C, watch: &mut Watch<'_>, resumed: bool) -> Ended {
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
