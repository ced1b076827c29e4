//! Verification of Huawei Cloud `SDK-HMAC-SHA256` (AK/SK) request signatures.
//!
//! The official SDKs sign every management-API request with the caller's access key (AK)
//! and secret key (SK). This module recomputes that signature on the server side, byte for
//! byte as `huaweicloudsdkcore` 3.1.219 (`signer/signer.py`) computes it, and checks it.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use apig_appcode::admin::signature::{self, SecretKey, SignatureError, DEFAULT_MAX_SKEW};
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

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderMap, Uri, Version};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

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

/// Hex SHA-256 of the empty string: the SDK's payload hash for an empty body.
const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Bounds the work a single request can cause before any key is looked up. The SDK's own
/// header is about 200 bytes with 5 signed headers.
const MAX_AUTHORIZATION_LEN: usize = 4096;
const MAX_SIGNED_HEADERS: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// A secret key (SK). Its bytes never appear in `Debug` output and are zeroed on drop.
///
/// Build it from the final owned buffer (`String` or `Vec<u8>`): the conversion moves the
/// buffer without copying, so no stray copy of the secret is left behind.
///
/// ```
/// use apig_appcode::admin::signature::SecretKey;
///
/// let sk = SecretKey::from(String::from("my-secret-key"));
/// assert_eq!(format!("{sk:?}"), "SecretKey(<redacted>)");
/// ```
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// Wraps the SK's bytes. The SDK uses the UTF-8 encoding of the SK string as HMAC key.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<String> for SecretKey {
    fn from(value: String) -> Self {
        Self(value.into_bytes())
    }
}

impl From<&str> for SecretKey {
    fn from(value: &str) -> Self {
        Self(value.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for SecretKey {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The parsed `Authorization` header of an `SDK-HMAC-SHA256` request.
///
/// `Debug` shows the access key and signed headers but not the signature.
#[derive(Clone, Copy)]
pub struct Authorization<'a> {
    access_key: &'a str,
    signed_headers: &'a str,
    signature: [u8; 32],
}

impl<'a> Authorization<'a> {
    /// The access key (AK) named by `Access=`.
    pub fn access_key(&self) -> &'a str {
        self.access_key
    }

    /// The signed header list exactly as sent: lower-case names, strictly ascending, `;`-joined.
    pub fn signed_headers(&self) -> &'a str {
        self.signed_headers
    }

    /// The signed header names, in the order they enter the canonical request.
    pub fn signed_header_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.signed_headers.split(';')
    }

    /// Whether `name` (lower-case) is among the signed headers.
    pub fn signs(&self, name: &str) -> bool {
        self.signed_header_names().any(|n| n == name)
    }
}

impl fmt::Debug for Authorization<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("access_key", &self.access_key)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .finish()
    }
}

/// How far the signature vouches for the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadAuth {
    /// The body is covered: its SHA-256 (or the empty-body hash) was signed.
    Signed,
    /// The signer sent `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` with a non-empty body, so the
    /// body is not authenticated. The SDK does this only for non-JSON content types; an API
    /// whose bodies are all JSON (like AppCode management) should refuse such a request.
    Unsigned,
}

/// What a successful [`verify`] established about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedAccessKey {
    /// The access key whose secret produced the signature.
    pub access_key: String,
    /// The signed header names (lower-case, ascending): headers outside this list were not
    /// authenticated and must not be trusted, e.g. check `x-project-id` is here before use.
    pub signed_headers: Vec<String>,
    /// Whether the body is covered by the signature.
    pub payload: PayloadAuth,
    /// The signing time from `X-Sdk-Date`, e.g. for a replay cache.
    pub signed_at: SystemTime,
}

impl VerifiedAccessKey {
    /// Whether header `name` (lower-case) was covered by the signature.
    pub fn is_signed(&self, name: &str) -> bool {
        self.signed_headers.iter().any(|n| n == name)
    }
}

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
}

impl SignatureError {
    /// The APIG error code to answer with: `APIG.1000` when no signature was sent at all,
    /// `APIG.1002` ("incorrect token or signature") for everything else.
    ///
    /// ```
    /// use apig_appcode::admin::signature::SignatureError;
    ///
    /// assert_eq!(SignatureError::MissingHeader("authorization").error_code(), "APIG.1000");
    /// assert_eq!(SignatureError::UnknownAccessKey.error_code(), "APIG.1002");
    /// assert_eq!(SignatureError::SignatureMismatch.error_code(), "APIG.1002");
    /// ```
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::MissingHeader(name) if *name == AUTHORIZATION.as_str() => "APIG.1000",
            _ => "APIG.1002",
        }
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
        }
    }
}

impl std::error::Error for SignatureError {}

