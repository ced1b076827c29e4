//! App authentication by signature: which credentials the layer accepts ([`AppAuth`]), and the
//! check of a request signed with an app's key and secret (`SDK-HMAC-SHA256`, as Huawei's SDKs
//! sign), which ends in the same identity and admission as an AppCode's.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::request::Parts;
use http::{HeaderMap, HeaderName, Request};

use crate::cache::{Answer, Asking, ReadThrough};
use crate::identity::AppIdentity;
use crate::rejection_kind::RejectionKind;
use crate::signature::{self, Payload, SignatureError};

/// Which app credentials the layer accepts, as APIG's app authentication does: the AppCode
/// (simple authentication, the default), a signature made with the app's key and secret, or
/// either. A request that carries an AppCode is judged by it when AppCodes are accepted.
///
/// ```
/// use apig_appcode::layer::AppAuth;
///
/// let both: AppAuth = "appcode,signature".parse().unwrap();
/// assert_eq!(both, AppAuth::AppCodeOrSignature);
/// assert!(both.accepts_signature() && both.accepts_app_code());
/// assert_eq!(AppAuth::default(), AppAuth::AppCode);
/// assert!("bearer".parse::<AppAuth>().is_err());
/// ```
///
/// The signature covers the method, path, query, the signed headers and the body's SHA-256. The
/// body is not read here: [`SignedBodyLayer`](super::SignedBodyLayer), outside this layer, hashes
/// a signed body and leaves [`BodySha256`] in the request's extensions. Without it, a signature
/// verifies only when the body is declared unsigned (`X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`)
/// or is announced empty (`Content-Length: 0`).
///
/// # Accepting signatures
///
/// ```
/// use std::time::SystemTime;
/// use apig_appcode::layer::{AppAuth, SignedBodyLayer};
/// use apig_appcode::provider::StaticProvider;
/// use apig_appcode::signature::{self, SecretKey};
/// use apig_appcode::{AppCodeAuthLayer, AppIdentity};
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let auth = AppCodeAuthLayer::builder()
///     .provider(StaticProvider::builder().app_key("app-1", "key-1", "secret-1").build())
///     .app_auth(AppAuth::AppCodeOrSignature)
///     .build();
/// auth.cache().loaded().await;
/// let svc = ServiceBuilder::new()
///     .layer(SignedBodyLayer::new())
///     .layer(auth)
///     .service(service_fn(|req: Request<Full<Bytes>>| async move {
///         let id = req.extensions().get::<AppIdentity>().unwrap().app_id().to_owned();
///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(id))))
///     }));
///
/// let body = br#"{"name":"x"}"#;
/// let (mut parts, ()) = Request::post("/items?a=1")
///     .header("host", "api.example.com")
///     .header("content-type", "application/json")
///     .body(())
///     .unwrap()
///     .into_parts();
/// signature::sign(&mut parts, body, "key-1", &SecretKey::from("secret-1"), SystemTime::now())
///     .unwrap();
/// let req = Request::from_parts(parts, Full::new(Bytes::from_static(body)));
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AppAuth {
    /// `X-Apig-AppCode` only.
    #[default]
    AppCode,
    /// `SDK-HMAC-SHA256` signatures with the app's key and secret only.
    Signature,
    /// Either; a request with an AppCode header is judged by its AppCode.
    AppCodeOrSignature,
}

impl AppAuth {
    /// Whether AppCodes are accepted.
    pub fn accepts_app_code(self) -> bool {
        matches!(self, Self::AppCode | Self::AppCodeOrSignature)
    }

    /// Whether signatures are accepted.
    pub fn accepts_signature(self) -> bool {
        matches!(self, Self::Signature | Self::AppCodeOrSignature)
    }
}

impl fmt::Display for AppAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AppCode => "appcode",
            Self::Signature => "signature",
            Self::AppCodeOrSignature => "appcode,signature",
        })
    }
}

/// A text that names no [`AppAuth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAuthError;

impl fmt::Display for AppAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected `appcode`, `signature` or `appcode,signature`")
    }
}

impl std::error::Error for AppAuthError {}

impl FromStr for AppAuth {
    type Err = AppAuthError;

    /// `appcode`, `signature`, or both separated by a comma (in either order, any case).
    fn from_str(text: &str) -> Result<Self, AppAuthError> {
        let (mut code, mut signature) = (false, false);
        for part in text.split(',') {
            match part.trim().to_ascii_lowercase().as_str() {
                "appcode" => code = true,
                "signature" => signature = true,
                _ => return Err(AppAuthError),
            }
        }
        match (code, signature) {
            (true, false) => Ok(Self::AppCode),
            (false, true) => Ok(Self::Signature),
            (true, true) => Ok(Self::AppCodeOrSignature),
            (false, false) => Err(AppAuthError),
        }
    }
}

/// The SHA-256 of a request's whole body, left in its extensions by whatever read the body
/// (the [`SignedBodyLayer`](super::SignedBodyLayer)), for the signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySha256(pub [u8; 32]);

/// How the layer checks signatures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignaturePolicy {
    pub(crate) app_auth: AppAuth,
    pub(crate) max_skew: Duration,
}

