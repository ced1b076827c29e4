//! The SDK's recorded requests for the unit tests, read from `tests/sdk/vectors.json` (made by
//! `tests/sdk/gen_vectors.py` with the official Python SDK), and the helpers that replay them.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request};
use serde::{Deserialize, Deserializer};

use super::{verify, SecretKey, SignatureError, VerifiedAccessKey, DEFAULT_MAX_SKEW};

/// 2024-01-02T03:04:05Z, the X-Sdk-Date of every vector.
pub(super) const VECTOR_TIME: u64 = 1_704_164_645;

/// One request signed by the SDK, as it went over the wire.
#[derive(Deserialize)]
pub(super) struct SdkVector {
    pub(super) name: String,
    pub(super) ak: String,
    /// `None` for the reference vectors, whose SK is not published.
    sk: Option<String>,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    headers: Vec<(String, String)>,
    #[serde(rename = "body_b64", deserialize_with = "base64_bytes")]
    pub(super) body: Vec<u8>,
    pub(super) canonical_request: String,
    pub(super) string_to_sign: String,
    pub(super) signature: String,
    /// `ok`, or the name of the `SignatureError` variant `verify` must return.
    pub(super) expect: String,
}

impl SdkVector {
    /// The SK the vector was signed with; only the generated vectors have one.
    pub(super) fn sk(&self) -> &str {
        self.sk.as_deref().expect("a generated vector")
    }
}

#[derive(Deserialize)]
struct VectorFile {
    /// Generated with a known AK/SK by gen_vectors.py.
    vectors: Vec<SdkVector>,
    /// The four of shared/sdk-hmac-sha256-vectors.txt (SK unknown).
    reference: Vec<SdkVector>,
}

static FILE: LazyLock<VectorFile> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../tests/sdk/vectors.json"))
        .expect("tests/sdk/vectors.json is valid")
});

fn base64_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(serde::de::Error::custom)
}

/// The vectors generated with a known AK/SK.
pub(super) fn generated() -> &'static [SdkVector] {
    &FILE.vectors
}

/// The published vectors, whose SK is unknown.
pub(super) fn reference() -> &'static [SdkVector] {
    &FILE.reference
}

pub(super) fn vector(name: &str) -> &'static SdkVector {
    generated()
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

pub(super) fn vector_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(VECTOR_TIME)
}

/// The request exactly as the SDK sent it.
pub(super) fn parts_of(v: &SdkVector) -> Parts {
    let target = if v.query.is_empty() {
        v.path.clone()
    } else {
        format!("{}?{}", v.path, v.query)
    };
    let mut builder = Request::builder().method(v.method.as_str()).uri(target);
    for (name, value) in &v.headers {
        builder = builder.header(name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
    }
    builder.body(()).unwrap().into_parts().0
}

pub(super) fn lookup(v: &SdkVector) -> impl FnOnce(&str) -> Option<SecretKey> + '_ {
    move |ak| (ak == v.ak).then(|| SecretKey::from(v.sk()))
}

pub(super) fn verify_vector(
    v: &SdkVector,
    parts: &Parts,
    body: &[u8],
) -> Result<VerifiedAccessKey, SignatureError> {
    verify(parts, body, lookup(v), vector_now(), DEFAULT_MAX_SKEW)
}

/// Verifies `parts` and `body` at the vectors' time, `sk` being the secret of every access key
/// (`None`: no key is known).
pub(super) fn verify_with_sk(
    parts: &Parts,
    body: &[u8],
    sk: Option<&str>,
) -> Result<VerifiedAccessKey, SignatureError> {
    verify(
        parts,
        body,
        |_| sk.map(SecretKey::from),
        vector_now(),
        DEFAULT_MAX_SKEW,
    )
}

pub(super) fn set_header(parts: &mut Parts, name: &str, value: &str) {
    parts.headers.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_bytes(value.as_bytes()).unwrap(),
    );
}

pub(super) fn auth_header(parts: &Parts) -> String {
    parts.headers[AUTHORIZATION].to_str().unwrap().to_owned()
}
