//! Why a request was refused, and how the refusal is answered.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

/// The reason behind a [`Rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No AppCode header, or an empty one: `401 APIG.0303`.
    Missing,
    /// A malformed, repeated or unknown AppCode: `401 APIG.0303`. Deliberately one kind, so that a
    /// caller cannot tell a well-formed unknown code from a malformed one.
    Invalid,
    /// The app may not call this route: `403 APIG.0304`.
    Forbidden,
    /// No usable set of codes (not loaded yet, or older than the allowed staleness, or the
    /// provider failed a lookup): `503 APIG.0202`.
    Unavailable,
    /// Plain HTTP where HTTPS is required: `400 APIG.0607`.
    HttpsRequired,
}

impl RejectionKind {
    pub(crate) const COUNT: usize = 5;

    /// The HTTP status APIG answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::HttpsRequired => StatusCode::BAD_REQUEST,
        }
    }

    /// The APIG error code.
    pub fn error_code(self) -> &'static str {
        match self {
            Self::Missing | Self::Invalid => "APIG.0303",
            Self::Forbidden => "APIG.0304",
            Self::Unavailable => "APIG.0202",
            Self::HttpsRequired => "APIG.0607",
        }
    }

    /// The APIG error message.
    pub fn error_msg(self) -> &'static str {
        match self {
            Self::Missing => "Incorrect app authentication information: AppCode missing",
            Self::Invalid => "Incorrect app authentication information: AppCode invalid",
            Self::Forbidden => "The app is not authorized to access the API",
            Self::Unavailable => "The authentication service is temporarily unavailable",
            Self::HttpsRequired => "The following protocol is supported: HTTPS",
        }
    }

    /// A short lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::HttpsRequired => "https_required",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: its reason and the request ID the answer carries.
#[derive(Debug, Clone)]
pub struct Rejection {
    kind: RejectionKind,
    request_id: HeaderValue,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, request_id: HeaderValue) -> Self {
        Self { kind, request_id }
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The request ID: the request's own `X-Request-Id` if it had a usable one, else a new one.
    pub fn request_id(&self) -> &HeaderValue {
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
        // Request IDs are accepted only as [A-Za-z0-9._-] and the messages are fixed ASCII, so
        // nothing needs escaping.
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
/// Implemented for closures `Fn(&Rejection) -> Response<B>`, so a gRPC service can answer with a
/// gRPC status instead of APIG JSON:
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
/// `X-Request-Id`. Works with any response body that can be built from [`Bytes`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApigJson;

impl<B: From<Bytes>> RejectResponse<B> for ApigJson {
    fn reject(&self, rejection: &Rejection) -> Response<B> {
        let mut res = Response::new(B::from(rejection.to_json()));
        *res.status_mut() = rejection.kind.status();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(X_REQUEST_ID, rejection.request_id.clone());
        if rejection.kind.status() == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("AppCode"));
        }
        res
    }
}

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's own ID when it is short and plain, else a fresh one.
pub(crate) fn request_id(incoming: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = incoming {
        let b = v.as_bytes();
        if (1..=64).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        {
            return v.clone();
        }
    }
    new_request_id()
}

/// 32 lowercase hex characters, like APIG's: a random per-process prefix and a counter, so IDs
/// are unique without a system call per request.
pub(crate) fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("the OS random number generator failed");
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut text = [0u8; 32];
    for (i, byte) in text.iter_mut().enumerate() {
        let word = if i < 16 { prefix } else { n };
        let nibble = (word >> (60 - 4 * (i % 16))) & 0xf;
        *byte = b"0123456789abcdef"[nibble as usize];
    }
    HeaderValue::from_bytes(&text).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_apig_json() {
        let r = Rejection::new(RejectionKind::Missing, HeaderValue::from_static("abc"));
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["error_code"], "APIG.0303");
        assert_eq!(
            v["error_msg"],
            "Incorrect app authentication information: AppCode missing"
        );
        assert_eq!(v["request_id"], "abc");
    }

    #[test]
    fn request_ids_are_unique_hex_and_unsafe_incoming_ones_are_replaced() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .as_bytes()
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // The second half counts up.
        let tail = |v: &HeaderValue| u64::from_str_radix(&v.to_str().unwrap()[16..], 16).unwrap();
        assert_eq!(tail(&b), tail(&a) + 1);
        let evil = HeaderValue::from_static("\"},{\"x\":1");
        assert_ne!(request_id(Some(&evil)), evil);
        let fine = HeaderValue::from_static("req-1.2_3");
        assert_eq!(request_id(Some(&fine)), fine);
    }
}
