//! [`ProxyBody`]: what the gateway answers with, the upstream's streamed body or its own.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::body_error::ProxyBodyError;
use super::streamed_or_held::StreamedOrHeld;
use super::upstream::PooledBody;

/// The body of every gateway response: the upstream's, streamed through, or one the gateway
/// wrote itself (a rejection or a gateway error).
pub struct ProxyBody {
    kind: StreamedOrHeld<PooledBody>,
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            StreamedOrHeld::Streamed(_) => "upstream",
            StreamedOrHeld::Held(_) => "local",
        };
        f.debug_struct("ProxyBody").field("kind", &kind).finish()
    }
}

impl ProxyBody {
    /// A body the gateway wrote itself.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: StreamedOrHeld::from(bytes.into()),
        }
    }

    pub(crate) fn upstream(body: PooledBody) -> Self {
        Self {
            kind: StreamedOrHeld::Streamed(body),
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
    type Error = ProxyBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ProxyBodyError>>> {
        Pin::new(&mut self.kind).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}
