//! The canonical request and the string to sign, rebuilt from the request as received, and
//! the HMAC over them.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use http::request::Parts;
use http::{HeaderMap, Uri, Version};
use sha2::{Digest, Sha256};

use crate::hex;
use crate::percent;

use super::{Authorization, SignatureError, ALGORITHM, CONTENT_SHA256_HEADER};

/// Hex SHA-256 of the empty string: the SDK's payload hash for an empty body.
const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type HmacSha256 = Hmac<Sha256>;

/// Builds the SDK's canonical request for `parts` and `body`, covering the headers that
/// `auth` lists as signed.
///
/// ```
/// use apig_appcode::signature::{canonical_request, parse_authorization};
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
    build_canonical_request(parts, Payload::Body(body), auth).map(|(canonical, _)| canonical)
}

/// What the verifier knows of a request's body.
///
/// ```
/// use apig_appcode::signature::Payload;
///
/// let body = Payload::Body(b"{}");
/// assert_eq!(body.sha256_hex().unwrap().len(), 64);
/// assert!(Payload::Body(b"").is_empty());
/// assert!(Payload::Unread.sha256_hex().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The whole body.
    Body(&'a [u8]),
    /// The SHA-256 of the whole body, computed as it arrived (so it need not be kept whole).
    Sha256(&'a [u8; 32]),
    /// The body was not read. Only a signature whose `X-Sdk-Content-Sha256` is
    /// `UNSIGNED-PAYLOAD` can verify, and the body counts as non-empty: a signer hashes an empty
    /// body whatever it declares, so an unread body that is in fact empty fails to verify.
    Unread,
}

impl Payload<'_> {
    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Body(body) => body.is_empty(),
            Self::Sha256(digest) => digest[..] == Sha256::digest([])[..],
            Self::Unread => false,
        }
    }

    /// Lower-case hex SHA-256 of the body; [`SignatureError::PayloadUnread`] when not read.
    pub fn sha256_hex(&self) -> Result<String, SignatureError> {
        match self {
            Self::Body(body) => Ok(sha256_hex(body)),
            Self::Sha256(digest) => Ok(hex_of(digest)),
            Self::Unread => Err(SignatureError::PayloadUnread),
        }
    }
}

fn hex_of(digest: &[u8; 32]) -> String {
    let mut out = String::with_capacity(64);
    hex::push(&mut out, digest);
    out
}

/// The payload line of the canonical request, remembered for the checks after the HMAC.
pub(super) enum PayloadLine {
    BodyHash,
    Declared(String),
}

pub(super) fn build_canonical_request(
    parts: &Parts,
    body: Payload<'_>,
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
        _ => (body.sha256_hex()?, PayloadLine::BodyHash),
    };

    let method = parts.method.as_str().to_ascii_uppercase();
    let signed = auth.signed_headers();
    let canonical = format!("{method}\n{uri}\n{query}\n{headers}\n{signed}\n{payload_line}");
    Ok((canonical, payload))
}

/// Builds the string to sign from the `X-Sdk-Date` value and the canonical request.
///
/// ```
/// use apig_appcode::signature::string_to_sign;
///
/// let s = string_to_sign("20240102T030405Z", "");
/// assert_eq!(
///     s,
///     "SDK-HMAC-SHA256\n20240102T030405Z\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    let digest = sha256_hex(canonical_request.as_bytes());
    format!("{ALGORITHM}\n{sdk_date}\n{digest}")
}

pub(super) fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32], SignatureError> {
    // HMAC accepts keys of any length, so this cannot fail; fail closed all the same.
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SignatureError::SignatureMismatch)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// The single value of `name`, `None` when absent; an error when repeated, because the SDK
/// sends each header once and a second copy would make the signed value ambiguous.
pub(super) fn single_header<'h>(
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
pub(super) fn signed_header_value<'p>(
    parts: &'p Parts,
    name: &str,
) -> Result<Cow<'p, str>, SignatureError> {
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
    let decoded = percent::decode(path).ok_or(SignatureError::MalformedPath)?;
    let mut out = String::with_capacity(path.len() + 1);
    for (i, segment) in decoded.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        percent::encode_into(segment, &mut out);
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
        let key = percent::decode(key).ok_or(SignatureError::MalformedQuery)?;
        let value = percent::decode(value).ok_or(SignatureError::MalformedQuery)?;
        pairs.push((key, value));
    }
    // Python sorts (key, value) tuples by code point; UTF-8 byte order is the same order.
    pairs.sort_unstable();

    let mut out = String::with_capacity(query.len());
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent::encode_into(key, &mut out);
        out.push('=');
        percent::encode_into(value, &mut out);
    }
    Ok(out)
}

/// Lower-case hex SHA-256, as the SDK hashes the body and the canonical request.
pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex_of(&Sha256::digest(data).into())
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::super::{parse_authorization, DATE_HEADER};
    use super::*;

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
            assert_eq!(
                hex::decode(v.signature.as_bytes()),
                Some(mac),
                "signature of {}",
                v.name
            );
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
            let digest = sha256_hex(canonical.as_bytes());
            assert!(v.string_to_sign.ends_with(&digest), "{}", v.name);
            assert_eq!(
                string_to_sign("20240102T030405Z", &canonical),
                v.string_to_sign
            );
            // The SK is unpublished: any guess must fail as a plain mismatch.
            let result = verify_with_sk(&parts, &v.body, Some("guess"));
            assert_eq!(result, Err(SignatureError::SignatureMismatch));
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
}
