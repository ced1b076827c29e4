//! [`RequestBody`]: a client's request body inside the gateway, streamed from the connection or
//! held whole after a signed body was hashed (the [`SignedBodyLayer`](crate::layer::SignedBodyLayer)
//! rebuilds it from the bytes it read).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request body on its way through the gateway's layers to the upstream.
pub(crate) struct RequestBody {
    kind: Kind,
}

enum Kind {
    Streaming(Incoming),
    Held(Full<Bytes>),
}

impl RequestBody {
    pub(crate) fn streaming(body: Incoming) -> Self {
        Self {
            kind: Kind::Streaming(body),
        }
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Streaming(_) => "streaming",
            Kind::Held(_) => "held",
        };
        f.debug_struct("RequestBody").field("kind", &kind).finish()
    }
}

/// A signed body, read and checked, handed on whole.
impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Held(Full::new(bytes)),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.kind {
            Kind::Streaming(b) => Pin::new(b).poll_frame(cx),
            Kind::Held(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Streaming(b) => b.is_end_stream(),
            Kind::Held(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Streaming(b) => b.size_hint(),
            Kind::Held(b) => b.size_hint(),
        }
    }
}