/// Parses an `Authorization` value of the exact form the SDK writes:
/// `SDK-HMAC-SHA256 Access={AK}, SignedHeaders={a;b;c}, Signature={64 lower-case hex}`.
///
/// The SDK emits single spaces in fixed places, so nothing else is tolerated beyond
/// surrounding spaces or tabs (which HTTP parsers strip anyway). The AK must be visible
/// ASCII without `,`; signed header names must be lower-case HTTP tokens in strictly
/// ascending order, as the SDK sorts them.
///
/// ```
/// use apig_appcode::admin::signature::{parse_authorization, SignatureError};
///
/// let sig = "0".repeat(64);
/// let value = format!("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature={sig}");
/// let auth = parse_authorization(&value).unwrap();
/// assert_eq!(auth.access_key(), "AK1");
/// assert!(auth.signs("host"));
/// assert_eq!(parse_authorization("Bearer x").unwrap_err(), SignatureError::UnsupportedAlgorithm);
/// ```
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, SignatureError> {
    use SignatureError::MalformedAuthorization as Malformed;

    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(Malformed("too long"));
    }
    let value = value.trim_matches([' ', '\t']);
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.is_empty() {
        return Err(Malformed("empty scheme"));
    }
    if scheme != ALGORITHM {
        return Err(SignatureError::UnsupportedAlgorithm);
    }
    let rest = params
        .strip_prefix("Access=")
        .ok_or(Malformed("expected `Access=` after the scheme"))?;
    let (access_key, rest) = rest.split_once(", SignedHeaders=").ok_or(Malformed(
        "expected `, SignedHeaders=` after the access key",
    ))?;
    let (signed_headers, signature_hex) = rest.split_once(", Signature=").ok_or(Malformed(
        "expected `, Signature=` after the signed headers",
    ))?;

    if access_key.is_empty()
        || !access_key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
    {
        return Err(Malformed("access key is empty or has invalid characters"));
    }
    validate_signed_headers(signed_headers)?;
    let signature = decode_signature(signature_hex)
        .ok_or(Malformed("signature is not 64 lower-case hex digits"))?;

    Ok(Authorization {
        access_key,
        signed_headers,
        signature,
    })
}

fn validate_signed_headers(list: &str) -> Result<(), SignatureError> {
    use SignatureError::MalformedAuthorization as Malformed;

    let mut previous: Option<&str> = None;
    for (count, name) in list.split(';').enumerate() {
        if count >= MAX_SIGNED_HEADERS {
            return Err(Malformed("too many signed headers"));
        }
        if name.is_empty() || !name.bytes().all(is_lowercase_token_byte) {
            return Err(Malformed(
                "signed header name is empty or not a lower-case token",
            ));
        }
        // The SDK sorts the names, so anything else (including a repeat) is not its output.
        if previous.is_some_and(|p| p >= name) {
            return Err(Malformed("signed headers are not strictly ascending"));
        }
        previous = Some(name);
    }
    Ok(())
}

/// RFC 9110 `tchar` without upper-case letters (the SDK lower-cases every name).
fn is_lowercase_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn decode_signature(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *slot = (lower_hex_value(pair[0])? << 4) | lower_hex_value(pair[1])?;
    }
    Some(out)
}

fn lower_hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Builds the SDK's canonical request for `parts` and `body`, covering the headers that
/// `auth` lists as signed.
///
/// ```
/// use apig_appcode::admin::signature::{canonical_request, parse_authorization};
///
/// let (parts, ()) = http::Request::get("/v2/p1/apps?limit=5&a=%7e")
///     .header("host", "localhost:8080")
///     .header("x-sdk-date", "20240102T030405Z")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let value = format!("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature={}", "0".repeat(64));
/// let auth = parse_authorization(&value).unwrap();
/// assert_eq!(
///     canonical_request(&parts, b"", &auth).unwrap(),
///     "GET\n/v2/p1/apps/\na=~&limit=5\nhost:localhost:8080\nx-sdk-date:20240102T030405Z\n\n\
///      host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn canonical_request(
    parts: &Parts,
    body: &[u8],
    auth: &Authorization<'_>,
) -> Result<String, SignatureError> {
    build_canonical_request(parts, body, auth).map(|(canonical, _)| canonical)
}

/// The payload line of the canonical request, remembered for the checks after the HMAC.
enum PayloadLine {
    BodyHash,
    Declared(String),
}

fn build_canonical_request(
    parts: &Parts,
    body: &[u8],
    auth: &Authorization<'_>,
) -> Result<(String, PayloadLine), SignatureError> {
    let uri = canonical_uri(parts.uri.path())?;
    let query = canonical_query(parts.uri.query().unwrap_or(""))?;

    let mut headers = String::new();
    let mut declared = None;
    for name in auth.signed_header_names() {
        let value = signed_header_value(parts, name)?;
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&value);
        headers.push('\n');
        if name == CONTENT_SHA256_HEADER {
            declared = Some(value);
        }
    }

    let (payload_line, payload) = match declared {
        // The SDK only consults the header for a non-empty body, and only when non-empty.
        Some(value) if !body.is_empty() && !value.is_empty() => {
            // The SDK re-stores every header as `value.encode('utf-8').decode('latin-1')`
            // before it reads this one back, then hashes the canonical request as UTF-8:
            // each byte of the value becomes one character. Only non-ASCII values differ.
            let literal: String = value.bytes().map(char::from).collect();
            (literal, PayloadLine::Declared(value.into_owned()))
        }
        _ if body.is_empty() => (EMPTY_SHA256_HEX.to_owned(), PayloadLine::BodyHash),
        _ => (hex_lower(&Sha256::digest(body)), PayloadLine::BodyHash),
    };

    let method = parts.method.as_str().to_ascii_uppercase();
    let signed = auth.signed_headers();
    let canonical = format!("{method}\n{uri}\n{query}\n{headers}\n{signed}\n{payload_line}");
    Ok((canonical, payload))
}

/// Builds the string to sign from the `X-Sdk-Date` value and the canonical request.
///
/// ```
/// use apig_appcode::admin::signature::string_to_sign;
///
/// let s = string_to_sign("20240102T030405Z", "");
/// assert_eq!(
///     s,
///     "SDK-HMAC-SHA256\n20240102T030405Z\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    let digest = hex_lower(&Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{sdk_date}\n{digest}")
}