/// Whether `req` is to be judged by its signature: signatures are accepted, and either AppCodes
/// are not or the request carries no AppCode but an `Authorization`.
pub(crate) fn by_signature<B>(
    req: &Request<B>,
    policy: &SignaturePolicy,
    code: &HeaderName,
) -> bool {
    match policy.app_auth {
        AppAuth::AppCode => false,
        AppAuth::Signature => true,
        AppAuth::AppCodeOrSignature => {
            !req.headers().contains_key(code) && req.headers().contains_key(AUTHORIZATION)
        }
    }
}

/// What the signature check made of a request.
pub(crate) enum Verdict {
    /// Signed by this app: admit it (the signature's headers are gone).
    Admit(AppIdentity),
    Refuse(RejectionKind),
    /// The cache lacks the key and the provider is being asked; check again once it answered.
    Ask(Asking),
    /// The cache lacks the key and as many lookups as allowed are running: try again later.
    Busy,
}

/// Checks the signature of `req` against the app keys in `codes`' cache (asking its provider
/// about a key the cache lacks): the identity of the app that signed it, with the signature's
/// headers removed from `req`, or why it is refused.
pub(crate) fn check<B>(
    req: Request<B>,
    codes: &ReadThrough,
    policy: &SignaturePolicy,
) -> (Request<B>, Verdict) {
    let (mut parts, body) = req.into_parts();
    let verdict = match verify(&parts, codes, policy.max_skew, SystemTime::now()) {
        Ok(identity) => {
            strip_signature_headers(&mut parts.headers);
            Verdict::Admit(identity)
        }
        Err(Unverified::Refused(kind)) => Verdict::Refuse(kind),
        Err(Unverified::Asking(asking)) => Verdict::Ask(asking),
        Err(Unverified::Busy) => Verdict::Busy,
    };
    (Request::from_parts(parts, body), verdict)
}

/// Why [`verify`] has no identity (yet).
enum Unverified {
    Refused(RejectionKind),
    Asking(Asking),
    /// The key would need a lookup, and as many as allowed are running.
    Busy,
}

fn verify(
    parts: &Parts,
    codes: &ReadThrough,
    max_skew: Duration,
    now: SystemTime,
) -> Result<AppIdentity, Unverified> {
    // A key that cannot verify is refused first, as a wrong signature is and in the same
    // words, but without the date, the canonical request and the dummy HMAC that
    // `signature::verify` spends to hide which keys exist: an app key is no secret (it travels
    // in clear in every signed request), and a flood of unknown keys must cost no more than
    // one of unknown AppCodes.
    let named = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(key) = named.and_then(signature::access_key_of) {
        if !codes.may_know_key(key) {
            tracing::debug!(reason = "unknown app key", "signature refused");
            return Err(Unverified::Refused(RejectionKind::SignatureInvalid));
        }
    }
    // Then everything else that needs no key: a malformed or stale request costs no lookup.
    let signed = signature::read_signature(parts, now, max_skew)
        .map_err(|e| Unverified::Refused(refusal(e)))?;
    let Some((identity, key)) = codes.cache().app_key(signed.access_key()) else {
        match codes.ask_key(signed.access_key()) {
            Some(Answer::Asking(asking)) => return Err(Unverified::Asking(asking)),
            Some(_) => return Err(Unverified::Busy),
            None => {}
        }
        tracing::debug!(reason = "unknown app key", "signature refused");
        return Err(Unverified::Refused(RejectionKind::SignatureInvalid));
    };
    let payload = match parts.extensions.get::<BodySha256>() {
        Some(digest) => Payload::Sha256(&digest.0),
        None if announced_empty(&parts.headers) => Payload::Body(b""),
        None => Payload::Unread,
    };
    signed
        .verify(payload, Some(key.secret()))
        .map_err(|e| Unverified::Refused(refusal(e)))?;
    Ok(identity)
}

/// `Content-Length: 0`: a body the server reads as empty whoever reads it.
fn announced_empty(headers: &HeaderMap) -> bool {
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    matches!((lengths.next(), lengths.next()), (Some(v), None) if v == "0")
}

/// What the client is told of a refused signature; the full reason goes to the debug log (it
/// names neither a secret nor the expected signature).
fn refusal(e: SignatureError) -> RejectionKind {
    tracing::debug!(reason = %e, "signature refused");
    match e {
        SignatureError::MissingHeader(_)
        | SignatureError::MalformedAuthorization(_)
        | SignatureError::UnsignedRequiredHeader(_) => RejectionKind::SignatureMalformed,
        SignatureError::DuplicateHeader(name) if name == AUTHORIZATION.as_str() => {
            RejectionKind::SignatureMalformed
        }
        SignatureError::UnsupportedAlgorithm => RejectionKind::SignatureAlgorithm,
        SignatureError::DateMalformed | SignatureError::DateOutOfWindow => {
            RejectionKind::SignatureDate
        }
        SignatureError::SignedHeaderAbsent(name) if name == signature::DATE_HEADER => {
            RejectionKind::SignatureDate
        }
        _ => RejectionKind::SignatureInvalid,
    }
}

/// The signature's headers are for this hop: the upstream gets the verified identity instead.
fn strip_signature_headers(headers: &mut HeaderMap) {
    headers.remove(AUTHORIZATION);
    let sdk: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-sdk-"))
        .cloned()
        .collect();
    for name in sdk {
        headers.remove(name);
    }
}
