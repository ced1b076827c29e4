//! Why a request was refused, and how the refusal is answered.

use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::request_id::{RequestId, X_REQUEST_ID};

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
    request_id: RequestId,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, request_id: RequestId) -> Self {
        Self { kind, request_id }
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
        let status = rejection.kind.status();
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(X_REQUEST_ID, rejection.request_id.to_header_value());
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("AppCode"));
        }
        let mut res = Response::new(B::from(rejection.to_json()));
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apig_error;

    #[test]
    fn plain_bodies_equal_the_escaping_builder() {
        let id = RequestId::new();
        for kind in [
            RejectionKind::Missing,
            RejectionKind::Invalid,
            RejectionKind::Forbidden,
            RejectionKind::Unavailable,
            RejectionKind::HttpsRequired,
        ] {
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
}