/// Verifies the `SDK-HMAC-SHA256` signature of a request.
///
/// `parts` and `body` must be the request as received (hyper keeps the path exactly as
/// sent). `lookup_secret` maps an access key to its secret, or `None` if unknown. The signing
/// time must lie within `max_skew` of `now` in either direction (use [`DEFAULT_MAX_SKEW`]).
/// `host` and `x-sdk-date` must be signed, and every signed header must be present.
///
/// An unknown access key still costs a full HMAC over the request (with a dummy key), so
/// neither the answer nor its timing reveals which access keys exist.
///
/// See the [module example](self) for a request signed with [`sign`] and verified.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    lookup_secret: impl FnOnce(&str) -> Option<SecretKey>,
    now: SystemTime,
    max_skew: Duration,
) -> Result<VerifiedAccessKey, SignatureError> {
    let header = single_header(&parts.headers, AUTHORIZATION.as_str())?
        .ok_or(SignatureError::MissingHeader("authorization"))?;
    let header = std::str::from_utf8(header.as_bytes())
        .map_err(|_| SignatureError::MalformedAuthorization("not UTF-8"))?;
    let auth = parse_authorization(header)?;

    for required in REQUIRED_SIGNED_HEADERS {
        if !auth.signs(required) {
            return Err(SignatureError::UnsignedRequiredHeader(required));
        }
    }

    let date = signed_header_value(parts, DATE_HEADER)?;
    let signed_at = parse_sdk_date(&date)?;
    check_skew(signed_at, now, max_skew)?;

    let (canonical, payload) = build_canonical_request(parts, body, &auth)?;
    let to_sign = string_to_sign(&date, &canonical);

    let secret = lookup_secret(auth.access_key());
    // Any key works here: the result is discarded when the access key is unknown.
    let dummy = SecretKey::new(vec![0u8; 32]);
    let key = secret.as_ref().unwrap_or(&dummy);
    let expected = hmac_sha256(key.expose(), to_sign.as_bytes())?;
    let matches: bool = expected[..].ct_eq(&auth.signature[..]).into();
    if secret.is_none() {
        return Err(SignatureError::UnknownAccessKey);
    }
    if !matches {
        return Err(SignatureError::SignatureMismatch);
    }

    let payload = match payload {
        PayloadLine::BodyHash => PayloadAuth::Signed,
        PayloadLine::Declared(value) if value == UNSIGNED_PAYLOAD => PayloadAuth::Unsigned,
        // A signer that declares a hash must declare the right one, or the body is forged.
        PayloadLine::Declared(value) if value == hex_lower(&Sha256::digest(body)) => {
            PayloadAuth::Signed
        }
        PayloadLine::Declared(_) => return Err(SignatureError::PayloadHashMismatch),
    };

    Ok(VerifiedAccessKey {
        access_key: auth.access_key().to_owned(),
        signed_headers: auth.signed_header_names().map(str::to_owned).collect(),
        payload,
        signed_at,
    })
}

/// Signs a request the way the SDK does, so that [`verify`] accepts it: sets `X-Sdk-Date` to
/// `at`, signs every header present whose name has no `_` (and `host`, which must be present),
/// covers `body` by its SHA-256, and sets `Authorization`.
///
/// For clients and tests: the official SDKs do this themselves. An `Authorization` header
/// already present is replaced, not signed.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use apig_appcode::admin::signature::{sign, SecretKey};
///
/// let (mut parts, ()) = http::Request::get("/v2/p1/apigw/instances/i1/apps")
///     .header("host", "localhost")
///     .body(())
///     .unwrap()
///     .into_parts();
/// sign(&mut parts, b"", "AK1", &SecretKey::from("SK1"), UNIX_EPOCH + Duration::from_secs(60)).unwrap();
/// assert_eq!(parts.headers["x-sdk-date"], "19700101T000100Z");
/// assert!(parts.headers["authorization"]
///     .to_str()
///     .unwrap()
///     .starts_with("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature="));
/// ```
pub fn sign(
    parts: &mut Parts,
    body: &[u8],
    access_key: &str,
    secret: &SecretKey,
    at: SystemTime,
) -> Result<(), SignatureError> {
    use SignatureError::MalformedAuthorization as Malformed;

    if access_key.is_empty()
        || !access_key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
    {
        return Err(Malformed("access key is empty or has invalid characters"));
    }
    let date = format_sdk_date(at)?;
    parts.headers.remove(AUTHORIZATION);
    parts.headers.insert(
        DATE_HEADER,
        http::HeaderValue::from_str(&date).map_err(|_| SignatureError::DateMalformed)?,
    );

    // `http` keeps header names lower-case; the SDK skips names containing `_`.
    let mut names: Vec<&str> = parts
        .headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| !name.contains('_'))
        .collect();
    if !names.contains(&"host") {
        names.push("host");
    }
    names.sort_unstable();
    names.dedup();
    let signed_headers = names.join(";");
    validate_signed_headers(&signed_headers)?;

    let auth = Authorization {
        access_key,
        signed_headers: &signed_headers,
        signature: [0; 32],
    };
    let (canonical, _) = build_canonical_request(parts, body, &auth)?;
    let mac = hmac_sha256(
        secret.expose(),
        string_to_sign(&date, &canonical).as_bytes(),
    )?;
    let value = format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={}",
        hex_lower(&mac)
    );
    let value = http::HeaderValue::from_str(&value)
        .map_err(|_| Malformed("access key is empty or has invalid characters"))?;
    parts.headers.insert(AUTHORIZATION, value);
    Ok(())
}

