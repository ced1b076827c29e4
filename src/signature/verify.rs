//! [`verify`]: the server's side, replaying the SDK's signature over the request as received.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::request::Parts;
use subtle::ConstantTimeEq;

use super::canonical::{
    build_canonical_request, hmac_sha256, signed_header_value, single_header, PayloadLine,
};
use super::date::{check_skew, parse_sdk_date};
use super::{
    parse_authorization, string_to_sign, Authorization, Payload, SecretKey, SignatureError,
    CONTENT_SHA256_HEADER, DATE_HEADER, REQUIRED_SIGNED_HEADERS, UNSIGNED_PAYLOAD,
};

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

/// Verifies the `SDK-HMAC-SHA256` signature of a request.
///
/// `parts` and `body` must be the request as received (hyper keeps the path exactly as
/// sent). `lookup_secret` maps an access key to its secret, or `None` if unknown. The signing
/// time must lie within `max_skew` of `now` in either direction (use [`DEFAULT_MAX_SKEW`](super::DEFAULT_MAX_SKEW)).
/// `host` and `x-sdk-date` must be signed, and every signed header must be present.
///
/// An unknown access key still costs a full HMAC over the request (with a dummy key), so
/// neither the answer nor its timing reveals which access keys exist.
///
/// See the [module example](super) for a request signed with [`sign`](fn@super::sign) and verified;
/// [`read_signature`] does the same in two steps, for a verifier that looks the key up itself.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    lookup_secret: impl FnOnce(&str) -> Option<SecretKey>,
    now: SystemTime,
    max_skew: Duration,
) -> Result<VerifiedAccessKey, SignatureError> {
    let signed = read_signature(parts, now, max_skew)?;
    let secret = lookup_secret(signed.access_key());
    signed.verify(Payload::Body(body), secret.as_ref())
}

/// A request's signature, read and within its time window, whose key is still to be looked up.
///
/// Everything that needs neither the secret nor the body is checked by [`read_signature`]:
/// the `Authorization` layout, the algorithm, that `host` and `x-sdk-date` are signed, and the
/// date. A server can so refuse a malformed or stale request before it reads a body or asks for
/// a key.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use apig_appcode::signature::{self, Payload, SecretKey, DEFAULT_MAX_SKEW};
///
/// let at = UNIX_EPOCH + Duration::from_secs(1_704_164_645);
/// let (mut parts, ()) = http::Request::get("/items?limit=5")
///     .header("host", "api.example.com")
///     .body(())
///     .unwrap()
///     .into_parts();
/// signature::sign(&mut parts, b"", "app-key", &SecretKey::from("app-secret"), at).unwrap();
///
/// let signed = signature::read_signature(&parts, at, DEFAULT_MAX_SKEW).unwrap();
/// assert_eq!(signed.access_key(), "app-key");
/// let secret = SecretKey::from("app-secret");
/// assert!(signed.verify(Payload::Body(b""), Some(&secret)).is_ok());
/// ```
pub struct SignedRequest<'a> {
    parts: &'a Parts,
    auth: Authorization<'a>,
    date: Cow<'a, str>,
    signed_at: SystemTime,
}

impl fmt::Debug for SignedRequest<'_> {
    /// The parsed header (its signature redacted) and the date; not the request's headers,
    /// which may hold other credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("auth", &self.auth)
            .field("date", &self.date)
            .finish_non_exhaustive()
    }
}

/// Reads the signature of `parts` and checks its date against `now` (see [`SignedRequest`]).
pub fn read_signature(
    parts: &Parts,
    now: SystemTime,
    max_skew: Duration,
) -> Result<SignedRequest<'_>, SignatureError> {
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
    Ok(SignedRequest {
        parts,
        auth,
        date,
        signed_at,
    })
}

impl<'a> SignedRequest<'a> {
    /// The key named by `Access=`.
    pub fn access_key(&self) -> &'a str {
        self.auth.access_key()
    }

    /// The parsed `Authorization` header.
    pub fn authorization(&self) -> &Authorization<'a> {
        &self.auth
    }

    /// Whether the signer declared `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` (signed), so that
    /// the body need not be read: verify with [`Payload::Unread`] (or the body, when empty).
    pub fn declares_unsigned_payload(&self) -> bool {
        self.auth.signs(CONTENT_SHA256_HEADER)
            && matches!(
                signed_header_value(self.parts, CONTENT_SHA256_HEADER).as_deref(),
                Ok(UNSIGNED_PAYLOAD)
            )
    }

    /// Checks the signature with `secret` (`None`: the key is unknown) over the request and
    /// `payload`.
    ///
    /// An unknown key still costs a full HMAC over the request (with a dummy key), so neither
    /// the answer nor its timing tells which keys exist; the comparison is in constant time.
    pub fn verify(
        &self,
        payload: Payload<'_>,
        secret: Option<&SecretKey>,
    ) -> Result<VerifiedAccessKey, SignatureError> {
        let (canonical, declared) = build_canonical_request(self.parts, payload, &self.auth)?;
        let to_sign = string_to_sign(&self.date, &canonical);

        // Any key works here: the result is discarded when the access key is unknown.
        let dummy = SecretKey::new(vec![0u8; 32]);
        let key = secret.unwrap_or(&dummy);
        let expected = hmac_sha256(key.expose(), to_sign.as_bytes())?;
        let matches: bool = expected[..].ct_eq(&self.auth.signature[..]).into();
        if secret.is_none() {
            return Err(SignatureError::UnknownAccessKey);
        }
        if !matches {
            return Err(SignatureError::SignatureMismatch);
        }

        let payload = match declared {
            PayloadLine::BodyHash => PayloadAuth::Signed,
            PayloadLine::Declared(value) if value == UNSIGNED_PAYLOAD => PayloadAuth::Unsigned,
            // A signer that declares a hash must declare the right one, or the body is forged.
            PayloadLine::Declared(value) if value == payload.sha256_hex()? => PayloadAuth::Signed,
            PayloadLine::Declared(_) => return Err(SignatureError::PayloadHashMismatch),
        };

        Ok(VerifiedAccessKey {
            access_key: self.auth.access_key().to_owned(),
            signed_headers: self.auth.signed_header_names().map(str::to_owned).collect(),
            payload,
            signed_at: self.signed_at,
        })
    }
}

