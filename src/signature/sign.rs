//! [`sign`]: the client's side, as the SDK signs, for clients and tests of [`verify`].
//!
//! [`verify`]: fn@super::verify

use std::time::SystemTime;

use http::header::AUTHORIZATION;
use http::request::Parts;

use crate::hex;

use super::canonical::{build_canonical_request, hmac_sha256};
use super::date::format_sdk_date;
use super::header::{check_access_key, validate_signed_headers};
use super::{
    string_to_sign, Authorization, Payload, SecretKey, SignatureError, ALGORITHM, DATE_HEADER,
};

/// Signs a request the way the SDK does, so that [`verify`](fn@super::verify) accepts it: sets `X-Sdk-Date` to
/// `at`, signs every header present whose name has no `_` (and `host`, which must be present),
/// covers `body` by its SHA-256, and sets `Authorization`.
///
/// For clients and tests: the official SDKs do this themselves. An `Authorization` header
/// already present is replaced, not signed.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use apig_appcode::signature::{sign, SecretKey};
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
    check_access_key(access_key)?;
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
    let (canonical, _) = build_canonical_request(parts, Payload::Body(body), &auth)?;
    let mac = hmac_sha256(
        secret.expose(),
        string_to_sign(&date, &canonical).as_bytes(),
    )?;
    let mut value =
        format!("{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature=");
    hex::push(&mut value, &mac);
    let value = http::HeaderValue::from_str(&value).map_err(|_| {
        SignatureError::MalformedAuthorization("access key is empty or has invalid characters")
    })?;
    parts.headers.insert(AUTHORIZATION, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderName;

    use super::super::vectors::*;
    use super::super::{parse_authorization, verify, DEFAULT_MAX_SKEW};
    use super::*;

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
}
