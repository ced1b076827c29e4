//! [`SignedBodyLayer`]: a signed request's body hashed before the layer checks its signature.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use super::held_bodies::{HeldBodies, DEFAULT_MAX_HELD_BODIES};
use super::rejection::{ApigJson, RejectResponse, Rejection};
use super::signed::BodySha256;
use crate::cache::AppCodeCache;
use crate::read_deadline::ReadDeadline;
use crate::rejection_kind::RejectionKind;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::signature::{self, ALGORITHM, CONTENT_SHA256_HEADER, UNSIGNED_PAYLOAD};

/// SHA-256 of the empty body.
pub(super) const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The most a signed body may hold: Huawei's 12 MB.
pub const SIGNED_BODY_LIMIT: usize = 12 * 1024 * 1024;

/// What every clone of the layer and its services shares.
struct Config {
    /// `false`: every body streams through (a layer inside that accepts no signature).
    reads: bool,
    limit: usize,
    read_timeout: Option<Duration>,
    /// Whether a key may sign a request that verifies: its body is read only then.
    keys: Option<KnownKeys>,
    /// Where refusals are counted (the layer's cache).
    counts: Option<AppCodeCache>,
    /// The bytes held by every body being read, shared with the layer's other body layers.
    held: Arc<HeldBodies>,
}

/// How long a client refused for [`RejectionKind::BodiesBusy`] is told to wait.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Which app keys are worth a body read.
type KnownKeys = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Hashes the body of a signed request as it arrives, so that the [`AppCodeAuth`](super::AppCodeAuth)
/// layer inside it can check the signature over it, and passes the request on only once the
/// whole body is in. Place it outside the [`AppCodeAuthLayer`](crate::AppCodeAuthLayer) (take it
/// from [`AppCodeAuthLayer::signed_body_layer`](crate::AppCodeAuthLayer::signed_body_layer)).
/// Refusals are answered by `R` ([`ApigJson`] by default).
///
/// Why buffer: a signature covers the body's SHA-256, which is known only at its end, and a
/// request forwarded before it would reach the upstream unverified. So a signed body is held,
/// at most 12 MB (Huawei's limit for signed bodies; more is `413 APIG.0201`), while it is
/// hashed, and the request goes on with the held bytes and their [`BodySha256`]. Everything
/// else streams through untouched: requests without a signature, and bodies the signer declared
/// unsigned (`X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`). An empty body is hashed without reading.
///
/// Given the cache ([`SignedBodyLayer::known_keys`]), a body is read only for a key the cache
/// holds (from the layer's `signed_body_layer`, also for one its provider may still find): a
/// flood of signatures with unknown keys costs no body reads. The bodies being read hold at most
/// [`max_held`](SignedBodyLayer::max_held) bytes together (the layers from one
/// `AppCodeAuthLayer` share one such cap), and those of one app key a quarter of that (or one
/// body of the [`limit`](SignedBodyLayer::limit), if that is more); a body that would go over
/// either is refused with `503 APIG.0202` and `Retry-After: 1`. An app key is no secret (every
/// signed request shows it), so without the cap clients that send most of a large body and
/// stall would make the process hold that much per connection, and without the share one key's
/// clients could keep every other app's signed bodies out.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use apig_appcode::layer::SignedBodyLayer;
///
/// let layer = SignedBodyLayer::new()
///     .limit(1024 * 1024)
///     .read_timeout(Duration::from_secs(30));
/// # let _ = layer;
/// ```
///
/// The [`AppAuth`](super::AppAuth) docs show the two layers together.
pub struct SignedBodyLayer<R = ApigJson> {
    config: Arc<Config>,
    reject: R,
}

impl<R: Clone> Clone for SignedBodyLayer<R> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            reject: self.reject.clone(),
        }
    }
}

impl<R> fmt::Debug for SignedBodyLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedBodyLayer")
            .field("limit", &self.config.limit)
            .field("max_held", &self.config.held.max())
            .field("read_timeout", &self.config.read_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for SignedBodyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SignedBodyLayer {
    /// Bodies up to [`SIGNED_BODY_LIMIT`], [`DEFAULT_MAX_HELD_BODIES`] held at once, no
    /// deadline between reads, every key's body read.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                reads: true,
                limit: SIGNED_BODY_LIMIT,
                read_timeout: None,
                keys: None,
                counts: None,
                held: Arc::new(HeldBodies::new(DEFAULT_MAX_HELD_BODIES)),
            }),
            reject: ApigJson,
        }
    }
}

