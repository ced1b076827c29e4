//! [`RequestBody`]: a client's request body inside the gateway, streamed from the connection or
//! held whole after a signed body was hashed (the [`SignedBodyLayer`](crate::layer::SignedBodyLayer)
//! rebuilds it from the bytes it read, through `From<Bytes>`).

use hyper::body::Incoming;

use super::streamed_or_held::StreamedOrHeld;

/// A request body on its way through the gateway's layers to the upstream.
pub(crate) type RequestBody = StreamedOrHeld<Incoming>;
