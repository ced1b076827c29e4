//! [`ProxyBody`]: what the gateway answers with, the upstream's streamed body or its own.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use super::upstream::PooledBody;

/// The body of every gateway response: the upstream's, streamed through, or one the gateway
/// wrote itself (a rejection or a gateway error).
pub struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Upstream(PooledBody),
    Local(Full<Bytes>),
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Upstream(_) => "upstream",
            Kind::Local(_) => "local",
        };
        f.debug_struct("ProxyBody").field("kind", &kind).finish()
    }
}

impl ProxyBody {
    /// A body the gateway wrote itself.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Local(Full::new(bytes.into())),
        }
    }

    pub(crate) fn upstream(body: PooledBody) -> Self {
        Self {
            kind: Kind::Upstream(body),
        }
    }
}

/// What the layer's default rejection ([`ApigJson`](crate::layer::ApigJson)) builds its body
/// from.
impl From<Bytes> for ProxyBody {
    fn from(bytes: Bytes) -> Self {
        ProxyBody::full(bytes)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.kind {
            Kind::Upstream(b) => Pin::new(b).poll_frame(cx),
            Kind::Local(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Local(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(b) => b.size_hint(),
            Kind::Local(b) => b.size_hint(),
        }
    }
}
