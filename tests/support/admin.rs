//! The harness of the management API's in-process tests (`tests/admin_*.rs`): a fixture
//! (an `AdminApi` router over a `MemoryStore`, with tokens, access keys and the SDK's keys),
//! request builders (token and AK/SK-signed), the reply checker, and the SDK's recorded vectors.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apig_appcode::admin::{AccessKeyCredential, AdminApi, Permissions, TokenCredential};
use apig_appcode::signature::{self, SecretKey};
use apig_appcode::store::MemoryStore;
use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity};
use axum::body::Body;
use axum::Router;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{service_fn, ServiceBuilder, ServiceExt};

pub(crate) const PROJECT: &str = "proj1";
pub(crate) const INSTANCE: &str = "inst1";
pub(crate) const TOKEN_RW: &str = "rw-token-0123456789abcdef";
pub(crate) const TOKEN_RO: &str = "ro-token-0123456789abcdef";
/// Read-write, but on project `proj2` only.
pub(crate) const TOKEN_P2: &str = "p2-token-0123456789abcdef";
/// A read-only access key.
pub(crate) const AK_RO: &str = "READONLYAK";
pub(crate) const SK_RO: &str = "read-only-secret-key";

/// The SDK's recorded requests (tests/sdk/vectors.json, made by tests/sdk/gen_vectors.py).
pub(crate) fn vectors() -> Value {
    serde_json::from_str(include_str!("../sdk/vectors.json")).unwrap()
}

pub(crate) fn vector(name: &str) -> Value {
    vectors()["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
        .clone()
}

/// The vectors' `X-Sdk-Date`, 2024-01-02T03:04:05Z: the fixture's clock, so recorded requests
/// verify as they were signed.
pub(crate) fn vector_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_164_645)
}

/// The AK/SK pairs the SDK signed the vectors with.
pub(crate) fn vector_keys() -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = vectors()["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["ak"].as_str().unwrap().to_owned(),
                v["sk"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 2);
    keys
}

pub(crate) fn main_key() -> (String, String) {
    let v = vector("client_post_create_app_code");
    (
        v["ak"].as_str().unwrap().to_owned(),
        v["sk"].as_str().unwrap().to_owned(),
    )
}

pub(crate) struct Fixture {
    pub(crate) router: Router,
    pub(crate) cache: AppCodeCache,
    pub(crate) store: Arc<MemoryStore>,
}

pub(crate) fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let cache = AppCodeCache::new();
    cache.replace_all([]); // the gateway has loaded its (empty) snapshot
    let mut builder = AdminApi::builder()
        .store(store.clone())
        .instance(INSTANCE, cache.clone())
        .instance("inst2", AppCodeCache::new())
        .token(TokenCredential::new(TOKEN_RW, Permissions::read_write()))
        .token(TokenCredential::new(TOKEN_RO, Permissions::read_only()))
        .token(TokenCredential::new(
            TOKEN_P2,
            Permissions::read_write().projects(["proj2"]),
        ))
        .access_key(AccessKeyCredential::new(
            AK_RO,
            SK_RO,
            Permissions::read_only(),
        ))
        .clock(vector_time);
    for (ak, sk) in vector_keys() {
        builder = builder.access_key(AccessKeyCredential::new(ak, sk, Permissions::read_write()));
    }
    Fixture {
        router: builder.build().unwrap().router(),
        cache,
        store,
    }
}

pub(crate) fn base(project: &str, instance: &str) -> String {
    format!("/v2/{project}/apigw/instances/{instance}")
}

pub(crate) fn apps_path() -> String {
    format!("{}/apps", base(PROJECT, INSTANCE))
}

pub(crate) fn codes_path(app_id: &str) -> String {
    format!("{}/apps/{app_id}/app-codes", base(PROJECT, INSTANCE))
}

/// A request with `X-Auth-Token` (when given) and, with a body, `Content-Type: application/json`.
pub(crate) fn request(
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("x-auth-token", t);
    }
    match body {
        Some(body) => b
            .header("content-type", "application/json;charset=utf-8")
            .body(Body::from(body.to_owned()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A request signed with `ak`/`sk` at `at`, with the headers the SDK sends.
pub(crate) fn signed(
    method: &str,
    uri: &str,
    body: &str,
    (ak, sk): (&str, &str),
    at: SystemTime,
) -> Request<Body> {
    let content_type = if body.is_empty() {
        "application/json"
    } else {
        "application/json;charset=utf-8"
    };
    let (mut parts, ()) = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8080")
        .header("content-type", content_type)
        .header("user-agent", "huaweicloud-usdk-python/3.0")
        .header("x-project-id", PROJECT)
        .body(())
        .unwrap()
        .into_parts();
    signature::sign(&mut parts, body.as_bytes(), ak, &SecretKey::from(sk), at).unwrap();
    Request::from_parts(parts, Body::from(body.to_owned()))
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) raw: Vec<u8>,
    pub(crate) body: Value,
}

pub(crate) async fn send(router: &Router, req: Request<Body>) -> Reply {
    let res = router.clone().oneshot(req).await.unwrap();
    reply(res).await
}

pub(crate) async fn reply(res: Response<Body>) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let raw = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or_else(|_| {
            panic!(
                "{status}: body is not JSON: {}",
                String::from_utf8_lossy(&raw)
            )
        })
    };
    assert!(
        headers.contains_key("x-request-id"),
        "{status}: every response carries X-Request-Id"
    );
    Reply {
        status,
        headers,
        raw,
        body,
    }
}