impl<R> SignedBodyLayer<R> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::get_mut(&mut self.config).expect("configured before it is cloned")
    }

    /// The largest signed body held, in bytes (default [`SIGNED_BODY_LIMIT`]); a longer one is
    /// refused with `413 APIG.0201`, at once when its `Content-Length` says so.
    pub fn limit(mut self, bytes: usize) -> Self {
        self.config_mut().limit = bytes;
        self
    }

    /// The most bytes the bodies being read may hold together, over every request of this
    /// layer and its clones (default [`DEFAULT_MAX_HELD_BODIES`]), those of one app key a
    /// quarter of it (or one body of the [`limit`](Self::limit), if that is more); a body that
    /// would go over either is refused with `503 APIG.0202` and `Retry-After: 1`, and what it
    /// held is given back.
    ///
    /// ```
    /// use apig_appcode::layer::SignedBodyLayer;
    ///
    /// let layer = SignedBodyLayer::new().max_held(64 * 1024 * 1024);
    /// # let _ = layer;
    /// ```
    pub fn max_held(self, bytes: usize) -> Self {
        self.sharing(Arc::new(HeldBodies::new(bytes)))
    }

    /// Counts held bytes in `held`, which other layers share.
    pub(crate) fn sharing(mut self, held: Arc<HeldBodies>) -> Self {
        self.config_mut().held = held;
        self
    }

    /// The longest wait for the next piece of a signed body (default: none); a body that
    /// stalls longer is refused with `408 APIG.0201`.
    pub fn read_timeout(mut self, limit: Duration) -> Self {
        self.config_mut().read_timeout = Some(limit);
        self
    }

    /// Reads bodies only for app keys `cache` holds (the layer's own, from
    /// [`AppCodeAuthLayer::cache`](crate::AppCodeAuthLayer::cache)): an unknown key's request
    /// goes on unread and is refused by the layer inside.
    pub fn known_keys(mut self, cache: &AppCodeCache) -> Self {
        self.config_mut().counts = Some(cache.clone());
        let cache = cache.clone();
        self.keys_worth_reading(Arc::new(move |key| cache.app_key(key).is_some()))
    }

    /// Reads bodies only for app keys `worth` says may verify.
    pub(crate) fn keys_worth_reading(mut self, worth: KnownKeys) -> Self {
        self.config_mut().keys = Some(worth);
        self
    }

    /// Reads no body at all: for a layer that accepts no signature.
    pub(crate) fn off(mut self) -> Self {
        self.config_mut().reads = false;
        self
    }

    /// Answers refusals with `reject` instead of APIG JSON.
    pub fn on_reject<R2>(self, reject: R2) -> SignedBodyLayer<R2> {
        SignedBodyLayer {
            config: self.config,
            reject,
        }
    }
}

impl<S, R: Clone> Layer<S> for SignedBodyLayer<R> {
    type Service = SignedBody<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        SignedBody {
            inner,
            config: Arc::clone(&self.config),
            reject: self.reject.clone(),
        }
    }
}

/// The service of [`SignedBodyLayer`].
pub struct SignedBody<S, R = ApigJson> {
    inner: S,
    config: Arc<Config>,
    reject: R,
}

impl<S: Clone, R: Clone> Clone for SignedBody<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            reject: self.reject.clone(),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for SignedBody<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedBody")
            .field("inner", &self.inner)
            .field("limit", &self.config.limit)
            .finish_non_exhaustive()
    }
}

impl<S, R> SignedBody<S, R> {
    inner_service_accessors!();
}

/// What becomes of a request's body.
enum Plan {
    /// Streamed on untouched.
    Stream,
    /// Empty: its hash is known without reading.
    Empty,
    /// Held and hashed; its app key's bodies are counted together.
    Read { key: Box<str> },
    /// Longer than the limit says its `Content-Length`.
    TooLarge,
}

impl Config {
    fn plan<B: Body>(&self, req: &Request<B>) -> Plan {
        if !self.reads {
            return Plan::Stream;
        }
        let headers = req.headers();
        let Some(auth) = headers.get(AUTHORIZATION) else {
            return Plan::Stream;
        };
        let Ok(auth) = auth.to_str() else {
            return Plan::Stream;
        };
        if !auth.trim_start().starts_with(ALGORITHM) {
            return Plan::Stream;
        }
        let key = signature::access_key_of(auth).unwrap_or_default();
        // First: a request whose key cannot verify costs nothing more here.
        if self.keys.as_ref().is_some_and(|worth| !worth(key)) {
            return Plan::Stream;
        }
        if req.body().is_end_stream() {
            return Plan::Empty;
        }
        if headers
            .get(CONTENT_SHA256_HEADER)
            .is_some_and(|v| v == UNSIGNED_PAYLOAD)
        {
            return Plan::Stream;
        }
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            return Plan::TooLarge;
        }
        Plan::Read { key: key.into() }
    }

    fn refuse<ResBody, R: RejectResponse<ResBody>>(
        &self,
        reject: &R,
        kind: RejectionKind,
        parts: &Parts,
    ) -> Response<ResBody> {
        if let Some(cache) = &self.counts {
            cache.counters().rejected(kind);
        }
        let id = RequestId::from_header(parts.headers.get(X_REQUEST_ID));
        tracing::debug!(
            outcome = "rejected",
            reason = kind.as_str(),
            request_id = id.as_str(),
            "signed body"
        );
        let rejection = Rejection::new(kind, id);
        let rejection = if kind == RejectionKind::BodiesBusy {
            rejection.retry_after(BUSY_RETRY)
        } else {
            rejection
        };
        reject.reject(&rejection)
    }
}

