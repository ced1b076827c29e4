//! The `Authorization` header: `SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`,
//! parsed in the SDK's exact layout only.

use std::fmt;

use crate::hex;
use crate::secret::REDACTED;

use super::{SignatureError, ALGORITHM};

/// Bounds the work a single request can cause before any key is looked up. The SDK's own
/// header is about 200 bytes with 5 signed headers.
const MAX_AUTHORIZATION_LEN: usize = 4096;
const MAX_SIGNED_HEADERS: usize = 64;

/// The parsed `Authorization` header of an `SDK-HMAC-SHA256` request.
///
/// `Debug` shows the access key and signed headers but not the signature.
#[derive(Clone, Copy)]
pub struct Authorization<'a> {
    pub(super) access_key: &'a str,
    pub(super) signed_headers: &'a str,
    pub(super) signature: [u8; 32],
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
            .field("signature", &format_args!("{REDACTED}"))
            .finish()
    }
}

/// Parses an `Authorization` value of the exact form the SDK writes:
/// `SDK-HMAC-SHA256 Access={AK}, SignedHeaders={a;b;c}, Signature={64 lower-case hex}`.
///
/// The SDK emits single spaces in fixed places, so nothing else is tolerated beyond
/// surrounding spaces or tabs (which HTTP parsers strip anyway). The AK must be visible
/// ASCII without `,`; signed header names must be lower-case HTTP tokens in strictly
/// ascending order, as the SDK sorts them.
///
/// ```
/// use apig_appcode::signature::{parse_authorization, SignatureError};
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
    let (access_key, rest) = split_field(
        rest,
        " SignedHeaders=",
        "expected `, SignedHeaders=` after the access key",
    )?;
    let (signed_headers, signature_hex) = split_field(
        rest,
        " Signature=",
        "expected `, Signature=` after the signed headers",
    )?;

    check_access_key(access_key)?;
    validate_signed_headers(signed_headers)?;
    let signature = hex::decode(signature_hex.as_bytes())
        .ok_or(Malformed("signature is not 64 lower-case hex digits"))?;

    Ok(Authorization {
        access_key,
        signed_headers,
        signature,
    })
}

/// `rest` split at its first comma into a field's value and the text after `next`, which must
/// follow the comma; `missing` says what was expected when it does not.
///
/// Split at commas (a byte search), then check what follows: neither an access key nor a
/// signed header name may hold a comma, so the first comma ends each.
fn split_field<'a>(
    rest: &'a str,
    next: &str,
    missing: &'static str,
) -> Result<(&'a str, &'a str), SignatureError> {
    rest.split_once(',')
        .and_then(|(value, rest)| Some((value, rest.strip_prefix(next)?)))
        .ok_or(SignatureError::MalformedAuthorization(missing))
}

/// The access key an `Authorization` value names, without checking the rest: for a quick
/// decision (is this key worth reading a body for?) that [`parse_authorization`] confirms.
pub(crate) fn access_key_of(value: &str) -> Option<&str> {
    let rest = value
        .trim_start_matches([' ', '\t'])
        .strip_prefix(ALGORITHM)?
        .strip_prefix(" Access=")?;
    rest.split_once(',').map(|(key, _)| key)
}

/// An AK as the `Authorization` header can carry it: visible ASCII without `,`.
pub(super) fn check_access_key(access_key: &str) -> Result<(), SignatureError> {
    if access_key.is_empty()
        || !access_key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
    {
        return Err(SignatureError::MalformedAuthorization(
            "access key is empty or has invalid characters",
        ));
    }
    Ok(())
}

/// Signed header names as the SDK lists them: lower-case tokens, strictly ascending.
pub(super) fn validate_signed_headers(list: &str) -> Result<(), SignatureError> {
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

#[cfg(test)]
mod tests {
    use super::super::vectors::{auth_header, parts_of, vector};
    use super::*;

    #[test]
    fn the_access_key_is_found_without_a_full_parse() {
        let good = auth_header(&parts_of(vector("client_post_create_app_code")));
        assert_eq!(access_key_of(&good), Some("HPUAEXAMPLEAK0000001"));
        assert_eq!(
            access_key_of(&good),
            parse_authorization(&good).ok().map(|a| a.access_key())
        );
        for other in [
            "Bearer x",
            "SDK-HMAC-SHA256 Access=k",
            "SDK-HMAC-SM3 Access=k, S",
        ] {
            assert_eq!(access_key_of(other), None, "{other}");
        }
    }

    #[test]
    fn garbage_authorization_is_rejected() {
        use SignatureError::{MalformedAuthorization as Malformed, UnsupportedAlgorithm};

        let good = auth_header(&parts_of(vector("client_post_create_app_code")));
        assert!(parse_authorization(&good).is_ok());
        let sig = &good[good.len() - 64..];
        let too_many: Vec<String> = (0..65).map(|i| format!("h{i:03}")).collect();
        // Each error with the values that must get it.
        let cases: Vec<(SignatureError, Vec<String>)> = vec![
            (
                UnsupportedAlgorithm,
                vec![
                    "Bearer abc".into(),
                    "SDK-HMAC-SM3 Access=a, SignedHeaders=host, Signature=00".into(),
                    "sdk-hmac-sha256 Access=a, SignedHeaders=host, Signature=00".into(),
                ],
            ),
            (
                Malformed("expected `Access=` after the scheme"),
                vec![
                    good.replacen("SDK-HMAC-SHA256 ", "SDK-HMAC-SHA256  ", 1),
                    good.replacen("Access=", "access=", 1),
                    "SDK-HMAC-SHA256".into(),
                ],
            ),
            (
                Malformed("expected `, SignedHeaders=` after the access key"),
                vec![good.replacen(", SignedHeaders", ",SignedHeaders", 1)],
            ),
            (
                Malformed("expected `, Signature=` after the signed headers"),
                vec![good.replacen(", Signature", " ,Signature", 1)],
            ),
            (
                Malformed("signature is not 64 lower-case hex digits"),
                vec![
                    good.replacen(sig, &sig.to_uppercase(), 1),
                    format!("{good}0"),
                    format!("{good}, Extra=1"),
                ],
            ),
            (
                Malformed("signed headers are not strictly ascending"),
                vec![
                    good.replacen("content-type;host", "host;content-type", 1),
                    good.replacen("content-type;host", "content-type;content-type;host", 1),
                ],
            ),
            (
                Malformed("signed header name is empty or not a lower-case token"),
                vec![
                    good.replacen("content-type", "Content-Type", 1),
                    good.replacen("host;", ";", 1),
                ],
            ),
            (
                Malformed("access key is empty or has invalid characters"),
                vec![
                    good.replacen("Access=HPUAEXAMPLEAK0000001", "Access=", 1),
                    good.replacen("Access=HPUAEXAMPLEAK0000001", "Access=a b", 1),
                ],
            ),
            (Malformed("empty scheme"), vec!["".into()]),
            (Malformed("too long"), vec!["x".repeat(5000)]),
            (
                Malformed("too many signed headers"),
                vec![format!(
                    "SDK-HMAC-SHA256 Access=a, SignedHeaders={}, Signature={sig}",
                    too_many.join(";")
                )],
            ),
        ];
        for (expected, values) in cases {
            for value in values {
                assert_eq!(
                    parse_authorization(&value).map(|_| ()),
                    Err(expected.clone()),
                    "{value:?}"
                );
            }
        }
    }
}