impl Reply {
    /// Checks APIG's error shape, the status and the code; returns the message.
    pub(crate) fn error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(
            (self.status, self.body["error_code"].as_str()),
            (status, Some(code)),
            "{}",
            String::from_utf8_lossy(&self.raw)
        );
        assert_eq!(self.headers["content-type"], "application/json");
        assert_eq!(
            self.body["request_id"].as_str().unwrap(),
            self.headers["x-request-id"].to_str().unwrap()
        );
        let msg = self.body["error_msg"].as_str().unwrap();
        assert!(!msg.is_empty());
        msg.to_owned()
    }

    pub(crate) fn invalid(&self, parameter: &str) {
        let msg = self.error(StatusCode::BAD_REQUEST, "APIG.2012");
        assert_eq!(
            msg,
            format!("Invalid parameter value,parameterName:{parameter}. Please refer to the support documentation")
        );
    }

    pub(crate) fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.raw)
        );
        &self.body
    }
}

/// The field names of a JSON object.
pub(crate) fn field_names(v: &Value) -> std::collections::BTreeSet<&str> {
    v.as_object().unwrap().keys().map(|k| k.as_str()).collect()
}

pub(crate) fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub(crate) fn is_apig_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() == 30
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            29 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

pub(crate) async fn create_app(f: &Fixture, body: Value) -> Value {
    let r = send_rw(f, "POST", &apps_path(), Some(&body.to_string())).await;
    r.ok(StatusCode::CREATED).clone()
}

pub(crate) async fn new_app(f: &Fixture, name: &str) -> String {
    create_app(f, json!({ "name": name })).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn generate_code(f: &Fixture, app_id: &str) -> Value {
    let r = send_rw(f, "PUT", &codes_path(app_id), None).await;
    r.ok(StatusCode::CREATED).clone()
}

pub(crate) fn value_of(code: &Value) -> AppCode {
    AppCode::parse(code["app_code"].as_str().unwrap()).unwrap()
}

pub(crate) fn app_path(app_id: &str) -> String {
    format!("{}/{app_id}", apps_path())
}

pub(crate) fn secret_path(app_id: &str) -> String {
    format!("{}/secret/{app_id}", apps_path())
}

pub(crate) async fn show_app(f: &Fixture, app_id: &str) -> Value {
    let r = send(
        &f.router,
        request("GET", &app_path(app_id), Some(TOKEN_RO), None),
    )
    .await;
    r.ok(StatusCode::OK).clone()
}

/// Resets the app's secret (with `body`, if any) and returns the new one.
pub(crate) async fn reset_secret(f: &Fixture, app_id: &str, body: Option<&str>) -> String {
    let r = send_rw(f, "PUT", &secret_path(app_id), body).await;
    r.ok(StatusCode::OK)["app_secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn gateway_status(cache: &AppCodeCache, code: &AppCode) -> (StatusCode, String) {
    let svc = ServiceBuilder::new()
        .layer(AppCodeAuthLayer::new(cache.clone()))
        .service(service_fn(|req: Request<Body>| async move {
            let id = req.extensions().get::<AppIdentity>().unwrap().clone();
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(format!(
                "{} {}",
                id.app_id(),
                id.app_code_id()
            ))))
        }));
    let res = svc
        .oneshot(
            Request::builder()
                .uri("/protected")
                .header("x-apig-appcode", code.to_header_value())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `method path` with the read-write token and `body`, through the fixture's router.
pub(crate) async fn send_rw(f: &Fixture, method: &str, path: &str, body: Option<&str>) -> Reply {
    send(&f.router, request(method, path, Some(TOKEN_RW), body)).await
}

/// `GET path` with the read-only token, through the fixture's router.
pub(crate) async fn get_ro(f: &Fixture, path: &str) -> Reply {
    send(&f.router, request("GET", path, Some(TOKEN_RO), None)).await
}