// The random-input loop draws from the same seeded noise as the management API's garbage test.
#[cfg(test)]
#[path = "../../tests/support/noise.rs"]
mod noise;

#[cfg(test)]
mod tests {
    use http::request::Parts;
    use http::{HeaderValue, Version};

    use super::super::vectors::*;
    use super::super::{parse_authorization, DEFAULT_MAX_SKEW};
    use super::noise::Noise;
    use super::*;

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
    fn a_body_hash_verifies_as_the_body_and_an_unread_body_only_when_unsigned() {
        use sha2::{Digest, Sha256};

        for v in generated() {
            let parts = parts_of(v);
            let signed = read_signature(&parts, vector_now(), DEFAULT_MAX_SKEW).unwrap();
            let secret = SecretKey::from(v.sk());
            let digest: [u8; 32] = Sha256::digest(&v.body).into();
            assert_eq!(
                signed.verify(Payload::Sha256(&digest), Some(&secret)),
                verify_vector(v, &parts, &v.body),
                "{}",
                v.name
            );
        }
        let v = vector("bare_unsigned_payload");
        let parts = parts_of(v);
        let signed = read_signature(&parts, vector_now(), DEFAULT_MAX_SKEW).unwrap();
        assert!(signed.declares_unsigned_payload());
        let secret = SecretKey::from(v.sk());
        assert_eq!(
            signed
                .verify(Payload::Unread, Some(&secret))
                .unwrap()
                .payload,
            PayloadAuth::Unsigned
        );
        let v = vector("client_post_create_app_code");
        let parts = parts_of(v);
        let signed = read_signature(&parts, vector_now(), DEFAULT_MAX_SKEW).unwrap();
        assert!(!signed.declares_unsigned_payload());
        assert_eq!(
            signed.verify(Payload::Unread, Some(&SecretKey::from(v.sk()))),
            Err(SignatureError::PayloadUnread)
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
        let path = format!("{}/x", v.path);
        type Change<'a> = &'a dyn Fn(&mut Parts);
        let changes: [(&str, Change); 4] = [
            ("a signed header", &|p| {
                set_header(p, "x-project-id", "proj2")
            }),
            ("the host", &|p| set_header(p, "host", "127.0.0.1:1")),
            ("the method", &|p| p.method = http::Method::PUT),
            ("the path", &|p| p.uri = path.parse().unwrap()),
        ];
        for (what, change) in changes {
            let mut parts = parts_of(v);
            change(&mut parts);
            assert_eq!(
                verify_vector(v, &parts, &v.body),
                Err(SignatureError::SignatureMismatch),
                "{what}"
            );
        }

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
        let wrong = verify_with_sk(&parts, &v.body, Some("not-the-sk"));
        assert_eq!(wrong, Err(SignatureError::SignatureMismatch));
        let unknown = verify_with_sk(&parts, &v.body, None);
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
    fn required_headers_must_be_signed_and_present() {
        let v = vector("client_post_create_app_code");
        for header in ["x-project-id", "x-sdk-date"] {
            let mut parts = parts_of(v);
            parts.headers.remove(header);
            assert_eq!(
                verify_vector(v, &parts, &v.body),
                Err(SignatureError::SignedHeaderAbsent(header.into()))
            );
        }

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
        for (header, again) in [("x-project-id", "proj1"), ("authorization", "x")] {
            let mut parts = parts_of(v);
            parts
                .headers
                .append(header, HeaderValue::from_static(again));
            assert_eq!(
                verify_vector(v, &parts, &v.body),
                Err(SignatureError::DuplicateHeader(header.into()))
            );
        }
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
            verify_with_sk(&parts, &v.body, Some("x")).unwrap_err(),
            verify_with_sk(&parts, &v.body, None).unwrap_err(),
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
    fn random_inputs_never_panic() {
        let mut noise = Noise::seeded(0x9e37_79b9_7f4a_7c15);
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
