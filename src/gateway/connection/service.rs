//! The listener's tower service as hyper's: each request counted in progress until its response
//! body is sent, and told which connection it came on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tower::util::Oneshot;
use tower_service::Service;

use super::state::{ConnState, InFlight, SERVED};
use super::Listening;
use crate::layer::ConnectionInfo;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// Adapts a tower service to hyper's, counting each request in progress on the connection and
/// telling the service about the connection.
pub(super) struct HyperService<S> {
    pub(super) listening: Arc<Listening<S>>,
    pub(super) state: Arc<ConnState>,
    pub(super) info: ConnectionInfo,
    /// HTTP/2: each answer's wait on its client is watched (see [`InFlight::handed`]).
    pub(super) streams: bool,
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
        let in_flight = InFlight::start(&self.state, self.streams);
        self.state.set_flag(SERVED, true);
        req.extensions_mut().insert(self.info);
        TrackedCall {
            call: Oneshot::new(self.listening.service.clone(), req),
            in_flight: Some(in_flight),
        }
    }
}

/// A service call whose response body carries the request's [`InFlight`].
pub(super) struct TrackedCall<F> {
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
        Poll::Ready(Ok(res.map(|inner| Tracked { inner, in_flight })))
    }
}

/// A response body that keeps its request counted as in progress until it is sent.
pub(crate) struct Tracked<B> {
    inner: B,
    in_flight: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // hyper asks an HTTP/2 answer for more only once its stream may send: a part handed
        // and not followed by another request for more waits on the client's credit.
        let handed = matches!(&polled, Poll::Ready(Some(Ok(frame))) if frame.is_data())
            && !this.inner.is_end_stream();
        this.in_flight.handed(handed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
