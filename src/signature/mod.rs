//! Huawei Cloud `SDK-HMAC-SHA256` request signatures: verified, and made for clients and tests.
//!
//! The official SDKs sign a request with a key and its secret: a management-API caller's access
//! key (AK) and secret key (SK), or an app's `app_key` and `app_secret` on the data plane (APIG's
//! app authentication). This module recomputes that signature on the server side, byte for byte
//! as `huaweicloudsdkcore` 3.1.219 (`signer/signer.py`) computes it, and checks it: the one
//! verifier of the management API ([`admin`](crate::admin), feature `admin`) and of the layer
//! ([`AppAuth`](crate::layer::AppAuth)). [`sign`](fn@sign) is the client's side.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use apig_appcode::signature::{self, SecretKey, SignatureError, DEFAULT_MAX_SKEW};
//!
//! let at = UNIX_EPOCH + Duration::from_secs(1_704_164_645); // 2024-01-02T03:04:05Z
//! let body = br#"{"app_code":null}"#;
//! let (mut parts, ()) = http::Request::post("/v2/p1/apigw/instances/i1/apps/a1/app-codes")
//!     .header("host", "127.0.0.1:8080")
//!     .header("content-type", "application/json;charset=utf-8")
//!     .header("x-project-id", "p1")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! signature::sign(&mut parts, body, "AK1", &SecretKey::from("SK1"), at).unwrap();
//!
//! let secret_of = |ak: &str| (ak == "AK1").then(|| SecretKey::from("SK1"));
//! let ok = signature::verify(&parts, body, secret_of, at, DEFAULT_MAX_SKEW).unwrap();
//! assert_eq!(ok.access_key, "AK1");
//! assert!(ok.is_signed("x-project-id"));
//!
//! // One changed byte of the body, and the signature no longer matches.
//! let tampered = br#"{"app_code":true}"#;
//! let err = signature::verify(&parts, tampered, secret_of, at, DEFAULT_MAX_SKEW).unwrap_err();
//! assert_eq!(err, SignatureError::SignatureMismatch);
//! ```
//!
//! # The SDK's algorithm, as the server must replay it
//!
//! ```text
//! canonical request = METHOD "\n" URI "\n" QUERY "\n" HEADERS "\n" SIGNED_HEADERS "\n" PAYLOAD
//! string to sign    = "SDK-HMAC-SHA256\n" X-Sdk-Date "\n" hex(sha256(canonical request))
//! signature         = hex(hmac_sha256(key = SK as UTF-8, string to sign))
//! Authorization     = "SDK-HMAC-SHA256 Access=" AK ", SignedHeaders=" a;b;c ", Signature=" hex
//! ```
//!
//! * `METHOD` is upper-cased.
//! * `URI`: the whole path is percent-decoded first, *then* split on `/`, each segment is
//!   re-encoded keeping only `A-Z a-z 0-9 - _ . ~` (upper-case hex), and a `/` is appended
//!   when the result does not already end in one. So `a%2Fb` signs as `a/b`, and `/x` and
//!   `/x/` sign alike.
//! * `QUERY`: `key=value` pairs sorted by the *decoded* key, then the *decoded* value (code
//!   point order, which is UTF-8 byte order), each encoded like a path segment, joined by
//!   `&`. The SDK sends exactly this string as its query, but other orders are accepted.
//! * `HEADERS`: `name:value\n` for each signed header, the value stripped of whitespace as
//!   Python's `str.strip()` does; `SIGNED_HEADERS` is the list from `Authorization`.
//! * `PAYLOAD`: the empty-body hash when the body is empty, else the literal value of a
//!   (signed) `X-Sdk-Content-Sha256` header if present and non-empty (the SDK sets it to
//!   `UNSIGNED-PAYLOAD` for non-JSON content types), else hex SHA-256 of the body.
//!
//! # Decisions where the SDK gives no answer
//!
//! Inputs the SDK can never produce are rejected rather than guessed at: malformed percent
//! escapes or non-UTF-8 after decoding (Python would keep or replace them, making distinct
//! wire forms collide), non-UTF-8 signed header values, a signed header sent twice, a
//! non-canonical `X-Sdk-Date`, and any `Authorization` not in the SDK's exact layout. In the
//! query, `+` is a literal plus (the SDK always writes `%2B`) and a bare `key` is `key=`.
//!
//! # Errors and the client
//!
//! Every [`SignatureError`] maps to HTTP 401 (see [`SignatureError::error_code`]); in
//! particular an unknown AK and a wrong signature produce the same answer, and `verify`
//! spends the same work on both, so a caller cannot probe for valid access keys.

mod canonical;
mod date;
mod error;
mod header;
mod secret;
mod sign;
#[cfg(test)]
mod vectors;
mod verify;

use std::time::Duration;

pub use canonical::{canonical_request, string_to_sign, Payload};
pub use error::SignatureError;
pub(crate) use header::access_key_of;
pub use header::{parse_authorization, Authorization};
pub use secret::SecretKey;
pub use sign::sign;
pub use verify::{read_signature, verify, PayloadAuth, SignedRequest, VerifiedAccessKey};

/// The algorithm name that opens the `Authorization` header and the string to sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// Header carrying the signing time, `%Y%m%dT%H%M%SZ` in UTC (lower-case, as `http` names it).
pub const DATE_HEADER: &str = "x-sdk-date";

/// Header that, when signed, replaces the body hash in the canonical request.
pub const CONTENT_SHA256_HEADER: &str = "x-sdk-content-sha256";

/// The value of [`CONTENT_SHA256_HEADER`] by which a signer opts out of hashing the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The largest clock difference the gateway tolerates between signer and server.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Headers that must be covered by the signature, or a request could be replayed to another
/// host or at another time.
pub const REQUIRED_SIGNED_HEADERS: [&str; 2] = ["host", DATE_HEADER];
