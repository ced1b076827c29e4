//! [`StreamedOrHeld`]: a body streamed from a connection, or one held whole in memory. The
//! gateway's request bodies (a client's, or a signed one it read to hash) and its response
//! bodies (the upstream's, or one it wrote itself) are both one or the other.
//!
//! Not `http_body_util::Either`: its error is boxed, where these bodies keep the streamed body's
//! own error type (`hyper::Error` for the public [`ProxyBody`](super::ProxyBody)).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

/// A body streamed from `B`, or held whole.
pub(crate) enum StreamedOrHeld<B> {
    Streamed(B),
    Held(Full<Bytes>),
}

/// Which of the two, never the bytes: a held body may be what a client signed.
impl<B> fmt::Debug for StreamedOrHeld<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Streamed(_) => "StreamedOrHeld::Streamed(..)",
            Self::Held(_) => "StreamedOrHeld::Held(..)",
        })
    }
}

/// Bytes held whole: a signed body after it was hashed, or a body the gateway wrote.
impl<B> From<Bytes> for StreamedOrHeld<B> {
    fn from(bytes: Bytes) -> Self {
        Self::Held(Full::new(bytes))
    }
}

impl<B> Body for StreamedOrHeld<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Self::Streamed(b) => Pin::new(b).poll_frame(cx),
            Self::Held(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streamed(b) => b.is_end_stream(),
            Self::Held(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed(b) => b.size_hint(),
            Self::Held(b) => b.size_hint(),
        }
    }
}