/// `at` as `%Y%m%dT%H%M%SZ` (UTC), for years 1 to 9999.
fn format_sdk_date(at: SystemTime) -> Result<String, SignatureError> {
    let secs = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => i64::try_from(before.duration().as_secs())
            .ok()
            .map(|s| -s - i64::from(before.duration().subsec_nanos() > 0)),
    }
    .ok_or(SignatureError::DateMalformed)?;
    let nanos = secs
        .checked_mul(1_000_000_000)
        .ok_or(SignatureError::DateMalformed)?;
    // "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" for years 0 to 9999.
    let text = crate::store::Timestamp::from_unix_nanos(nanos).to_string();
    let b = text.as_bytes();
    if b.len() != 30 || text.starts_with("0000") {
        return Err(SignatureError::DateMalformed);
    }
    Ok(format!(
        "{}{}{}T{}{}{}Z",
        &text[0..4],
        &text[5..7],
        &text[8..10],
        &text[11..13],
        &text[14..16],
        &text[17..19]
    ))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32], SignatureError> {
    // HMAC accepts keys of any length, so this cannot fail; fail closed all the same.
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SignatureError::SignatureMismatch)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// The single value of `name`, `None` when absent; an error when repeated, because the SDK
/// sends each header once and a second copy would make the signed value ambiguous.
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h http::HeaderValue>, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(SignatureError::DuplicateHeader(name.to_owned()));
    }
    Ok(first)
}

/// The canonical (trimmed) value of a signed header.
fn signed_header_value<'p>(parts: &'p Parts, name: &str) -> Result<Cow<'p, str>, SignatureError> {
    let raw = match single_header(&parts.headers, name)? {
        Some(value) => value.as_bytes(),
        // HTTP/2 carries the host in `:authority`, which `http` keeps in the URI.
        None if name == "host" => host_from_authority(&parts.uri, parts.version)
            .ok_or_else(|| SignatureError::SignedHeaderAbsent(name.to_owned()))?
            .as_bytes(),
        None => return Err(SignatureError::SignedHeaderAbsent(name.to_owned())),
    };
    let text = std::str::from_utf8(raw)
        .map_err(|_| SignatureError::InvalidHeaderValue(name.to_owned()))?;
    Ok(Cow::Borrowed(text.trim_matches(is_python_whitespace)))
}

fn host_from_authority(uri: &Uri, version: Version) -> Option<&str> {
    if version < Version::HTTP_2 {
        return None;
    }
    uri.authority()
        .map(|a| a.as_str())
        .filter(|a| !a.contains('@'))
}

/// Python's `str.isspace()`, which `str.strip()` uses: Unicode `White_Space` plus the
/// ASCII separators U+001C..U+001F.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `unquote(path).split('/')`, each segment `quote(seg, safe='~')`, plus a trailing `/`.
fn canonical_uri(path: &str) -> Result<String, SignatureError> {
    // Only an authority-form target (CONNECT) has no path; the SDK never sends one.
    if path.is_empty() {
        return Ok("/".to_owned());
    }
    let decoded = percent_decode(path).ok_or(SignatureError::MalformedPath)?;
    let mut out = String::with_capacity(path.len() + 1);
    for (i, segment) in decoded.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        percent_encode_into(segment, &mut out);
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

/// The SDK's canonical query: pairs sorted on their decoded forms, then encoded.
fn canonical_query(query: &str) -> Result<String, SignatureError> {
    let mut pairs = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        let key = percent_decode(key).ok_or(SignatureError::MalformedQuery)?;
        let value = percent_decode(value).ok_or(SignatureError::MalformedQuery)?;
        pairs.push((key, value));
    }
    // Python sorts (key, value) tuples by code point; UTF-8 byte order is the same order.
    pairs.sort_unstable();

    let mut out = String::with_capacity(query.len());
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode_into(key, &mut out);
        out.push('=');
        percent_encode_into(value, &mut out);
    }
    Ok(out)
}

/// Strict percent-decoding into UTF-8; `None` on a malformed escape or invalid UTF-8.
fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    if !bytes.contains(&b'%') {
        return Some(input.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(any_hex_value)?;
            let lo = bytes.get(i + 2).copied().and_then(any_hex_value)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn any_hex_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => lower_hex_value(b),
    }
}

/// Python's `quote(s, safe='~')`: keep `A-Z a-z 0-9 - _ . ~`, escape each other UTF-8 byte.
fn percent_encode_into(input: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Parses `%Y%m%dT%H%M%SZ` as the SDK writes it (always zero-padded, 16 characters).
///
/// Python's `strptime` would also take unpadded fields, but the SDK formats the header with
/// `strftime` and signs the re-formatted time, so only the padded form can verify.
fn parse_sdk_date(value: &str) -> Result<SystemTime, SignatureError> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(SignatureError::DateMalformed);
    }
    let number = |range: std::ops::Range<usize>| -> Result<u32, SignatureError> {
        let digits = b.get(range).ok_or(SignatureError::DateMalformed)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            if d.is_ascii_digit() {
                Ok(acc * 10 + u32::from(d - b'0'))
            } else {
                Err(SignatureError::DateMalformed)
            }
        })
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);

    // Python's datetime has no year 0 and rejects leap seconds.
    let valid = year >= 1
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return Err(SignatureError::DateMalformed);
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    let time = if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    time.ok_or(SignatureError::DateMalformed)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn check_skew(
    signed_at: SystemTime,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), SignatureError> {
    let skew = match now.duration_since(signed_at) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > max_skew {
        return Err(SignatureError::DateOutOfWindow);
    }
    Ok(())
}

#[cfg(test)]
mod vectors;

#[cfg(test)]
mod tests {
    use super::vectors::*;
    use super::*;
    use http::{HeaderName, HeaderValue};

    #[test]
    fn generated_vectors_match_the_sdk_byte_for_byte() {
        assert!(generated().len() >= 10);
        for v in generated() {
            let parts = parts_of(v);
            let header = auth_header(&parts);
            let auth = parse_authorization(&header).unwrap();
            let canonical = canonical_request(&parts, &v.body, &auth).unwrap();
            assert_eq!(
                canonical, v.canonical_request,
                "canonical request of {}",
                v.name
            );
            let date = parts.headers[DATE_HEADER].to_str().unwrap();
            let to_sign = string_to_sign(date, &canonical);
            assert_eq!(to_sign, v.string_to_sign, "string to sign of {}", v.name);
            let mac = hmac_sha256(v.sk().as_bytes(), to_sign.as_bytes()).unwrap();
            assert_eq!(hex_lower(&mac), v.signature, "signature of {}", v.name);
        }
    }

