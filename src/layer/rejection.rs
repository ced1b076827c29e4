//! A refused request ([`Rejection`]) and how the refusal is answered: APIG JSON ([`ApigJson`],
//! the default) or a gRPC status ([`GrpcStatus`]).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::rejection_kind::RejectionKind;
use crate::request_id::{RequestId, X_REQUEST_ID};

/// A refused request: its reason and the request ID the answer carries.
#[derive(Debug, Clone)]
pub struct Rejection {
    kind: RejectionKind,
    request_id: RequestId,
    retry_after: Option<Duration>,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, request_id: RequestId) -> Self {
        Self {
            kind,
            request_id,
            retry_after: None,
        }
    }

    /// A refusal that says when to come back (throttling).
    pub(crate) fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// How long the caller should wait before trying again: for throttling, a used-up quota,
    /// and a node too busy to take the request now ([`RejectionKind::Unavailable`] when
    /// lookups are shed, [`RejectionKind::BodiesBusy`]); `None` where waiting does not cure.
    pub fn wait(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The request ID: the request's own `X-Request-Id` if it had a usable one, else a new one.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// The APIG JSON body: `{"error_code":..,"error_msg":..,"request_id":..}`.
    ///
    /// ```
    /// # use apig_appcode::layer::{Rejection, RejectionKind};
    /// # fn show(r: &Rejection) {
    /// let body = r.to_json();
    /// # }
    /// ```
    pub fn to_json(&self) -> Bytes {
        // The codes and messages are fixed ASCII without quotes or backslashes, and request IDs
        // are `[A-Za-z0-9._-]`: nothing needs escaping, so the body is plain concatenation (a
        // test checks it equals `apig_error::json`'s output).
        let parts: [&[u8]; 7] = [
            b"{\"error_code\":\"",
            self.kind.error_code().as_bytes(),
            b"\",\"error_msg\":\"",
            self.kind.error_msg().as_bytes(),
            b"\",\"request_id\":\"",
            self.request_id.as_bytes(),
            b"\"}",
        ];
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            out.extend_from_slice(part);
        }
        Bytes::from(out)
    }
}

/// Builds the response for a refused request.
///
/// [`ApigJson`] is the default and [`GrpcStatus`] answers gRPC clients. The trait is implemented
/// for closures `Fn(&Rejection) -> Response<B>`, so any other shape is a few lines:
///
/// ```
/// use apig_appcode::layer::{Rejection, RejectResponse};
/// use http::{Response, StatusCode};
///
/// let grpc = |r: &Rejection| {
///     let mut res = Response::new(String::new());
///     res.headers_mut().insert("grpc-status", "16".parse().unwrap()); // UNAUTHENTICATED
///     res.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
///     res
/// };
/// fn takes<R: RejectResponse<String>>(_: R) {}
/// takes(grpc);
/// ```
pub trait RejectResponse<B> {
    /// The response for `rejection`.
    fn reject(&self, rejection: &Rejection) -> Response<B>;
}

impl<B, F> RejectResponse<B> for F
where
    F: Fn(&Rejection) -> Response<B>,
{
    fn reject(&self, rejection: &Rejection) -> Response<B> {
        self(rejection)
    }
}

/// The default answer: APIG's JSON error body with `Content-Type: application/json` and
/// `X-Request-Id`, `WWW-Authenticate: AppCode` on a `401` (`SDK-HMAC-SHA256` when a signature
/// was refused) (and `Retry-After` in whole seconds, rounded up, when the rejection has a
/// [`wait`](Rejection::wait)). Works with any response body that can be built from [`Bytes`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApigJson;

impl<B: From<Bytes>> RejectResponse<B> for ApigJson {
    fn reject(&self, rejection: &Rejection) -> Response<B> {
        let status = rejection.kind.status();
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(X_REQUEST_ID, rejection.request_id.to_header_value());
        if status == StatusCode::UNAUTHORIZED {
            // The scheme the refused credential was presented in.
            let scheme = if rejection.kind.is_signature() {
                "SDK-HMAC-SHA256"
            } else {
                "AppCode"
            };
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        if let Some(wait) = rejection.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
        }
        let mut res = Response::new(B::from(rejection.to_json()));
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res
    }
}

