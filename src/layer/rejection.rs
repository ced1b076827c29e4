//! A refused request ([`Rejection`]) and how the refusal is answered.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::rejection_kind::RejectionKind;
use crate::request_id::{RequestId, X_REQUEST_ID};

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