    #[test]
    fn generated_vectors_verify() {
        for v in generated() {
            let result = verify_vector(v, &parts_of(v), &v.body);
            match v.expect.as_str() {
                "ok" => {
                    let ok = result.unwrap_or_else(|e| panic!("{}: {e}", v.name));
                    assert_eq!(ok.access_key, v.ak);
                    assert_eq!(ok.signed_at, vector_now());
                    assert!(ok.is_signed("host") && ok.is_signed("x-sdk-date"));
                }
                "PayloadHashMismatch" => {
                    assert_eq!(
                        result,
                        Err(SignatureError::PayloadHashMismatch),
                        "{}",
                        v.name
                    )
                }
                other => panic!("unknown expectation {other}"),
            }
        }
    }

    #[test]
    fn reference_vectors_hash_as_published() {
        assert_eq!(reference().len(), 4);
        for v in reference() {
            let parts = parts_of(v);
            let header = auth_header(&parts);
            let auth = parse_authorization(&header).unwrap();
            let canonical = canonical_request(&parts, &v.body, &auth).unwrap();
            assert_eq!(canonical, v.canonical_request, "{}", v.name);
            let digest = hex_lower(&Sha256::digest(canonical.as_bytes()));
            assert!(v.string_to_sign.ends_with(&digest), "{}", v.name);
            assert_eq!(
                string_to_sign("20240102T030405Z", &canonical),
                v.string_to_sign
            );
            // The SK is unpublished: any guess must fail as a plain mismatch.
            let result = verify(
                &parts,
                &v.body,
                |_| Some("guess".into()),
                vector_now(),
                DEFAULT_MAX_SKEW,
            );
            assert_eq!(result, Err(SignatureError::SignatureMismatch));
        }
    }

    #[test]
    fn payload_modes() {
        let v = vector("bare_unsigned_payload");
        let ok = verify_vector(v, &parts_of(v), &v.body).unwrap();
        assert_eq!(ok.payload, PayloadAuth::Unsigned);
        // UNSIGNED-PAYLOAD means the body is not covered: another body still verifies.
        let ok = verify_vector(v, &parts_of(v), b"other").unwrap();
        assert_eq!(ok.payload, PayloadAuth::Unsigned);

        let v = vector("bare_unsigned_payload_empty_body");
        assert_eq!(
            verify_vector(v, &parts_of(v), &v.body).unwrap().payload,
            PayloadAuth::Signed
        );
        let v = vector("client_post_create_app_code");
        assert_eq!(
            verify_vector(v, &parts_of(v), &v.body).unwrap().payload,
            PayloadAuth::Signed
        );
    }

    #[test]
    fn tampered_body_is_rejected() {
        let v = vector("client_post_create_app_code");
        let mut body = v.body.to_vec();
        body[20] ^= 1;
        assert_eq!(
            verify_vector(v, &parts_of(v), &body),
            Err(SignatureError::SignatureMismatch)
        );
        // Dropping the body is tampering too.
        assert_eq!(
            verify_vector(v, &parts_of(v), b""),
            Err(SignatureError::SignatureMismatch)
        );
    }