/// `Retry-After` is whole seconds (RFC 9110 section 10.2.3): rounded up, so that a client
/// waiting that long finds room, and at least 1, since `0` invites an immediate retry.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Answers a refusal the way a gRPC server does, for a tonic (or any gRPC) service behind the
/// layer.
///
/// A gRPC client reads the outcome of a call from `grpc-status`, not from the HTTP status: the
/// default [`ApigJson`] answer (`401` with a JSON body) reaches it as a protocol error that hides
/// the reason. `GrpcStatus` answers with a *Trailers-Only* response instead: HTTP `200`, an empty
/// body, and in the headers
///
/// - `content-type: application/grpc`;
/// - `grpc-status`: `16` UNAUTHENTICATED for `401 APIG.0303`, `7` PERMISSION_DENIED for
///   `403 APIG.0304`, `14` UNAVAILABLE for `503 APIG.0202` (so that clients may retry), `3`
///   INVALID_ARGUMENT for `400 APIG.0607` and `8` RESOURCE_EXHAUSTED for `429 APIG.0308`;
/// - `grpc-message`: the APIG error code and message, such as
///   `APIG.0303: Incorrect app authentication information: AppCode missing`;
/// - `x-request-id`, which a client reads from the status's metadata.
///
/// Works with any response body that has an empty [`Default`] (tonic's `Body`, `String`,
/// [`Bytes`], ...). It adds no dependency: nothing of tonic is needed to build the answer.
///
/// ```
/// use apig_appcode::layer::GrpcStatus;
/// use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
/// use apig_appcode::provider::StaticProvider;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AppCodeAuthLayer::builder()
///     .provider(StaticProvider::builder().app_code("app-1", "code-1", AppCode::generate()).build())
///     .build()
///     .on_reject(GrpcStatus);
/// layer.cache().loaded().await;
/// // With tonic: `tonic::transport::Server::builder().layer(layer).add_service(...)`.
/// let svc = ServiceBuilder::new().layer(layer).service(service_fn(|_: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
/// }));
///
/// let res = svc.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.headers()["content-type"], "application/grpc");
/// assert_eq!(res.headers()["grpc-status"], "16");
/// assert_eq!(
///     res.headers()["grpc-message"],
///     "APIG.0303: Incorrect app authentication information: AppCode missing"
/// );
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcStatus;

impl GrpcStatus {
    /// The gRPC status code (as its decimal header value) answering `kind`. A match on the kind,
    /// not on its HTTP status, so that a new kind cannot compile without a deliberate choice.
    fn code(kind: RejectionKind) -> &'static str {
        match kind {
            RejectionKind::Missing
            | RejectionKind::Invalid
            | RejectionKind::SignatureMalformed
            | RejectionKind::SignatureAlgorithm
            | RejectionKind::SignatureDate
            | RejectionKind::SignatureInvalid => "16", // UNAUTHENTICATED
            RejectionKind::Forbidden | RejectionKind::IpDenied | RejectionKind::UnknownClientIp => {
                "7"
            } // PERMISSION_DENIED
            RejectionKind::Unavailable | RejectionKind::BodiesBusy => "14", // UNAVAILABLE
            RejectionKind::HttpsRequired | RejectionKind::BodyIncomplete => "3", // INVALID_ARGUMENT
            RejectionKind::BodyTooLarge => "8",                             // RESOURCE_EXHAUSTED
            RejectionKind::BodyTimeout => "4",                              // DEADLINE_EXCEEDED
            RejectionKind::Throttled | RejectionKind::QuotaExhausted => "8", // RESOURCE_EXHAUSTED
        }
    }
}

