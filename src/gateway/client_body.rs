//! The client's request body on its way upstream: a deadline between reads, and a record of
//! what went wrong on the client's side, so that a failed exchange is blamed on the right one.
//!
//! When forwarding fails, [`Fault::get`] tells the proxy whether the client broke it (bad
//! chunked framing → `400`, a body that stopped arriving → `408`, a client that went away) or
//! the upstream did (`502`/`504`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::body_error::{Peer, ProxyBodyError};
use super::request_body::RequestBody;
use crate::read_deadline::ReadDeadline;

/// What the client did to a request body that could not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFault {
    /// The body's framing is broken (bad chunk sizes, a body longer than declared).
    Malformed,
    /// The client sent nothing for longer than the body deadline.
    Stalled,
    /// The connection closed or reset before the body ended.
    Gone,
}

/// Shared between a [`ClientBody`] and the proxy that forwards it: what went wrong on the
/// client's side, and how far the body has gone, so that the proxy can tell a client that is
/// slow to send from an upstream that takes none of what is sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fault(Arc<FaultState>);

#[derive(Debug, Default)]
struct FaultState {
    state: AtomicU8,
    /// Frames handed on towards the upstream.
    handed: AtomicU32,
    /// The body's last read found nothing: it waits on the client.
    waiting: AtomicBool,
    /// When the body ended, if it was streamed.
    ended: OnceLock<Instant>,
}

impl Fault {
    const STREAMING: u8 = 1;
    const FINISHED: u8 = 2;

    pub(crate) fn get(&self) -> Option<ClientFault> {
        match self.0.state.load(Ordering::Relaxed) {
            3 => Some(ClientFault::Malformed),
            4 => Some(ClientFault::Stalled),
            5 => Some(ClientFault::Gone),
            _ => None,
        }
    }

    /// Whether the client is still sending the body.
    pub(crate) fn is_streaming(&self) -> bool {
        self.0.state.load(Ordering::Relaxed) == Self::STREAMING
    }

    /// When the client finished sending a streamed body.
    pub(crate) fn ended(&self) -> Option<Instant> {
        self.0.ended.get().copied()
    }

    /// How the body stands: frames handed on so far, and whether it waits on the client (whose
    /// own deadline then applies) rather than on the upstream to take what it was given.
    pub(crate) fn progress(&self) -> (u32, bool) {
        (
            self.0.handed.load(Ordering::Relaxed),
            self.0.waiting.load(Ordering::Relaxed),
        )
    }

    fn set(&self, fault: ClientFault) {
        let v = match fault {
            ClientFault::Malformed => 3,
            ClientFault::Stalled => 4,
            ClientFault::Gone => 5,
        };
        self.0.state.store(v, Ordering::Relaxed);
    }

    fn mark(&self, state: u8) {
        // A recorded fault stays.
        let _ = self
            .0
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v <= Self::FINISHED).then_some(state)
            });
    }

    fn finished(&self) {
        let _ = self.0.ended.set(Instant::now());
        self.mark(Self::FINISHED);
    }

    fn read(&self, found: bool) {
        if found {
            self.0.handed.fetch_add(1, Ordering::Relaxed);
        }
        self.0.waiting.store(!found, Ordering::Relaxed);
    }
}

/// A client's request body with a deadline between two reads.
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: RequestBody,
    deadline: ReadDeadline,
    fault: Fault,
}

impl ClientBody {
    pub(crate) fn new(inner: RequestBody, timeout: Duration, fault: Fault) -> Self {
        if !inner.is_end_stream() {
            fault.mark(Fault::STREAMING);
        }
        Self {
            inner,
            deadline: ReadDeadline::new(timeout),
            fault,
        }
    }
}

fn classify(e: &hyper::Error) -> ClientFault {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return ClientFault::Gone;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                    ClientFault::Malformed
                }
                _ => ClientFault::Gone,
            };
        }
        source = s.source();
    }
    ClientFault::Malformed
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ProxyBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ProxyBodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline.progressed();
                this.fault.read(true);
                // A body of known length is not asked for its end once it is all there.
                if this.inner.is_end_stream() {
                    this.fault.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.fault.set(classify(&e));
                Poll::Ready(Some(Err(ProxyBodyError::Read {
                    from: Peer::Client,
                    error: e,
                })))
            }
            Poll::Ready(None) => {
                this.fault.finished();
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.fault.read(false);
                ready!(this.deadline.poll_expired(cx));
                this.fault.set(ClientFault::Stalled);
                Poll::Ready(Some(Err(ProxyBodyError::Stalled {
                    from: Peer::Client,
                    after: this.deadline.timeout(),
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
