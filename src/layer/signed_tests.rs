//! Requests signed with an app's key and secret through [`SignedBodyLayer`] and the layer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

use super::*;
use crate::acl::{AclType, AppAcl};
use crate::app_key::AppKey;
use crate::cache::AppCodeCache;
use crate::code::AppCode;
use crate::identity::AppIdentity;
use crate::signature::{self, SecretKey};

type Body = Full<Bytes>;

const KEY: &str = "key-of-app-1";
const SECRET: &str = "secret-of-app-1";

/// A loaded cache: app `app-1` with an AppCode and the signing key `KEY`.
fn cache() -> (AppCodeCache, AppCode) {
    let cache = AppCodeCache::new();
    let code = AppCode::generate();
    cache.replace_all([(code.clone(), AppIdentity::new("app-1", "code-1"))]);
    cache.set_app_key("app-1", Arc::new(AppKey::new(KEY, SECRET)));
    (cache, code)
}

fn layer(cache: &AppCodeCache, accepted: AppAuth) -> AppCodeAuthLayer {
    AppCodeAuthLayer::builder()
        .cache(cache.clone())
        .app_auth(accepted)
        .identity_headers(IdentityHeaders::default())
        .build()
}

/// What the inner service saw: the app, then each header, then the body.
async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let id = req.extensions().get::<AppIdentity>().cloned();
    let mut seen = format!("app={}", id.as_ref().map_or("-", |i| i.app_id()));
    for (name, value) in req.headers() {
        seen.push_str(&format!(" {name}={}", value.to_str().unwrap_or("?")));
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    seen.push_str(&format!(" body={}", String::from_utf8_lossy(&body)));
    Ok(Response::new(Full::new(Bytes::from(seen))))
}