impl<B: Default> RejectResponse<B> for GrpcStatus {
    fn reject(&self, rejection: &Rejection) -> Response<B> {
        let kind = rejection.kind;
        // `grpc-message` is percent-encoded on the wire, but only bytes outside 0x20..=0x7E and
        // `%` itself need it; the fixed APIG codes and messages have none (a test checks), so
        // the text goes out as it is and a client shows it unchanged.
        let message = format!("{}: {}", kind.error_code(), kind.error_msg());
        let message =
            HeaderValue::try_from(message).expect("APIG codes and messages are visible ASCII");
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_STATUS, HeaderValue::from_static(Self::code(kind)));
        headers.insert(GRPC_MESSAGE, message);
        headers.insert(X_REQUEST_ID, rejection.request_id.to_header_value());
        // HTTP 200: in gRPC the HTTP status only says the call reached a gRPC server; clients
        // map any other status to UNKNOWN or UNAVAILABLE and lose `grpc-status`.
        let mut res = Response::new(B::default());
        *res.headers_mut() = headers;
        res
    }
}

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apig_error;

    #[test]
    fn plain_bodies_equal_the_escaping_builder() {
        let id = RequestId::new();
        for kind in RejectionKind::ALL {
            let r = Rejection::new(kind, id);
            assert_eq!(
                r.to_json(),
                apig_error::json(kind.error_code(), kind.error_msg(), &id)
            );
        }
    }

    #[test]
    fn body_is_apig_json() {
        let r = Rejection::new(RejectionKind::Missing, RequestId::parse(b"abc").unwrap());
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["error_code"], "APIG.0303");
        assert_eq!(
            v["error_msg"],
            "Incorrect app authentication information: AppCode missing"
        );
        assert_eq!(v["request_id"], "abc");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        for (wait, want) in [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(60), 60),
        ] {
            assert_eq!(retry_after_secs(wait), want, "{wait:?}");
        }
        let r = Rejection::new(RejectionKind::Throttled, RequestId::new())
            .retry_after(Duration::from_millis(1500));
        let res: Response<Bytes> = ApigJson.reject(&r);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["retry-after"], "2");
        assert!(res.headers().get("www-authenticate").is_none());
    }

    #[test]
    fn grpc_status_per_kind() {
        let id = RequestId::parse(b"req-1").unwrap();
        for (kind, code) in [
            (RejectionKind::Missing, "16"),
            (RejectionKind::Invalid, "16"),
            (RejectionKind::Forbidden, "7"),
            (RejectionKind::Unavailable, "14"),
            (RejectionKind::HttpsRequired, "3"),
            (RejectionKind::Throttled, "8"),
            (RejectionKind::IpDenied, "7"),
            (RejectionKind::UnknownClientIp, "7"),
            (RejectionKind::QuotaExhausted, "8"),
        ] {
            let res: Response<Bytes> = GrpcStatus.reject(&Rejection::new(kind, id));
            assert_eq!(res.status(), StatusCode::OK, "{kind}");
            assert!(res.body().is_empty(), "{kind}: Trailers-Only has no body");
            let h = res.headers();
            assert_eq!(h["content-type"], "application/grpc");
            assert_eq!(h["grpc-status"], code, "{kind}");
            assert_eq!(
                h["grpc-message"],
                format!("{}: {}", kind.error_code(), kind.error_msg()).as_str()
            );
            assert_eq!(h["x-request-id"], "req-1");
            assert!(h.get("www-authenticate").is_none());
        }
    }

    #[test]
    fn grpc_messages_need_no_percent_encoding() {
        // gRPC's "Percent-Byte-Unencoded": 0x20..=0x7E except '%'. Anything else would have to
        // be encoded, or a client would show mangled text.
        for kind in RejectionKind::ALL {
            let text = format!("{}: {}", kind.error_code(), kind.error_msg());
            assert!(
                text.bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'%'),
                "{text}"
            );
        }
    }
}
