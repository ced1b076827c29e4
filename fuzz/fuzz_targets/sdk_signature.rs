//! `SDK-HMAC-SHA256`: the `Authorization` parser, the canonical request built from a fuzzed
//! method, path, query and headers, verification (of the body, or of its hash as the gateway
//! checks a streamed body), and signing.
//!
//! Input: newline-separated fields, so that seeds stay readable text:
//! `authorization \n method \n target (path?query) \n host \n x-sdk-date \n header name \n
//! header value \n body...`. Missing fields are empty. Asserts: no panic anywhere; a request
//! that `sign` accepted verifies with the same key and time (the signer and the verifier agree
//! on every canonical form); verifying with the body's SHA-256 answers as with the body.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use apig_appcode::signature::{
    self, Payload, SecretKey, SignatureError, CONTENT_SHA256_HEADER, DEFAULT_MAX_SKEW,
};
use sha2::{Digest, Sha256};
use http::{HeaderName, HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;

const AK: &str = "HPUAFUZZEXAMPLEAK0001";
const SK: &str = "fuzz-secret-key";

fuzz_target!(|data: &[u8]| {
    let mut fields = data.splitn(8, |&b| b == b'\n');
    let mut next = || fields.next().unwrap_or_default();
    let (auth, method, target, host, date, name, value) =
        (next(), next(), next(), next(), next(), next(), next());
    let body = next();

    // The parser on any text (header values reach it only as UTF-8).
    let auth_text = String::from_utf8_lossy(auth);
    let parsed = signature::parse_authorization(&auth_text);

    let Ok(method) = Method::from_bytes(if method.is_empty() { b"GET" } else { method }) else {
        return;
    };
    let target = if target.is_empty() { &b"/"[..] } else { target };
    let Ok(mut req) = Request::builder().method(method).uri(target).body(()) else {
        return;
    };
    let headers = req.headers_mut();
    for (n, v) in [(&b"host"[..], host), (b"x-sdk-date", date), (name, value)] {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            headers.append(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_bytes(auth) {
        headers.append(http::header::AUTHORIZATION, v);
    }
    let (mut parts, ()) = req.into_parts();

    if let Ok(auth) = &parsed {
        let _ = signature::canonical_request(&parts, body, auth);
    }
    let secret = |ak: &str| (ak == AK).then(|| SecretKey::from(SK));
    let now = UNIX_EPOCH + Duration::from_secs(1_704_164_645);
    let _ = signature::verify(&parts, body, secret, now, DEFAULT_MAX_SKEW);
    let _ = signature::verify(&parts, body, secret, now, Duration::MAX);

    // The two-step check over the body's hash answers as the one-step check over the body.
    let digest: [u8; 32] = Sha256::digest(body).into();
    let whole = signature::verify(&parts, body, secret, now, DEFAULT_MAX_SKEW);
    let hashed = signature::read_signature(&parts, now, DEFAULT_MAX_SKEW).and_then(|signed| {
        let key = secret(signed.access_key());
        signed.verify(Payload::Sha256(&digest), key.as_ref())
    });
    assert_eq!(whole, hashed);

    // Whatever `sign` accepts, `verify` must accept too.
    if signature::sign(&mut parts, body, AK, &SecretKey::from(SK), now).is_ok() {
        let declared = parts.headers.contains_key(CONTENT_SHA256_HEADER);
        match signature::verify(&parts, body, secret, now, DEFAULT_MAX_SKEW) {
            Ok(ok) => assert_eq!(ok.access_key, AK),
            // A fuzzed X-Sdk-Content-Sha256 is signed as given but is not the body's hash.
            Err(SignatureError::PayloadHashMismatch) if declared && !body.is_empty() => {}
            Err(e) => panic!("signed by `sign` but refused by `verify`: {e}"),
        }
    }
});