async fn call_with(
    auth: &AppCodeAuthLayer,
    body_layer: SignedBodyLayer,
    req: Request<Body>,
) -> (StatusCode, String) {
    let res = ServiceBuilder::new()
        .layer(body_layer)
        .layer(auth.clone())
        .service(service_fn(echo))
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn call(auth: &AppCodeAuthLayer, req: Request<Body>) -> (StatusCode, String) {
    call_with(auth, SignedBodyLayer::new().known_keys(auth.cache()), req).await
}

/// A request signed as the SDK signs it, with `key` and `secret` at `at`.
fn signed(
    builder: http::request::Builder,
    body: &'static [u8],
    key: &str,
    secret: &str,
    at: SystemTime,
) -> Request<Body> {
    let (mut parts, ()) = builder
        .header("host", "api.example.com")
        .body(())
        .unwrap()
        .into_parts();
    signature::sign(&mut parts, body, key, &SecretKey::from(secret), at).unwrap();
    Request::from_parts(parts, Full::new(Bytes::from_static(body)))
}

fn get() -> http::request::Builder {
    Request::get("/orders/7?b=2&a=1")
}

fn post() -> http::request::Builder {
    Request::post("/orders").header("content-type", "application/json")
}

const JSON: &[u8] = br#"{"item":"tea","count":2}"#;

fn reason(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error_code"], "APIG.0303", "{body}");
    v["error_msg"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signed_get_and_post_reach_the_app_without_the_signature_headers() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::AppCodeOrSignature);
    let now = SystemTime::now();

    let (status, seen) = call(&auth, signed(get(), b"", KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen.starts_with("app=app-1 "), "{seen}");
    assert!(seen.contains("x-apig-app-id=app-1"), "{seen}");
    for gone in ["authorization", "x-sdk-date", "x-apig-appcode-id"] {
        assert!(!seen.contains(gone), "{gone} in {seen}");
    }

    let (status, seen) = call(&auth, signed(post(), JSON, KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(
        seen.ends_with(&format!("body={}", String::from_utf8_lossy(JSON))),
        "{seen}"
    );
}

#[tokio::test]
async fn unsigned_payload_streams_without_being_read() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::Signature);
    let req = signed(
        Request::put("/files/a.bin")
            .header("content-type", "application/octet-stream")
            .header("x-sdk-content-sha256", "UNSIGNED-PAYLOAD"),
        b"raw bytes",
        KEY,
        SECRET,
        SystemTime::now(),
    );
    // The body is not covered: another body passes as well, untouched.
    let (parts, _) = req.into_parts();
    let req = Request::from_parts(parts, Full::new(Bytes::from_static(b"other bytes")));
    let (status, seen) = call(&auth, req).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen.ends_with("body=other bytes"), "{seen}");
    assert!(!seen.contains("x-sdk-content-sha256"), "{seen}");
}

#[tokio::test]
async fn tampered_requests_are_refused_as_invalid_signatures() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::AppCodeOrSignature);
    let now = SystemTime::now();
    let tamper = |req: Request<Body>, f: &dyn Fn(&mut http::request::Parts)| {
        let (mut parts, body) = req.into_parts();
        f(&mut parts);
        Request::from_parts(parts, body)
    };

    let (parts, _) = signed(post(), JSON, KEY, SECRET, now).into_parts();
    let body = Request::from_parts(
        parts,
        Full::new(Bytes::from_static(br#"{"item":"tea","count":9}"#)),
    );
    let query = tamper(signed(get(), b"", KEY, SECRET, now), &|p| {
        p.uri = "/orders/7?b=2&a=2".parse().unwrap()
    });
    let path = tamper(signed(get(), b"", KEY, SECRET, now), &|p| {
        p.uri = "/orders/8?b=2&a=1".parse().unwrap()
    });
    let wrong_secret = signed(get(), b"", KEY, "not-the-secret", now);
    let unknown_key = signed(get(), b"", "no-such-key", SECRET, now);
    for (what, req) in [
        ("body", body),
        ("query", query),
        ("path", path),
        ("wrong secret", wrong_secret),
        ("unknown key", unknown_key),
    ] {
        let (status, text) = call(&auth, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {text}");
        assert_eq!(
            reason(&text),
            "Incorrect app authentication information: signature invalid",
            "{what}"
        );
        assert!(!text.contains(SECRET), "{what}: {text}");
    }
}

#[tokio::test]
async fn dates_headers_and_algorithms_are_refused_with_their_reason() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::Signature);
    let now = SystemTime::now();
    let sixteen = Duration::from_secs(16 * 60);
    let no_date = {
        let (mut parts, body) = signed(get(), b"", KEY, SECRET, now).into_parts();
        parts.headers.remove("x-sdk-date");
        Request::from_parts(parts, body)
    };
    let malformed = {
        let (mut parts, body) = signed(get(), b"", KEY, SECRET, now).into_parts();
        let value = parts.headers["authorization"]
            .to_str()
            .unwrap()
            .replace(", Signature=", ",Signature=");
        parts
            .headers
            .insert("authorization", value.parse().unwrap());
        Request::from_parts(parts, body)
    };
    let other = Request::get("/orders")
        .header("host", "api.example.com")
        .header(
            "authorization",
            "SDK-HMAC-SM3 Access=k, SignedHeaders=host, Signature=00",
        )
        .body(Body::default())
        .unwrap();
    let unsigned = Request::get("/orders").body(Body::default()).unwrap();
    let date = "Incorrect app authentication information: X-Sdk-Date missing or expired";
    let malformed_msg =
        "Incorrect app authentication information: Authorization missing or malformed";
    for (what, req, expected) in [
        (
            "16 minutes old",
            signed(get(), b"", KEY, SECRET, now - sixteen),
            date,
        ),
        (
            "16 minutes ahead",
            signed(get(), b"", KEY, SECRET, now + sixteen),
            date,
        ),
        ("no date", no_date, date),
        ("malformed", malformed, malformed_msg),
        ("no signature", unsigned, malformed_msg),
        (
            "other algorithm",
            other,
            "Incorrect app authentication information: signature algorithm not supported",
        ),
    ] {
        let (status, text) = call(&auth, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {text}");
        assert_eq!(reason(&text), expected, "{what}");
    }
    assert_eq!(auth.metrics().rejected_signature, 6);
    let res = ServiceBuilder::new()
        .layer(auth.clone())
        .service(service_fn(echo))
        .oneshot(signed(get(), b"", KEY, "wrong", now))
        .await
        .unwrap();
    assert_eq!(res.headers()["www-authenticate"], "SDK-HMAC-SHA256");
}

#[tokio::test]
async fn a_request_with_an_appcode_is_judged_by_it() {
    let (cache, code) = cache();
    let now = SystemTime::now();
    let with_code = |value: &str| {
        let (mut parts, body) = signed(get(), b"", KEY, SECRET, now).into_parts();
        parts
            .headers
            .insert("x-apig-appcode", value.parse().unwrap());
        Request::from_parts(parts, body)
    };
    let both = layer(&cache, AppAuth::AppCodeOrSignature);
    let (status, text) = call(
        &both,
        with_code("not-a-valid-code-at-all-000000000000000000000"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reason(&text),
        "Incorrect app authentication information: AppCode invalid"
    );
    let (status, _) = call(&both, with_code(code.expose())).await;
    assert_eq!(status, StatusCode::OK);

    // AppCodes only (the default): a signature is no credential.
    let codes = layer(&cache, AppAuth::AppCode);
    let (status, text) = call(&codes, signed(get(), b"", KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reason(&text),
        "Incorrect app authentication information: AppCode missing"
    );
}

#[tokio::test]
async fn a_reset_secret_or_deleted_app_refuses_the_old_signature_at_once() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::Signature);
    let now = SystemTime::now();
    assert_eq!(
        call(&auth, signed(get(), b"", KEY, SECRET, now)).await.0,
        StatusCode::OK
    );

    cache.set_app_key("app-1", Arc::new(AppKey::new(KEY, "reset-secret")));
    assert_eq!(
        call(&auth, signed(get(), b"", KEY, SECRET, now)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&auth, signed(get(), b"", KEY, "reset-secret", now))
            .await
            .0,
        StatusCode::OK
    );

    cache.remove_app("app-1");
    assert_eq!(
        call(&auth, signed(get(), b"", KEY, "reset-secret", now))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(cache.app_keys(), 0);
}

#[tokio::test]
async fn acls_apply_to_signed_requests() {
    let (cache, _) = cache();
    cache.set_app_acl(
        "app-1",
        Arc::new(AppAcl::new(AclType::Permit, ["10.0.0.1"]).unwrap()),
    );
    let auth = layer(&cache, AppAuth::Signature);
    let mut req = signed(get(), b"", KEY, SECRET, SystemTime::now());
    req.extensions_mut().insert(ConnectionInfo {
        peer: "10.0.0.2:5000".parse().unwrap(),
        tls: false,
    });
    let (status, text) = call(&auth, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
}

#[tokio::test]
async fn quotas_count_signed_requests() {
    use crate::quota::{AppQuota, TimeUnit};

    let (cache, code) = cache();
    cache.set_app_quota(
        "app-1",
        Arc::new(AppQuota::new(2, TimeUnit::Hour, 1).unwrap()),
    );
    let auth = layer(&cache, AppAuth::AppCodeOrSignature);
    let now = SystemTime::now();
    assert_eq!(
        call(&auth, signed(get(), b"", KEY, SECRET, now)).await.0,
        StatusCode::OK
    );
    // The app's one quota, whichever credential its calls carry.
    let mut req = Request::get("/orders").body(Body::default()).unwrap();
    req.headers_mut()
        .insert("x-apig-appcode", code.expose().parse().unwrap());
    assert_eq!(call(&auth, req).await.0, StatusCode::OK);
    let (status, text) = call(&auth, signed(get(), b"", KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");
    assert!(text.contains("APIG.0501"), "{text}");
}

#[tokio::test]
async fn signed_bodies_are_held_up_to_the_limit() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::Signature);
    let small = || SignedBodyLayer::new().limit(16);
    let now = SystemTime::now();

    // Announced too long: refused before reading.
    let mut req = signed(post(), JSON, KEY, SECRET, now);
    req.headers_mut()
        .insert("content-length", JSON.len().into());
    let (status, text) = call_with(&auth, small(), req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    // Found too long while reading.
    let (status, text) = call_with(&auth, small(), signed(post(), JSON, KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("APIG.0201"), "{text}");
    // An unsigned payload is not held, whatever its length.
    let req = signed(
        Request::put("/f").header("x-sdk-content-sha256", "UNSIGNED-PAYLOAD"),
        JSON,
        KEY,
        SECRET,
        now,
    );
    assert_eq!(call_with(&auth, small(), req).await.0, StatusCode::OK);
    // A layer of its own with a cap on what its bodies hold together: under the limit, over
    // the cap.
    let capped = SignedBodyLayer::new().max_held(16);
    let (status, text) = call_with(&auth, capped, signed(post(), JSON, KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("APIG.0202"), "{text}");
}

#[tokio::test]
async fn without_the_body_layer_only_unsigned_or_empty_payloads_verify() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::Signature);
    let svc = ServiceBuilder::new()
        .layer(auth.clone())
        .service(service_fn(echo));
    let now = SystemTime::now();
    let res = svc
        .clone()
        .oneshot(signed(post(), JSON, KEY, SECRET, now))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut empty = signed(get(), b"", KEY, SECRET, now);
    empty.headers_mut().insert("content-length", 0.into());
    let res = svc.oneshot(empty).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn the_empty_body_hash_is_sha256_of_nothing() {
    use sha2::{Digest, Sha256};
    assert_eq!(
        super::signed_body::EMPTY_SHA256,
        <[u8; 32]>::from(Sha256::digest([]))
    );
}

#[test]
fn app_keys_show_no_secret() {
    let key = AppKey::new(KEY, SECRET);
    assert!(!format!("{key:?}").contains(SECRET));
}

/// A provider that knows one app key by lookup only, counting how often it is asked; each
/// lookup waits for a permit of `gate`.
#[derive(Clone)]
struct KeyLookups {
    known: (String, AppKey),
    asked: Arc<std::sync::atomic::AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl KeyLookups {
    /// Knows `key-2` of `app-2`; no lookup answers before the test adds permits.
    fn holding_key_2() -> Self {
        Self {
            known: ("app-2".into(), AppKey::new("key-2", "secret-2")),
            asked: Arc::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    /// A builder of a layer that admits signatures only, its keys from this provider.
    fn signatures(&self) -> AppCodeAuthLayerBuilder {
        AppCodeAuthLayer::builder()
            .provider(self.clone())
            .app_auth(AppAuth::Signature)
    }
}

impl crate::provider::AppCodeProvider for KeyLookups {
    fn snapshot(
        &self,
    ) -> crate::provider::BoxFuture<
        '_,
        Result<crate::provider::Snapshot, crate::provider::ProviderError>,
    > {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn supports_lookup(&self) -> bool {
        true
    }

    fn lookup_app_key<'a>(
        &'a self,
        key: &'a str,
    ) -> crate::provider::BoxFuture<
        'a,
        Result<Option<(String, AppKey)>, crate::provider::ProviderError>,
    > {
        Box::pin(async move {
            self.gate.acquire().await.unwrap().forget();
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((self.known.1.key() == key).then(|| self.known.clone()))
        })
    }
}

#[tokio::test]
async fn unknown_keys_are_asked_once_and_remembered_as_unknown_codes_are() {
    use std::sync::atomic::Ordering;

    let provider = KeyLookups::holding_key_2();
    let auth = provider.signatures().build();
    auth.cache().loaded().await;
    let now = SystemTime::now();

    // A flood of one unknown key: one lookup, shared by every request waiting on it.
    let flood: Vec<_> = (0..10)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move {
                call(&auth, signed(get(), b"", "no-such-key", SECRET, now)).await
            })
        })
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    provider.gate.add_permits(100);
    for request in flood {
        let (status, text) = request.await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reason(&text),
            "Incorrect app authentication information: signature invalid"
        );
    }
    assert_eq!(provider.asked.load(Ordering::SeqCst), 1);
    // Remembered as unknown: not asked again.
    let (status, _) = call(&auth, signed(get(), b"", "no-such-key", SECRET, now)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.asked.load(Ordering::SeqCst), 1);

    // A key the provider knows is found, cached, and verified, its body read although the
    // cache did not hold the key yet.
    let req = signed(post(), JSON, "key-2", "secret-2", now);
    let (status, seen) = call_with(&auth, auth.signed_body_layer(), req).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen.starts_with("app=app-2 "), "{seen}");
    assert_eq!(provider.asked.load(Ordering::SeqCst), 2);
    let (status, _) = call(&auth, signed(get(), b"", "key-2", "wrong", now)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.asked.load(Ordering::SeqCst), 2);
    assert_eq!(auth.cache().app_keys(), 1);
}

/// A body that never sends anything.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Pending
    }
}

impl From<Bytes> for Stalled {
    fn from(_: Bytes) -> Self {
        Stalled
    }
}

#[tokio::test(start_paused = true)]
async fn a_signed_body_that_stalls_meets_the_body_deadline() {
    let (cache, _) = cache();
    let auth = layer(&cache, AppAuth::Signature);
    let (parts, _) = signed(post(), JSON, KEY, SECRET, SystemTime::now()).into_parts();
    let svc = ServiceBuilder::new()
        .layer(
            auth.signed_body_layer()
                .read_timeout(Duration::from_secs(60)),
        )
        .layer(auth.clone())
        .service(service_fn(|_: Request<Stalled>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }));
    let res = svc
        .oneshot(Request::from_parts(parts, Stalled))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(auth.metrics().rejected_body, 1);
}

