//! [`SignatureError`]: why a signature was refused, told apart for logs, alike for clients.

use std::fmt;

use http::header::AUTHORIZATION;

use crate::apig_error::code;

use super::ALGORITHM;

/// Why a request's signature was not accepted.
///
/// Messages never contain the secret key, the signature or any header value. All variants
/// answer the client the same way (HTTP 401, see [`SignatureError::error_code`]); the
/// variants exist for server logs. In particular [`SignatureError::UnknownAccessKey`] and
/// [`SignatureError::SignatureMismatch`] must not be told apart in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// A header the scheme needs is missing (e.g. `authorization`).
    MissingHeader(&'static str),
    /// A header that must appear once (`authorization` or a signed header) appears twice.
    DuplicateHeader(String),
    /// A signed header's value is not UTF-8, so the SDK could not have signed it.
    InvalidHeaderValue(String),
    /// The `Authorization` header is not in the SDK's layout; the text says which part.
    MalformedAuthorization(&'static str),
    /// The `Authorization` header names another scheme (e.g. `SDK-HMAC-SM3`, `Bearer`).
    UnsupportedAlgorithm,
    /// `X-Sdk-Date` is not a valid `%Y%m%dT%H%M%SZ` UTC time.
    DateMalformed,
    /// `X-Sdk-Date` is further from the server clock than the allowed skew.
    DateOutOfWindow,
    /// A header that must be signed (`host`, `x-sdk-date`) is not in `SignedHeaders`.
    UnsignedRequiredHeader(&'static str),
    /// A header listed in `SignedHeaders` is not in the request.
    SignedHeaderAbsent(String),
    /// The path has a malformed percent escape or does not decode to UTF-8.
    MalformedPath,
    /// The query has a malformed percent escape or does not decode to UTF-8.
    MalformedQuery,
    /// No secret is known for the access key. Answer exactly as for a bad signature.
    UnknownAccessKey,
    /// The signature does not match the request.
    SignatureMismatch,
    /// The signature is valid but the signed `X-Sdk-Content-Sha256` is neither
    /// `UNSIGNED-PAYLOAD` nor the body's SHA-256.
    PayloadHashMismatch,
    /// The signature covers the body, which the verifier was not given (see
    /// [`Payload::Unread`](super::Payload::Unread)).
    PayloadUnread,
}

impl SignatureError {
    /// The APIG error code to answer with: `APIG.1000` when no signature was sent at all,
    /// `APIG.1002` ("incorrect token or signature") for everything else.
    ///
    /// ```
    /// use apig_appcode::signature::SignatureError;
    ///
    /// assert_eq!(SignatureError::MissingHeader("authorization").error_code(), "APIG.1000");
    /// assert_eq!(SignatureError::UnknownAccessKey.error_code(), "APIG.1002");
    /// assert_eq!(SignatureError::SignatureMismatch.error_code(), "APIG.1002");
    /// ```
    pub fn error_code(&self) -> &'static str {
        if self.is_unsigned() {
            code::NO_CREDENTIALS
        } else {
            code::INCORRECT_CREDENTIALS
        }
    }

    /// Whether the request carried no signature at all (no `Authorization` header), as opposed
    /// to one that does not verify.
    pub fn is_unsigned(&self) -> bool {
        matches!(self, Self::MissingHeader(name) if *name == AUTHORIZATION.as_str())
    }

    /// The HTTP status to answer with: always 401.
    pub fn http_status(&self) -> u16 {
        401
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader(name) => write!(f, "missing header `{name}`"),
            Self::DuplicateHeader(name) => write!(f, "header `{name}` appears more than once"),
            Self::InvalidHeaderValue(name) => write!(f, "header `{name}` is not valid UTF-8"),
            Self::MalformedAuthorization(why) => write!(f, "malformed Authorization header: {why}"),
            Self::UnsupportedAlgorithm => {
                write!(f, "unsupported authorization scheme (expected {ALGORITHM})")
            }
            Self::DateMalformed => write!(f, "X-Sdk-Date is not a valid YYYYMMDDTHHMMSSZ time"),
            Self::DateOutOfWindow => write!(f, "X-Sdk-Date is outside the allowed clock skew"),
            Self::UnsignedRequiredHeader(name) => {
                write!(f, "header `{name}` must be among the signed headers")
            }
            Self::SignedHeaderAbsent(name) => write!(f, "signed header `{name}` is absent"),
            Self::MalformedPath => write!(f, "request path is not validly percent-encoded UTF-8"),
            Self::MalformedQuery => write!(f, "query string is not validly percent-encoded UTF-8"),
            Self::UnknownAccessKey => write!(f, "unknown access key"),
            Self::SignatureMismatch => write!(f, "signature does not match"),
            Self::PayloadHashMismatch => {
                write!(f, "signed X-Sdk-Content-Sha256 does not match the body")
            }
            Self::PayloadUnread => write!(f, "the signature covers a body that was not read"),
        }
    }
}

impl std::error::Error for SignatureError {}