    #[test]
    fn tampered_signed_header_path_or_query_is_rejected() {
        let v = vector("client_post_create_app_code");
        let mut parts = parts_of(v);
        set_header(&mut parts, "x-project-id", "proj2");
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignatureMismatch)
        );

        let mut parts = parts_of(v);
        set_header(&mut parts, "host", "127.0.0.1:1");
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignatureMismatch)
        );

        let mut parts = parts_of(v);
        parts.method = http::Method::PUT;
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignatureMismatch)
        );

        let mut parts = parts_of(v);
        parts.uri = format!("{}/x", v.path).parse().unwrap();
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignatureMismatch)
        );

        let q = vector("bare_get_query_mix");
        let mut parts = parts_of(q);
        parts.uri = format!("{}?{}", q.path, q.query.replace("limit=20", "limit=21"))
            .parse()
            .unwrap();
        assert_eq!(
            verify_vector(q, &parts, &q.body),
            Err(SignatureError::SignatureMismatch)
        );
    }

    #[test]
    fn unsigned_headers_and_equivalent_encodings_do_not_matter() {
        let v = vector("client_post_create_app_code");
        let mut parts = parts_of(v);
        set_header(&mut parts, "accept", "text/plain");
        set_header(&mut parts, "x_extra", "anything");
        assert!(verify_vector(v, &parts, &v.body).is_ok());

        // Extra whitespace around a signed value is stripped, as the SDK strips it.
        let mut parts = parts_of(v);
        set_header(&mut parts, "x-project-id", " \tproj1 \t");
        assert!(verify_vector(v, &parts, &v.body).is_ok());

        // The query may arrive in any order, with lower-case or needless escapes.
        let q = vector("bare_get_query_mix");
        let mut pieces: Vec<&str> = q.query.split('&').collect();
        pieces.reverse();
        let reordered = pieces
            .join("&")
            .replace("%C3%A9", "%c3%a9")
            .replace("zeta=last", "z%65ta=last");
        let mut parts = parts_of(q);
        parts.uri = format!("{}?{}", q.path, reordered).parse().unwrap();
        assert!(verify_vector(q, &parts, &q.body).is_ok());

        // A trailing slash does not change the canonical URI.
        let d = vector("client_delete_app_code");
        let mut parts = parts_of(d);
        parts.uri = format!("{}/", d.path).parse().unwrap();
        assert!(verify_vector(d, &parts, &d.body).is_ok());
    }

    #[test]
    fn wrong_secret_and_unknown_key_look_the_same_to_clients() {
        let v = vector("client_post_create_app_code");
        let parts = parts_of(v);
        let wrong = verify(
            &parts,
            &v.body,
            |_| Some("not-the-sk".into()),
            vector_now(),
            DEFAULT_MAX_SKEW,
        );
        assert_eq!(wrong, Err(SignatureError::SignatureMismatch));
        let unknown = verify(&parts, &v.body, |_| None, vector_now(), DEFAULT_MAX_SKEW);
        assert_eq!(unknown, Err(SignatureError::UnknownAccessKey));
        let (wrong, unknown) = (wrong.unwrap_err(), unknown.unwrap_err());
        assert_eq!(wrong.error_code(), unknown.error_code());
        assert_eq!(wrong.http_status(), unknown.http_status());
    }

    #[test]
    fn date_window_is_fifteen_minutes_each_way() {
        let v = vector("client_post_create_app_code");
        let parts = parts_of(v);
        let at = |offset: i64| {
            let now = if offset >= 0 {
                vector_now() + Duration::from_secs(offset.unsigned_abs())
            } else {
                vector_now() - Duration::from_secs(offset.unsigned_abs())
            };
            verify(&parts, &v.body, lookup(v), now, DEFAULT_MAX_SKEW)
        };
        assert!(at(15 * 60).is_ok());
        assert!(at(-15 * 60).is_ok());
        assert_eq!(at(16 * 60), Err(SignatureError::DateOutOfWindow));
        assert_eq!(at(-16 * 60), Err(SignatureError::DateOutOfWindow));
        assert_eq!(at(15 * 60 + 1), Err(SignatureError::DateOutOfWindow));
    }

    #[test]
    fn changed_or_malformed_date_is_rejected() {
        let v = vector("client_post_create_app_code");
        let mut parts = parts_of(v);
        set_header(&mut parts, "x-sdk-date", "20240102T030406Z");
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignatureMismatch)
        );
        for bad in [
            "2024-01-02T03:04:05Z",
            "20240102T030405z",
            "2024012T030405Z",
            "20240230T000000Z",
            "",
        ] {
            set_header(&mut parts, "x-sdk-date", bad);
            assert_eq!(
                verify_vector(v, &parts, &v.body),
                Err(SignatureError::DateMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn date_parsing() {
        let secs =
            |s: &str| parse_sdk_date(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(secs("19700101T000000Z"), Ok(0));
        assert_eq!(secs("20240102T030405Z"), Ok(VECTOR_TIME));
        assert_eq!(secs("20240229T235959Z"), Ok(1_709_251_199));
        assert_eq!(secs("20000229T000000Z"), Ok(951_782_400));
        assert!(parse_sdk_date("19690101T000000Z").is_ok());
        assert!(parse_sdk_date("00010101T000000Z").is_ok());
        for bad in [
            "20230229T000000Z",
            "19000229T000000Z",
            "20241301T000000Z",
            "20240100T000000Z",
            "20240101T240000Z",
            "20240101T006000Z",
            "20240101T000060Z",
            "00000101T000000Z",
            "2024010 T000000Z",
            "+0240101T000000Z",
            "20240101T000000Z ",
            "２０２40101T0000Z",
        ] {
            assert_eq!(
                parse_sdk_date(bad),
                Err(SignatureError::DateMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn required_headers_must_be_signed_and_present() {
        let v = vector("client_post_create_app_code");
        let mut parts = parts_of(v);
        parts.headers.remove("x-project-id");
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignedHeaderAbsent("x-project-id".into()))
        );

        let mut parts = parts_of(v);
        parts.headers.remove("x-sdk-date");
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignedHeaderAbsent("x-sdk-date".into()))
        );

        let mut parts = parts_of(v);
        parts.headers.remove(AUTHORIZATION);
        let missing = verify_vector(v, &parts, &v.body).unwrap_err();
        assert_eq!(missing, SignatureError::MissingHeader("authorization"));
        assert_eq!(missing.error_code(), "APIG.1000");

        for (drop, variant) in [("host;", "host"), ("x-project-id;x-sdk-date", "x-sdk-date")] {
            let mut parts = parts_of(v);
            let replaced = auth_header(&parts).replacen(
                drop,
                if drop == "host;" { "" } else { "x-project-id" },
                1,
            );
            set_header(&mut parts, "authorization", &replaced);
            assert_eq!(
                verify_vector(v, &parts, &v.body),
                Err(SignatureError::UnsignedRequiredHeader(variant))
            );
        }
    }

    #[test]
    fn duplicated_or_non_utf8_signed_headers_are_rejected() {
        let v = vector("client_post_create_app_code");
        let mut parts = parts_of(v);
        parts
            .headers
            .append("x-project-id", HeaderValue::from_static("proj1"));
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::DuplicateHeader("x-project-id".into()))
        );
        let mut parts = parts_of(v);
        parts
            .headers
            .append(AUTHORIZATION, HeaderValue::from_static("x"));
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::DuplicateHeader("authorization".into()))
        );
        let mut parts = parts_of(v);
        parts.headers.insert(
            "x-project-id",
            HeaderValue::from_bytes(b"pr\xffoj").unwrap(),
        );
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::InvalidHeaderValue("x-project-id".into()))
        );
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        let v = vector("client_delete_app_code");
        for (target, expected) in [
            ("/v2/a%zz/b", SignatureError::MalformedPath),
            ("/v2/a%2", SignatureError::MalformedPath),
            ("/v2/%ff%fe", SignatureError::MalformedPath),
            ("/v2/x?a=%", SignatureError::MalformedQuery),
            ("/v2/x?a%G1=1", SignatureError::MalformedQuery),
            ("/v2/x?a=%C3", SignatureError::MalformedQuery),
        ] {
            let mut parts = parts_of(v);
            parts.uri = target.parse().unwrap();
            assert_eq!(verify_vector(v, &parts, &v.body), Err(expected), "{target}");
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_uri("/").unwrap(), "/");
        assert_eq!(canonical_uri("").unwrap(), "/");
        assert_eq!(canonical_uri("/a%2Fb/c").unwrap(), "/a/b/c/");
        assert_eq!(canonical_uri("/%7e%41 x!").unwrap(), "/~A%20x%21/");
        assert_eq!(canonical_query("").unwrap(), "");
        assert_eq!(canonical_query("b=2&&a&a=1+1").unwrap(), "a=&a=1%2B1&b=2");
        // Sorted on decoded text: '.' < 'a' < '{' although "%7B" < "." < "a" encoded.
        assert_eq!(canonical_query("k=%7B&k=a&k=.").unwrap(), "k=.&k=a&k=%7B");
        assert_eq!(canonical_query("k=%C3%A9&k=~").unwrap(), "k=~&k=%C3%A9");
    }

    #[test]
    fn python_whitespace_set() {
        let python: Vec<u32> = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
        ]
        .into_iter()
        .chain(0x2000..=0x200a)
        .chain([0x2028, 0x2029, 0x202f, 0x205f, 0x3000])
        .collect();
        let ours: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_python_whitespace(c))
            .map(u32::from)
            .collect();
        assert_eq!(ours, python);
    }

    #[test]
    fn garbage_authorization_is_rejected() {
        let good = auth_header(&parts_of(vector("client_post_create_app_code")));
        assert!(parse_authorization(&good).is_ok());
        let sig = &good[good.len() - 64..];
        let cases: Vec<(String, SignatureError)> = vec![
            ("Bearer abc".into(), SignatureError::UnsupportedAlgorithm),
            (
                "SDK-HMAC-SM3 Access=a, SignedHeaders=host, Signature=00".into(),
                SignatureError::UnsupportedAlgorithm,
            ),
            (
                "sdk-hmac-sha256 Access=a, SignedHeaders=host, Signature=00".into(),
                SignatureError::UnsupportedAlgorithm,
            ),
            (
                good.replacen("SDK-HMAC-SHA256 ", "SDK-HMAC-SHA256  ", 1),
                SignatureError::MalformedAuthorization("expected `Access=` after the scheme"),
            ),
            (
                good.replacen(", SignedHeaders", ",SignedHeaders", 1),
                SignatureError::MalformedAuthorization(
                    "expected `, SignedHeaders=` after the access key",
                ),
            ),
            (
                good.replacen(", Signature", " ,Signature", 1),
                SignatureError::MalformedAuthorization(
                    "expected `, Signature=` after the signed headers",
                ),
            ),
            (
                good.replacen("Access=", "access=", 1),
                SignatureError::MalformedAuthorization("expected `Access=` after the scheme"),
            ),
            (
                good.replacen(sig, &sig.to_uppercase(), 1),
                SignatureError::MalformedAuthorization("signature is not 64 lower-case hex digits"),
            ),
            (
                format!("{good}0"),
                SignatureError::MalformedAuthorization("signature is not 64 lower-case hex digits"),
            ),
            (
                format!("{good}, Extra=1"),
                SignatureError::MalformedAuthorization("signature is not 64 lower-case hex digits"),
            ),
            (
                good.replacen("content-type;host", "host;content-type", 1),
                SignatureError::MalformedAuthorization("signed headers are not strictly ascending"),
            ),
            (
                good.replacen("content-type;host", "content-type;content-type;host", 1),
                SignatureError::MalformedAuthorization("signed headers are not strictly ascending"),
            ),
            (
                good.replacen("content-type", "Content-Type", 1),
                SignatureError::MalformedAuthorization(
                    "signed header name is empty or not a lower-case token",
                ),
            ),
            (
                good.replacen("host;", ";", 1),
                SignatureError::MalformedAuthorization(
                    "signed header name is empty or not a lower-case token",
                ),
            ),
            (
                good.replacen("Access=HPUAEXAMPLEAK0000001", "Access=", 1),
                SignatureError::MalformedAuthorization(
                    "access key is empty or has invalid characters",
                ),
            ),
            (
                good.replacen("Access=HPUAEXAMPLEAK0000001", "Access=a b", 1),
                SignatureError::MalformedAuthorization(
                    "access key is empty or has invalid characters",
                ),
            ),
            (
                "".into(),
                SignatureError::MalformedAuthorization("empty scheme"),
            ),
            (
                "SDK-HMAC-SHA256".into(),
                SignatureError::MalformedAuthorization("expected `Access=` after the scheme"),
            ),
            (
                "x".repeat(5000),
                SignatureError::MalformedAuthorization("too long"),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_authorization(&value).map(|_| ()),
                Err(expected),
                "{value:?}"
            );
        }
        let too_many: Vec<String> = (0..65).map(|i| format!("h{i:03}")).collect();
        let value = format!(
            "SDK-HMAC-SHA256 Access=a, SignedHeaders={}, Signature={sig}",
            too_many.join(";")
        );
        assert_eq!(
            parse_authorization(&value).map(|_| ()),
            Err(SignatureError::MalformedAuthorization(
                "too many signed headers"
            ))
        );
    }

    #[test]
    fn no_secret_in_debug_or_errors() {
        let v = vector("client_post_create_app_code");
        let key = SecretKey::from(v.sk());
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        let auth_value = auth_header(&parts_of(v));
        let auth = parse_authorization(&auth_value).unwrap();
        let shown = format!("{auth:?}");
        assert!(
            shown.contains(&v.ak) && !shown.contains(&v.signature),
            "{shown}"
        );

        let parts = parts_of(v);
        let mut errors = vec![
            verify(
                &parts,
                &v.body,
                |_| Some("x".into()),
                vector_now(),
                DEFAULT_MAX_SKEW,
            )
            .unwrap_err(),
            verify(&parts, &v.body, |_| None, vector_now(), DEFAULT_MAX_SKEW).unwrap_err(),
            verify(&parts, b"x", lookup(v), vector_now(), DEFAULT_MAX_SKEW).unwrap_err(),
        ];
        errors.push(parse_authorization(&auth_value.replacen("Access", "A", 1)).unwrap_err());
        for error in errors {
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(
                    !text.contains(v.sk()) && !text.contains(&v.signature),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn http2_host_comes_from_the_authority() {
        let v = vector("bare_host_with_port_non_ascii_sk");
        let mut parts = parts_of(v);
        parts.headers.remove("host");
        parts.uri = format!("http://apig.example.com:8443{}", v.path)
            .parse()
            .unwrap();
        assert_eq!(
            verify_vector(v, &parts, &v.body),
            Err(SignatureError::SignedHeaderAbsent("host".into()))
        );
        parts.version = Version::HTTP_2;
        assert!(verify_vector(v, &parts, &v.body).is_ok());
    }

    #[test]
    fn sign_reproduces_the_sdk_signature() {
        for v in generated().iter().filter(|v| v.expect == "ok") {
            let original = parts_of(v);
            let header = auth_header(&original);
            let auth = parse_authorization(&header).unwrap();
            // Only the headers the SDK had when it signed (the HTTP client adds the others).
            let mut parts = parts_of(v);
            let extra: Vec<HeaderName> = parts
                .headers
                .keys()
                .filter(|n| !auth.signs(n.as_str()))
                .cloned()
                .collect();
            for name in extra {
                parts.headers.remove(name);
            }
            let secret = SecretKey::from(v.sk());
            sign(&mut parts, &v.body, &v.ak, &secret, vector_now()).unwrap();
            assert_eq!(auth_header(&parts), header, "{}", v.name);
        }
    }

    #[test]
    fn signed_requests_verify_and_sdk_dates_round_trip() {
        let v = vector("client_post_create_app_code");
        let mut parts = parts_of(v);
        let secret = SecretKey::from(v.sk());
        let at = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31T23:59:59Z
        sign(&mut parts, &v.body, &v.ak, &secret, at).unwrap();
        assert_eq!(parts.headers[DATE_HEADER], "20991231T235959Z");
        let ok = verify(&parts, &v.body, lookup(v), at, DEFAULT_MAX_SKEW).unwrap();
        assert!(ok.is_signed("accept") && ok.is_signed("content-length"));
        assert_eq!(ok.signed_at, at);
        assert_eq!(
            format_sdk_date(UNIX_EPOCH - Duration::from_millis(1)).unwrap(),
            "19691231T235959Z"
        );
        assert_eq!(
            sign(&mut parts, b"", "a,b", &secret, at),
            Err(SignatureError::MalformedAuthorization(
                "access key is empty or has invalid characters"
            ))
        );
    }

    /// xorshift64*: a dependency-free source of reproducible noise for the fuzz loop.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
            let len = self.below(max + 1);
            (0..len)
                .map(|_| {
                    if alphabet.is_empty() {
                        self.next() as u8
                    } else {
                        alphabet[self.below(alphabet.len())]
                    }
                })
                .collect()
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let base = vector("bare_get_query_mix");
        let good = auth_header(&parts_of(base));
        let tricky = b"%/?&=;, ~+.TZ0123456789abcdefABCDEF\t\x00\xff\xc3\xa9SDK-HMAC-SHA256 Access=SignedHeaders=Signature=";
        for round in 0..20_000 {
            // Arbitrary text and mutated valid headers through the parser.
            let raw = noise.bytes(300, if round % 2 == 0 { &[] } else { tricky });
            let _ = parse_authorization(&String::from_utf8_lossy(&raw));
            let mut mutated = good.clone().into_bytes();
            for _ in 0..1 + noise.below(4) {
                let at = noise.below(mutated.len());
                mutated[at] = tricky[noise.below(tricky.len())];
            }
            let _ = parse_authorization(&String::from_utf8_lossy(&mutated));
            let _ = parse_sdk_date(&String::from_utf8_lossy(
                &noise.bytes(20, b"0123456789TZ\xff"),
            ));

            // Arbitrary paths, queries and header values through the whole verifier.
            let mut parts = parts_of(base);
            let path = noise.bytes(40, tricky);
            let query = noise.bytes(60, tricky);
            let target = format!(
                "/{}?{}",
                String::from_utf8_lossy(&path),
                String::from_utf8_lossy(&query)
            );
            if let Ok(uri) = target.parse() {
                parts.uri = uri;
            }
            let header = ["host", "x-sdk-date", "content-type", "authorization"][noise.below(4)];
            if let Ok(value) =
                HeaderValue::from_bytes(&noise.bytes(80, if round % 3 == 0 { &[] } else { tricky }))
            {
                parts.headers.insert(header, value);
            }
            let body = noise.bytes(16, &[]);
            let _ = verify(&parts, &body, lookup(base), vector_now(), DEFAULT_MAX_SKEW);
            let _ = verify(&parts, &body, |_| None, vector_now(), Duration::MAX);
        }
    }
}