#[tokio::test]
async fn an_unknown_key_past_the_lookup_cap_is_told_when_to_come_back() {
    let provider = KeyLookups::holding_key_2();
    let auth = provider.signatures().max_lookups(1).build();
    auth.cache().loaded().await;
    let now = SystemTime::now();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .service(service_fn(echo));
    // The one lookup allowed, started by the call and held by the provider.
    let mut first = service.clone();
    first.ready().await.unwrap();
    let waiting = first.call(signed(get(), b"", "key-2", "secret-2", now));
    let res = service
        .clone()
        .oneshot(signed(get(), b"", "another-key", SECRET, now))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(auth.metrics().lookups_shed, 1);
    provider.gate.add_permits(1);
    let answered = waiting.await.unwrap().status();
    assert_ne!(answered, StatusCode::SERVICE_UNAVAILABLE);
}

/// A body that sends `first` and then nothing more.
struct Trickle(Option<Bytes>);

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.0.take() {
            Some(first) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(first)))),
            None => std::task::Poll::Pending,
        }
    }
}

impl From<Bytes> for Trickle {
    fn from(bytes: Bytes) -> Self {
        Trickle(Some(bytes))
    }
}

/// A layer accepting signatures of `cache`'s keys whose signed bodies being read hold `max`
/// bytes together at most.
fn holding(cache: &AppCodeCache, max: usize) -> AppCodeAuthLayer {
    AppCodeAuthLayer::builder()
        .cache(cache.clone())
        .app_auth(AppAuth::Signature)
        .max_held_signed_bodies(max)
        .build()
}