impl<S, R, B, ResBody> Service<Request<B>> for SignedBody<S, R>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    R: RejectResponse<ResBody> + Clone,
    B: Body + From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let state = match self.config.plan(&req) {
            Plan::Stream => State::Call {
                future: self.inner.call(req),
            },
            Plan::Empty => {
                req.extensions_mut().insert(BodySha256(EMPTY_SHA256));
                State::Call {
                    future: self.inner.call(req),
                }
            }
            Plan::TooLarge => {
                let (parts, _) = req.into_parts();
                State::Refused {
                    response: Some(self.config.refuse(
                        &self.reject,
                        RejectionKind::BodyTooLarge,
                        &parts,
                    )),
                }
            }
            Plan::Read { key } => {
                // The clone that was polled ready is the one called, once the body is in.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let (parts, body) = req.into_parts();
                State::Read {
                    reading: Some(Box::new(Reading {
                        parts,
                        body: Box::pin(body),
                        held: BytesMut::new(),
                        key,
                        taken: 0,
                        hash: Sha256::new(),
                        deadline: self.config.read_timeout.map(ReadDeadline::new),
                        inner,
                        reject: self.reject.clone(),
                        config: Arc::clone(&self.config),
                    })),
                }
            }
        };
        ResponseFuture { state }
    }
}

/// A signed body being read, and what the request needs once it is in.
struct Reading<S, B, R> {
    parts: Parts,
    body: Pin<Box<B>>,
    held: BytesMut,
    /// The app key the body is counted under.
    key: Box<str>,
    /// What `held` counts in the shared [`HeldBodies`], given back when this is dropped.
    taken: usize,
    hash: Sha256,
    /// Runs while waiting for the client, with a read timeout.
    deadline: Option<ReadDeadline>,
    inner: S,
    reject: R,
    config: Arc<Config>,
}

impl<S, B, R, ResBody> Reading<S, B, R>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    R: RejectResponse<ResBody>,
    B: Body + From<Bytes>,
{
    /// Reads what has arrived: the request sent on (its inner future), a refusal, or pending.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<S::Future, Response<ResBody>>> {
        loop {
            match self.body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(deadline) = self.deadline.as_mut() {
                        deadline.progressed();
                    }
                    // Trailers are not part of the signed body; they are dropped.
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    let n = data.remaining();
                    if self.held.len() + n > self.config.limit {
                        return Poll::Ready(Err(self.refuse(RejectionKind::BodyTooLarge)));
                    }
                    if !self.config.held.take(&self.key, n, self.config.limit) {
                        return Poll::Ready(Err(self.refuse(RejectionKind::BodiesBusy)));
                    }
                    self.taken += n;
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        self.hash.update(chunk);
                        self.held.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    return Poll::Ready(Err(self.refuse(RejectionKind::BodyIncomplete)))
                }
                Poll::Ready(None) => return Poll::Ready(Ok(self.send())),
                Poll::Pending => {
                    let Some(deadline) = self.deadline.as_mut() else {
                        return Poll::Pending;
                    };
                    ready!(deadline.poll_expired(cx));
                    return Poll::Ready(Err(self.refuse(RejectionKind::BodyTimeout)));
                }
            }
        }
    }

    fn refuse(&self, kind: RejectionKind) -> Response<ResBody> {
        self.config.refuse(&self.reject, kind, &self.parts)
    }

    /// The request with the held body and its hash, to the inner service.
    fn send(&mut self) -> S::Future {
        let digest: [u8; 32] = std::mem::take(&mut self.hash).finalize().into();
        let body = B::from(std::mem::take(&mut self.held).freeze());
        let mut parts = std::mem::replace(&mut self.parts, Request::new(()).into_parts().0);
        parts.extensions.insert(BodySha256(digest));
        self.inner.call(Request::from_parts(parts, body))
    }
}

/// Gives back what the body held, however the read ended: sent on (the bytes then belong to the
/// request on its way to the upstream, whose deadline bounds them), refused, or dropped when
/// the client went away.
impl<S, B, R> Drop for Reading<S, B, R> {
    fn drop(&mut self) {
        self.config.held.give_back(&self.key, self.taken);
    }
}

pin_project! {
    /// The response future of [`SignedBody`].
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, R>
    where
        S: Service<Request<B>>,
    {
        Call { #[pin] future: S::Future },
        Refused { response: Option<S::Response> },
        Read { reading: Option<Box<Reading<S, B, R>>> },
    }
}

impl<S, B, R, ResBody> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    R: RejectResponse<ResBody>,
    B: Body + From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Call { future } => return future.poll(cx),
                StateProj::Refused { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")))
                }
                StateProj::Read { reading } => {
                    let read = reading.as_mut().expect("polled after completion");
                    match ready!(read.poll_read(cx)) {
                        Ok(future) => State::Call { future },
                        Err(response) => State::Refused {
                            response: Some(response),
                        },
                    }
                }
            };
            state.set(next);
        }
    }
}

impl<S, B, R> fmt::Debug for ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Call { .. } => "call",
            State::Refused { .. } => "refused",
            State::Read { .. } => "read",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
