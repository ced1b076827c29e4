//! Why a request was refused: each reason with the status, APIG error code and message it is
//! answered with. Beside [`apig_error`](crate::apig_error), which builds the body, rather than
//! in the layer, so that what counts rejections ([`metrics`](crate::metrics)) needs no layer.

use std::fmt;

use http::StatusCode;

use crate::apig_error::code;

/// The reason behind a [`Rejection`](crate::layer::Rejection).
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
    /// The app sent more requests than its quota allows: `429 APIG.0308`, with `Retry-After`.
    /// Answered by [`Throttle`](crate::throttle::Throttle), not by the AppCode layer.
    Throttled,
    /// The app's ACL refuses the client's address: `403 APIG.0402`.
    IpDenied,
    /// The app has an ACL and the client's address cannot be told (a trusted proxy forwarded
    /// something that is not an address): `403 APIG.0401`.
    UnknownClientIp,
    /// The app's quota for the current period is used up: `405 APIG.0501` (the status Huawei
    /// documents), with `Retry-After` (the period's end).
    QuotaExhausted,
    /// A signed request whose `Authorization` is missing (where only signatures are accepted),
    /// repeated or not in the SDK's layout: `401 APIG.0303`.
    SignatureMalformed,
    /// An `Authorization` of another scheme than `SDK-HMAC-SHA256`: `401 APIG.0303`.
    SignatureAlgorithm,
    /// A signed request without a valid `X-Sdk-Date`, or one further from the node's clock than
    /// 15 minutes: `401 APIG.0303`.
    SignatureDate,
    /// A signature that does not verify: an unknown app key, a wrong secret, a changed request.
    /// Deliberately one kind, so that a caller cannot tell which keys exist: `401 APIG.0303`.
    SignatureInvalid,
    /// A signed body longer than the 12 MB the gateway hashes: `413 APIG.0201`.
    BodyTooLarge,
    /// A signed body that broke off or was malformed before its end: `400 APIG.0201`.
    BodyIncomplete,
    /// A signed body that stopped arriving for longer than the body deadline: `408 APIG.0201`.
    BodyTimeout,
    /// A signed body that would take the bytes of signed bodies being read past the layer's
    /// cap ([`max_held_signed_bodies`](crate::layer::AppCodeAuthLayerBuilder::max_held_signed_bodies)),
    /// or past its app key's share of it: `503 APIG.0202`, with `Retry-After`.
    BodiesBusy,
}

impl RejectionKind {
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// Every kind, in the order of their counters.
    pub(crate) const ALL: [Self; 17] = [
        Self::Missing,
        Self::Invalid,
        Self::Forbidden,
        Self::Unavailable,
        Self::HttpsRequired,
        Self::Throttled,
        Self::IpDenied,
        Self::UnknownClientIp,
        Self::QuotaExhausted,
        Self::SignatureMalformed,
        Self::SignatureAlgorithm,
        Self::SignatureDate,
        Self::SignatureInvalid,
        Self::BodyTooLarge,
        Self::BodyIncomplete,
        Self::BodyTimeout,
        Self::BodiesBusy,
    ];

    /// Whether this refuses a signature (any of the `Signature*` kinds).
    pub(crate) fn is_signature(self) -> bool {
        matches!(
            self,
            Self::SignatureMalformed
                | Self::SignatureAlgorithm
                | Self::SignatureDate
                | Self::SignatureInvalid
        )
    }

    /// The HTTP status APIG answers with.
    pub fn status(self) -> StatusCode {
        self.status_and_code().0
    }

    /// The APIG error code.
    pub fn error_code(self) -> &'static str {
        self.status_and_code().1
    }

    /// Each kind's status beside its code, so that one reads APIG's table in one place.
    fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Self::Missing
            | Self::Invalid
            | Self::SignatureMalformed
            | Self::SignatureAlgorithm
            | Self::SignatureDate
            | Self::SignatureInvalid => (StatusCode::UNAUTHORIZED, code::APP_AUTH_FAILED),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, code::BAD_REQUEST),
            Self::BodyIncomplete => (StatusCode::BAD_REQUEST, code::BAD_REQUEST),
            Self::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, code::BAD_REQUEST),
            Self::Forbidden => (StatusCode::FORBIDDEN, code::APP_NOT_AUTHORIZED),
            Self::IpDenied => (StatusCode::FORBIDDEN, code::IP_NOT_AUTHORIZED),
            Self::UnknownClientIp => (StatusCode::FORBIDDEN, code::UNKNOWN_CLIENT_IP),
            Self::Unavailable | Self::BodiesBusy => {
                (StatusCode::SERVICE_UNAVAILABLE, code::BACKEND_UNAVAILABLE)
            }
            Self::HttpsRequired => (StatusCode::BAD_REQUEST, code::HTTPS_REQUIRED),
            Self::Throttled => (StatusCode::TOO_MANY_REQUESTS, code::THROTTLED),
            Self::QuotaExhausted => (StatusCode::METHOD_NOT_ALLOWED, code::APP_QUOTA_EXHAUSTED),
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
            Self::Throttled => "The throttling threshold has been reached",
            Self::IpDenied => "The IP address is not authorized to access the API",
            Self::UnknownClientIp => "Unknown client IP address",
            Self::QuotaExhausted => "The app quota has been used up",
            Self::SignatureMalformed => {
                "Incorrect app authentication information: Authorization missing or malformed"
            }
            Self::SignatureAlgorithm => {
                "Incorrect app authentication information: signature algorithm not supported"
            }
            Self::SignatureDate => {
                "Incorrect app authentication information: X-Sdk-Date missing or expired"
            }
            Self::SignatureInvalid => "Incorrect app authentication information: signature invalid",
            Self::BodyTooLarge => "Request entity too large",
            Self::BodyIncomplete => "Bad request: incomplete body",
            Self::BodyTimeout => "Request body timeout",
            Self::BodiesBusy => "Too many request bodies are being read; retry later",
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
            Self::Throttled => "throttled",
            Self::IpDenied => "ip_denied",
            Self::UnknownClientIp => "unknown_client_ip",
            Self::QuotaExhausted => "quota",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureAlgorithm => "signature_algorithm",
            Self::SignatureDate => "signature_date",
            Self::SignatureInvalid => "signature_invalid",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyIncomplete => "body_incomplete",
            Self::BodyTimeout => "body_timeout",
            Self::BodiesBusy => "bodies_busy",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