/// A request signed with `KEY` whose body sends `sent` bytes through `body_layer` and stalls:
/// the body is being read when this returns, and until the returned call is dropped.
async fn stalled_upload(
    auth: &AppCodeAuthLayer,
    body_layer: SignedBodyLayer,
    sent: usize,
) -> impl std::future::Future + Unpin {
    let (parts, _) = signed(post(), JSON, KEY, SECRET, SystemTime::now()).into_parts();
    let body = Trickle(Some(Bytes::from(vec![b'x'; sent])));
    let mut call = Box::pin(
        ServiceBuilder::new()
            .layer(body_layer)
            .layer(auth.clone())
            .service(service_fn(|_: Request<Trickle>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }))
            .oneshot(Request::from_parts(parts, body)),
    );
    let polled = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(call.as_mut(), cx))
    });
    assert!(polled.await.is_pending(), "the stalled body is being read");
    call
}

#[tokio::test]
async fn bodies_being_read_share_one_cap_and_give_it_back_when_their_client_leaves() {
    let (cache, _) = cache();
    let auth = holding(&cache, 40);
    let now = SystemTime::now();

    // One client sends 30 bytes of its body and stalls, through one body layer (a worker)...
    let stalled = stalled_upload(&auth, auth.signed_body_layer(), 30).await;

    // ... so another's 24 bytes, through another, do not fit: 503, come back in a second.
    let body_layer = || auth.signed_body_layer();
    let req = || signed(post(), JSON, KEY, SECRET, now);
    let res = ServiceBuilder::new()
        .layer(body_layer())
        .layer(auth.clone())
        .service(service_fn(echo))
        .oneshot(req())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("APIG.0202"));
    assert_eq!(auth.metrics().rejected_body, 1);

    // The stalled client leaves: what it held is given back, and the body fits.
    drop(stalled);
    let (status, text) = call_with(&auth, body_layer(), req()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // And a body sent on gave its bytes back: the whole cap fits again.
    const FORTY: &[u8] = b"0123456789012345678901234567890123456789";
    let (status, text) =
        call_with(&auth, body_layer(), signed(post(), FORTY, KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn one_app_key_cannot_take_every_other_keys_room() {
    let (cache, _) = cache();
    cache.set_app_key(
        "app-2",
        Arc::new(AppKey::new("key-of-app-2", "secret-of-app-2")),
    );
    let auth = holding(&cache, 100);
    // Bodies of up to 24 bytes: each key may hold a quarter of the 100, 25.
    let body_layer = || auth.signed_body_layer().limit(24);
    let now = SystemTime::now();

    // KEY's client sends 24 bytes and stalls.
    let stalled = stalled_upload(&auth, body_layer(), 24).await;

    // Another body of KEY does not fit its share; one of another key does, in the same cap.
    let (status, text) =
        call_with(&auth, body_layer(), signed(post(), JSON, KEY, SECRET, now)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let other = signed(post(), JSON, "key-of-app-2", "secret-of-app-2", now);
    let (status, text) = call_with(&auth, body_layer(), other).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    drop(stalled);
}
