//! The management API driven with `oneshot`: every endpoint's success shape, every error, token
//! roles and projects, AK/SK signatures (fresh and replayed from the official SDK), the effect on
//! the gateway's cache, concurrency, garbage input and the OpenAPI document.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apig_appcode::admin::signature::{self, SecretKey};
use apig_appcode::admin::{
    AccessKeyCredential, AdminApi, BuildError, Permissions, TokenCredential,
};
use apig_appcode::provider::BoxFuture;
use apig_appcode::store::{
    App, AppChanges, AppCodeRecord, AppFilter, MemoryStore, Page, Scope, SecretString, Store,
    StoreError, StoreResult, Timestamp,
};
use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity};
use axum::body::Body;
use axum::Router;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{service_fn, ServiceBuilder, ServiceExt};

const PROJECT: &str = "proj1";
const INSTANCE: &str = "inst1";
const TOKEN_RW: &str = "rw-token-0123456789abcdef";
const TOKEN_RO: &str = "ro-token-0123456789abcdef";
/// Read-write, but on project `proj2` only.
const TOKEN_P2: &str = "p2-token-0123456789abcdef";
/// A read-only access key.
const AK_RO: &str = "READONLYAK";
const SK_RO: &str = "read-only-secret-key";

/// The SDK's recorded requests (tests/sdk/vectors.json, made by tests/sdk/gen_vectors.py).
fn vectors() -> Value {
    serde_json::from_str(include_str!("sdk/vectors.json")).unwrap()
}

fn vector(name: &str) -> Value {
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
fn vector_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_164_645)
}

/// The AK/SK pairs the SDK signed the vectors with.
fn vector_keys() -> Vec<(String, String)> {
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

fn main_key() -> (String, String) {
    let v = vector("client_post_create_app_code");
    (
        v["ak"].as_str().unwrap().to_owned(),
        v["sk"].as_str().unwrap().to_owned(),
    )
}

struct Fixture {
    router: Router,
    cache: AppCodeCache,
    store: Arc<MemoryStore>,
}

fn fixture() -> Fixture {
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

fn base(project: &str, instance: &str) -> String {
    format!("/v2/{project}/apigw/instances/{instance}")
}

fn apps_path() -> String {
    format!("{}/apps", base(PROJECT, INSTANCE))
}

fn codes_path(app_id: &str) -> String {
    format!("{}/apps/{app_id}/app-codes", base(PROJECT, INSTANCE))
}

/// A request with `X-Auth-Token` (when given) and, with a body, `Content-Type: application/json`.
fn request(method: &str, uri: &str, token: Option<&str>, body: Option<&str>) -> Request<Body> {
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
fn signed(
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

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    raw: Vec<u8>,
    body: Value,
}

async fn send(router: &Router, req: Request<Body>) -> Reply {
    let res = router.clone().oneshot(req).await.unwrap();
    reply(res).await
}

async fn reply(res: Response<Body>) -> Reply {
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
    fn error(&self, status: StatusCode, code: &str) -> String {
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

    fn invalid(&self, parameter: &str) {
        let msg = self.error(StatusCode::BAD_REQUEST, "APIG.2012");
        assert_eq!(
            msg,
            format!("Invalid parameter value,parameterName:{parameter}. Please refer to the support documentation")
        );
    }

    fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.raw)
        );
        &self.body
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
fn is_apig_time(v: &Value) -> bool {
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

async fn create_app(f: &Fixture, body: Value) -> Value {
    let r = send(
        &f.router,
        request(
            "POST",
            &apps_path(),
            Some(TOKEN_RW),
            Some(&body.to_string()),
        ),
    )
    .await;
    r.ok(StatusCode::CREATED).clone()
}

async fn new_app(f: &Fixture, name: &str) -> String {
    create_app(f, json!({ "name": name })).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn generate_code(f: &Fixture, app_id: &str) -> Value {
    let r = send(
        &f.router,
        request("PUT", &codes_path(app_id), Some(TOKEN_RW), None),
    )
    .await;
    r.ok(StatusCode::CREATED).clone()
}

fn value_of(code: &Value) -> AppCode {
    AppCode::parse(code["app_code"].as_str().unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Apps

#[tokio::test]
async fn app_create_show_list_delete_have_apigs_shapes() {
    let f = fixture();
    let app = create_app(&f, json!({"name": "shop_frontend", "remark": "the shop"})).await;
    let id = app["id"].as_str().unwrap();
    assert!(is_lower_hex(id, 32), "{app}");
    assert_eq!(app["name"], "shop_frontend");
    assert_eq!(app["remark"], "the shop");
    assert_eq!(app["creator"], "USER");
    assert_eq!(app["status"], 1);
    assert_eq!(app["app_type"], "apig");
    assert!(is_lower_hex(app["app_key"].as_str().unwrap(), 32));
    assert!(is_lower_hex(app["app_secret"].as_str().unwrap(), 32));
    assert_ne!(app["app_key"], app["app_secret"]);
    assert!(is_apig_time(&app["register_time"]) && is_apig_time(&app["update_time"]));
    assert!(app.get("bind_num").is_none());
    let fields: BTreeSet<&str> = app
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "id",
            "name",
            "remark",
            "creator",
            "update_time",
            "app_key",
            "app_secret",
            "register_time",
            "status",
            "app_type"
        ])
    );

    let shown = send(
        &f.router,
        request(
            "GET",
            &format!("{}/{id}", apps_path()),
            Some(TOKEN_RO),
            None,
        ),
    )
    .await;
    assert_eq!(shown.ok(StatusCode::OK), &app);

    let list = send(
        &f.router,
        request("GET", &apps_path(), Some(TOKEN_RO), None),
    )
    .await;
    let list = list.ok(StatusCode::OK);
    assert_eq!(
        (list["total"].as_u64(), list["size"].as_u64()),
        (Some(1), Some(1))
    );
    let mut item = list["apps"][0].clone();
    assert_eq!(item["bind_num"], 0);
    item.as_object_mut().unwrap().remove("bind_num");
    assert_eq!(item, app);

    let deleted = send(
        &f.router,
        request(
            "DELETE",
            &format!("{}/{id}", apps_path()),
            Some(TOKEN_RW),
            None,
        ),
    )
    .await;
    deleted.ok(StatusCode::NO_CONTENT);
    assert!(deleted.raw.is_empty());
    let gone = send(
        &f.router,
        request(
            "GET",
            &format!("{}/{id}", apps_path()),
            Some(TOKEN_RW),
            None,
        ),
    )
    .await;
    assert_eq!(
        gone.error(StatusCode::NOT_FOUND, "APIG.3004"),
        format!("App {id} does not exist")
    );
    let again = send(
        &f.router,
        request(
            "DELETE",
            &format!("{}/{id}", apps_path()),
            Some(TOKEN_RW),
            None,
        ),
    )
    .await;
    again.error(StatusCode::NOT_FOUND, "APIG.3004");
}

#[tokio::test]
async fn given_key_and_secret_are_kept_and_chinese_names_accepted() {
    let f = fixture();
    let app = create_app(
        &f,
        json!({"name": "应用_one", "app_key": "my-key_0001", "app_secret": "S3cret!@#$%_-"}),
    )
    .await;
    assert_eq!(app["name"], "应用_one");
    assert_eq!(app["app_key"], "my-key_0001");
    assert_eq!(app["app_secret"], "S3cret!@#$%_-");
    assert_eq!(app["remark"], "");
}

#[tokio::test]
async fn app_list_filters_and_clamps_paging() {
    let f = fixture();
    let a1 = create_app(&f, json!({"name": "alpha_one"})).await;
    let a2 = create_app(&f, json!({"name": "alpha_two"})).await;
    let _b = create_app(&f, json!({"name": "beta", "app_key": "beta-key-1"})).await;
    let list = |query: String| {
        let router = f.router.clone();
        async move {
            let uri = format!("{}?{query}", apps_path());
            send(&router, request("GET", &uri, Some(TOKEN_RO), None)).await
        }
    };
    let names = |r: &Reply| -> Vec<String> {
        r.body["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = list("name=alpha".into()).await;
    assert_eq!(names(&r), ["alpha_one", "alpha_two"]);
    let r = list("name=alpha&precise_search=name".into()).await;
    assert!(names(&r).is_empty());
    let r = list("name=alpha_two&precise_search=name".into()).await;
    assert_eq!(names(&r), ["alpha_two"]);
    let r = list(format!("id={}", a1["id"].as_str().unwrap())).await;
    assert_eq!(names(&r), ["alpha_one"]);
    let r = list("app_key=beta-key-1".into()).await;
    assert_eq!(names(&r), ["beta"]);
    assert_eq!(list("status=1&creator=USER".into()).await.body["total"], 3);
    assert_eq!(list("status=2".into()).await.body["total"], 0);
    assert_eq!(list("creator=SYSTEM".into()).await.body["total"], 0);

    let r = list("offset=1&limit=1".into()).await;
    assert_eq!(
        (r.body["total"].as_u64(), r.body["size"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(r.body["apps"][0]["id"], a2["id"]);
    for clamped in [
        "offset=-4&limit=0",
        "limit=-1",
        "limit=100000",
        "offset=&limit=",
    ] {
        let r = list(clamped.into()).await;
        assert_eq!(r.ok(StatusCode::OK)["size"], 3, "{clamped}");
    }
    assert_eq!(list("offset=3".into()).await.body["size"], 0);

    for (query, parameter) in [
        ("offset=x", "offset"),
        ("limit=2.5", "limit"),
        ("status=one", "status"),
        ("status=99999999999", "status"),
        ("precise_search=remark", "precise_search"),
        ("name=%E5%BA", "name"),
    ] {
        list(query.into()).await.invalid(parameter);
    }
    // Other instances and projects are separate namespaces.
    let other = format!("{}/apps", base(PROJECT, "inst2"));
    let r = send(&f.router, request("GET", &other, Some(TOKEN_RO), None)).await;
    assert_eq!(r.ok(StatusCode::OK)["total"], 0);
}

#[tokio::test]
async fn invalid_app_bodies_are_refused_before_storing() {
    let f = fixture();
    let long = |n: usize| "a".repeat(n);
    let cases: Vec<(String, &str)> = vec![
        (json!({}).to_string(), "name"),
        (json!({"name": null}).to_string(), "name"),
        (json!({"name": "ab"}).to_string(), "name"),
        (json!({"name": long(65)}).to_string(), "name"),
        (json!({"name": "1app"}).to_string(), "name"),
        (json!({"name": "app-1"}).to_string(), "name"),
        (json!({"name": 12345}).to_string(), "name"),
        (
            json!({"name": "app", "remark": long(256)}).to_string(),
            "remark",
        ),
        (json!({"name": "app", "remark": 1}).to_string(), "remark"),
        (
            json!({"name": "app", "app_key": "short"}).to_string(),
            "app_key",
        ),
        (
            json!({"name": "app", "app_key": "-leading-dash"}).to_string(),
            "app_key",
        ),
        (
            json!({"name": "app", "app_key": long(201)}).to_string(),
            "app_key",
        ),
        (
            json!({"name": "app", "app_secret": "!leading-bang"}).to_string(),
            "app_secret",
        ),
        (
            json!({"name": "app", "app_secret": "has space in it"}).to_string(),
            "app_secret",
        ),
        (
            json!({"name": "app", "app_secret": long(129)}).to_string(),
            "app_secret",
        ),
        ("[1,2]".to_owned(), "body"),
        ("\"name\"".to_owned(), "body"),
        ("{\"name\": \"app\"".to_owned(), "body"),
        ("{\"name\": \"app\"} trailing".to_owned(), "body"),
        ("\u{feff}{}".to_owned(), "body"),
    ];
    for (body, parameter) in cases {
        let r = send(
            &f.router,
            request("POST", &apps_path(), Some(TOKEN_RW), Some(&body)),
        )
        .await;
        r.invalid(parameter);
    }
    // An empty body is a missing body.
    let r = send(
        &f.router,
        request("POST", &apps_path(), Some(TOKEN_RW), Some("")),
    )
    .await;
    r.invalid("body");
    let scope = Scope::new(PROJECT, INSTANCE);
    let page = f
        .store
        .list_apps(&scope, &AppFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(page.total, 0, "nothing invalid was stored");
}

#[tokio::test]
async fn duplicate_app_name_and_key_are_apigs_codes() {
    let f = fixture();
    create_app(&f, json!({"name": "first", "app_key": "key-00000001"})).await;
    for (body, code) in [
        (json!({"name": "first"}), "APIG.3203"),
        (
            json!({"name": "second", "app_key": "key-00000001"}),
            "APIG.3310",
        ),
    ] {
        let r = send(
            &f.router,
            request(
                "POST",
                &apps_path(),
                Some(TOKEN_RW),
                Some(&body.to_string()),
            ),
        )
        .await;
        r.error(StatusCode::BAD_REQUEST, code);
    }
    // The same name in another instance is another app.
    let other = format!("{}/apps", base(PROJECT, "inst2"));
    let r = send(
        &f.router,
        request("POST", &other, Some(TOKEN_RW), Some(r#"{"name":"first"}"#)),
    )
    .await;
    r.ok(StatusCode::CREATED);
}

// ---------------------------------------------------------------------------------------------
// AppCodes

fn app_path(app_id: &str) -> String {
    format!("{}/{app_id}", apps_path())
}

fn secret_path(app_id: &str) -> String {
    format!("{}/secret/{app_id}", apps_path())
}

async fn show_app(f: &Fixture, app_id: &str) -> Value {
    let r = send(
        &f.router,
        request("GET", &app_path(app_id), Some(TOKEN_RO), None),
    )
    .await;
    r.ok(StatusCode::OK).clone()
}

/// Resets the app's secret (with `body`, if any) and returns the new one.
async fn reset_secret(f: &Fixture, app_id: &str, body: Option<&str>) -> String {
    let r = send(
        &f.router,
        request("PUT", &secret_path(app_id), Some(TOKEN_RW), body),
    )
    .await;
    r.ok(StatusCode::OK)["app_secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn app_update_and_secret_reset_have_apigs_shapes() {
    let f = fixture();
    let app = create_app(
        &f,
        json!({"name": "before", "remark": "old", "app_key": "key-before-1", "app_secret": "Secret_before1"}),
    )
    .await;
    let app_id = app["id"].as_str().unwrap();
    let code = generate_code(&f, app_id).await;

    // Every field given: 201 (APIG's documented status) and the app view as on show.
    let body = json!({"name": "after_应用", "remark": "new", "app_key": "key-after-1", "app_secret": "Secret_after!1"});
    let r = send(
        &f.router,
        request(
            "PUT",
            &app_path(app_id),
            Some(TOKEN_RW),
            Some(&body.to_string()),
        ),
    )
    .await;
    let updated = r.ok(StatusCode::CREATED).clone();
    for (field, value) in [
        ("name", "after_应用"),
        ("remark", "new"),
        ("app_key", "key-after-1"),
        ("app_secret", "Secret_after!1"),
    ] {
        assert_eq!(updated[field], value, "{field}");
    }
    for field in ["id", "creator", "register_time", "status", "app_type"] {
        assert_eq!(updated[field], app[field], "{field}");
    }
    assert!(is_apig_time(&updated["update_time"]));
    assert!(updated["update_time"].as_str() >= app["update_time"].as_str());
    assert!(updated.get("bind_num").is_none());
    assert_eq!(show_app(&f, app_id).await, updated);

    // Only the name (required): the rest is kept, the app's own name is no conflict.
    let r = send(
        &f.router,
        request(
            "PUT",
            &app_path(app_id),
            Some(TOKEN_RW),
            Some(r#"{"name":"after_应用"}"#),
        ),
    )
    .await;
    let renamed = r.ok(StatusCode::CREATED).clone();
    for field in ["name", "remark", "app_key", "app_secret", "register_time"] {
        assert_eq!(renamed[field], updated[field], "{field}");
    }

    // Reset with a given secret: 200 and the app with it.
    let r = send(
        &f.router,
        request(
            "PUT",
            &secret_path(app_id),
            Some(TOKEN_RW),
            Some(r#"{"app_secret":"Given_reset1"}"#),
        ),
    )
    .await;
    let reset = r.ok(StatusCode::OK).clone();
    assert_eq!(reset["app_secret"], "Given_reset1");
    for field in [
        "id",
        "name",
        "remark",
        "app_key",
        "register_time",
        "app_type",
    ] {
        assert_eq!(reset[field], renamed[field], "{field}");
    }
    assert_eq!(show_app(&f, app_id).await, reset);

    // Without a body, with `{}` and with a null secret: a generated one, new each time.
    let mut seen = BTreeSet::from(["Given_reset1".to_owned()]);
    for body in [None, Some("{}"), Some(r#"{"app_secret":null}"#)] {
        let secret = reset_secret(&f, app_id, body).await;
        assert!(is_lower_hex(&secret, 32), "{secret}");
        assert!(seen.insert(secret.clone()), "a repeated secret");
        assert_eq!(show_app(&f, app_id).await["app_secret"], secret.as_str());
    }

    // The app's AppCodes are untouched and still pass the gateway.
    let (status, _) = gateway_status(&f.cache, &value_of(&code)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn app_update_and_reset_refuse_what_create_refuses() {
    let f = fixture();
    let app_id = new_app(&f, "target").await;
    let other = create_app(&f, json!({"name": "other", "app_key": "other-key-1"})).await;
    let before = show_app(&f, &app_id).await;
    let put = |uri: String, body: &str| request("PUT", &uri, Some(TOKEN_RW), Some(body));
    let long_remark = "r".repeat(256);
    for (body, parameter) in [
        (json!({}), "name"),
        (json!({"remark": "no name"}), "name"),
        (json!({"name": "1bad"}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"name": "fine", "remark": long_remark}), "remark"),
        (json!({"name": "fine", "app_key": "short"}), "app_key"),
        (
            json!({"name": "fine", "app_secret": "bad^secret"}),
            "app_secret",
        ),
    ] {
        send(&f.router, put(app_path(&app_id), &body.to_string()))
            .await
            .invalid(parameter);
    }
    send(&f.router, put(app_path(&app_id), "[1]"))
        .await
        .invalid("body");
    for body in [r#"{"app_secret":"short"}"#, r#"{"app_secret":5}"#] {
        send(&f.router, put(secret_path(&app_id), body))
            .await
            .invalid("app_secret");
    }
    send(&f.router, put(secret_path(&app_id), "not json"))
        .await
        .invalid("body");
    let plain = Request::builder()
        .method("PUT")
        .uri(secret_path(&app_id))
        .header("x-auth-token", TOKEN_RW)
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"app_secret":"Given_reset1"}"#))
        .unwrap();
    send(&f.router, plain)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "APIG.2012");

    // Another app's name or key.
    send(&f.router, put(app_path(&app_id), r#"{"name":"other"}"#))
        .await
        .error(StatusCode::BAD_REQUEST, "APIG.3203");
    send(
        &f.router,
        put(
            app_path(&app_id),
            r#"{"name":"target","app_key":"other-key-1"}"#,
        ),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "APIG.3310");

    // Unknown apps, with APIG's message.
    let missing = "0".repeat(32);
    let msg = send(&f.router, put(app_path(&missing), r#"{"name":"fine"}"#))
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3004");
    assert_eq!(msg, format!("App {missing} does not exist"));
    send(
        &f.router,
        request("PUT", &secret_path(&missing), Some(TOKEN_RW), None),
    )
    .await
    .error(StatusCode::NOT_FOUND, "APIG.3004");
    send(&f.router, put(secret_path("bad.id"), "{}"))
        .await
        .invalid("app_id");

    // Read-only credentials write nothing.
    for uri in [app_path(&app_id), secret_path(&app_id)] {
        send(
            &f.router,
            request("PUT", &uri, Some(TOKEN_RO), Some(r#"{"name":"by_reader"}"#)),
        )
        .await
        .error(StatusCode::FORBIDDEN, "APIG.1005");
    }
    // Other methods on the reset path.
    for method in ["GET", "POST", "DELETE", "PATCH"] {
        send(
            &f.router,
            request(method, &secret_path(&app_id), Some(TOKEN_RW), None),
        )
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0101");
    }

    // Nothing of the refused calls reached the store.
    assert_eq!(show_app(&f, &app_id).await, before);
    assert_eq!(show_app(&f, other["id"].as_str().unwrap()).await, other);
}

#[tokio::test]
async fn app_code_endpoints_have_apigs_shapes() {
    let f = fixture();
    let app_id = new_app(&f, "codes_app").await;
    let value = format!(
        "GjOD3g80AABuuFeEJpVQADBlAjBh3UzC7W+gr4VJBB5BtJ4fdVOQoSvoji3gFxUDb5pW{}",
        "x".repeat(8)
    );
    let body = json!({ "app_code": value }).to_string();
    let created = send(
        &f.router,
        request("POST", &codes_path(&app_id), Some(TOKEN_RW), Some(&body)),
    )
    .await;
    let created = created.ok(StatusCode::CREATED).clone();
    assert_eq!(created["app_code"], value.as_str());
    assert_eq!(created["app_id"], app_id.as_str());
    assert!(is_lower_hex(created["id"].as_str().unwrap(), 32));
    assert!(is_apig_time(&created["create_time"]));
    let fields: BTreeSet<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["app_code", "id", "app_id", "create_time"])
    );

    let generated = generate_code(&f, &app_id).await;
    assert!(is_lower_hex(generated["app_code"].as_str().unwrap(), 64));
    assert_eq!(generated["app_id"], app_id.as_str());
    assert_ne!(generated["id"], created["id"]);

    let v1 = format!("/v1/{PROJECT}/apigw/instances/{INSTANCE}/apps/{app_id}/app-codes");
    let v1_body = json!({ "app_code": format!("v1/{}", "A".repeat(70)) }).to_string();
    let r = send(
        &f.router,
        request("POST", &v1, Some(TOKEN_RW), Some(&v1_body)),
    )
    .await;
    let v1_code = r.ok(StatusCode::CREATED).clone();
    assert_eq!(v1_code["app_id"], app_id.as_str());

    let one = format!(
        "{}/{}",
        codes_path(&app_id),
        created["id"].as_str().unwrap()
    );
    let shown = send(&f.router, request("GET", &one, Some(TOKEN_RO), None)).await;
    assert_eq!(
        shown.ok(StatusCode::CREATED),
        &created,
        "show answers the documented 201"
    );

    let list = send(
        &f.router,
        request("GET", &codes_path(&app_id), Some(TOKEN_RO), None),
    )
    .await;
    let list = list.ok(StatusCode::OK);
    assert_eq!(
        (list["total"].as_u64(), list["size"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(list["app_codes"][0], created);
    assert_eq!(list["app_codes"][1], generated);
    let page = send(
        &f.router,
        request(
            "GET",
            &format!("{}?offset=1&limit=1", codes_path(&app_id)),
            Some(TOKEN_RO),
            None,
        ),
    )
    .await;
    assert_eq!(page.body["total"], 3);
    assert_eq!(page.body["size"], 1);
    assert_eq!(page.body["app_codes"][0], generated);

    let deleted = send(&f.router, request("DELETE", &one, Some(TOKEN_RW), None)).await;
    deleted.ok(StatusCode::NO_CONTENT);
    assert!(deleted.raw.is_empty());
    let code_id = created["id"].as_str().unwrap();
    for method in ["GET", "DELETE"] {
        let r = send(&f.router, request(method, &one, Some(TOKEN_RW), None)).await;
        assert_eq!(
            r.error(StatusCode::NOT_FOUND, "APIG.3082"),
            format!("AppCode {code_id} does not exist")
        );
    }
}

#[tokio::test]
async fn invalid_and_duplicate_app_code_values() {
    let f = fixture();
    let app_id = new_app(&f, "values_app").await;
    let other_app = new_app(&f, "other_app").await;
    let ok = "a".repeat(64);
    for bad in [
        json!({}),
        json!({"app_code": null}),
        json!({"app_code": 7}),
        json!({"app_code": "a".repeat(63)}),
        json!({"app_code": "a".repeat(181)}),
        json!({"app_code": format!("={}", "a".repeat(63))}),
        json!({"app_code": format!("_{}", "a".repeat(63))}),
        json!({"app_code": format!("{}*", "a".repeat(63))}),
        json!({"app_code": format!("{} ", "a".repeat(64))}),
        json!({"app_code": format!("{}é", "a".repeat(64))}),
    ] {
        let r = send(
            &f.router,
            request(
                "POST",
                &codes_path(&app_id),
                Some(TOKEN_RW),
                Some(&bad.to_string()),
            ),
        )
        .await;
        r.invalid("app_code");
    }
    let body = json!({ "app_code": ok }).to_string();
    let r = send(
        &f.router,
        request("POST", &codes_path(&app_id), Some(TOKEN_RW), Some(&body)),
    )
    .await;
    r.ok(StatusCode::CREATED);
    // A value is unique within the instance: on the same app and on another.
    for app in [&app_id, &other_app] {
        let r = send(
            &f.router,
            request("POST", &codes_path(app), Some(TOKEN_RW), Some(&body)),
        )
        .await;
        assert_eq!(
            r.error(StatusCode::BAD_REQUEST, "APIG.3311"),
            "The AppCode already exists"
        );
    }
    let list = send(
        &f.router,
        request("GET", &codes_path(&app_id), Some(TOKEN_RW), None),
    )
    .await;
    assert_eq!(list.body["total"], 1, "nothing invalid was stored");
}

#[tokio::test]
async fn unknown_app_instance_and_malformed_ids() {
    let f = fixture();
    let missing = "0123456789abcdef0123456789abcdef";
    let code_body = json!({ "app_code": "b".repeat(64) }).to_string();
    let on_missing_app = [
        ("GET", format!("{}/{missing}", apps_path()), None),
        ("DELETE", format!("{}/{missing}", apps_path()), None),
        ("POST", codes_path(missing), Some(code_body.as_str())),
        ("PUT", codes_path(missing), None),
        ("GET", codes_path(missing), None),
        ("GET", format!("{}/{missing}", codes_path(missing)), None),
        ("DELETE", format!("{}/{missing}", codes_path(missing)), None),
    ];
    for (method, uri, body) in &on_missing_app {
        let r = send(&f.router, request(method, uri, Some(TOKEN_RW), *body)).await;
        assert_eq!(
            r.error(StatusCode::NOT_FOUND, "APIG.3004"),
            format!("App {missing} does not exist"),
            "{method} {uri}"
        );
    }
    let unknown_instance = format!("{}/apps", base(PROJECT, "nope"));
    let r = send(
        &f.router,
        request("GET", &unknown_instance, Some(TOKEN_RW), None),
    )
    .await;
    assert_eq!(
        r.error(StatusCode::NOT_FOUND, "APIG.3030"),
        "Instance nope does not exist"
    );
    for (uri, parameter) in [
        (format!("{}/apps/a%20b", base(PROJECT, INSTANCE)), "app_id"),
        (
            format!("{}/apps/{}", base(PROJECT, INSTANCE), "a".repeat(65)),
            "app_id",
        ),
        (
            format!("{}/apps/x/app-codes/%2e%2e", base(PROJECT, INSTANCE)),
            "app_code_id",
        ),
        (format!("{}/apps", base(PROJECT, "in%22st")), "instance_id"),
        (
            format!("{}/apps", base("pr%C3%BCj", INSTANCE)),
            "project_id",
        ),
    ] {
        let r = send(&f.router, request("GET", &uri, Some(TOKEN_RW), None)).await;
        r.invalid(parameter);
    }
}

#[tokio::test]
async fn the_sixth_app_code_exceeds_the_quota() {
    let f = fixture();
    let app_id = new_app(&f, "quota_app").await;
    for _ in 0..5 {
        generate_code(&f, &app_id).await;
    }
    let body = json!({ "app_code": "q".repeat(64) }).to_string();
    for req in [
        request("PUT", &codes_path(&app_id), Some(TOKEN_RW), None),
        request("POST", &codes_path(&app_id), Some(TOKEN_RW), Some(&body)),
    ] {
        let r = send(&f.router, req).await;
        r.error(StatusCode::FORBIDDEN, "APIG.3131");
    }
    assert_eq!(f.cache.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_on_one_app_yield_exactly_five() {
    let f = fixture();
    let app_id = new_app(&f, "busy_app").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let router = f.router.clone();
            let req = if i % 2 == 0 {
                request("PUT", &codes_path(&app_id), Some(TOKEN_RW), None)
            } else {
                let body = json!({ "app_code": format!("c{i:02}{}", "z".repeat(62)) }).to_string();
                request("POST", &codes_path(&app_id), Some(TOKEN_RW), Some(&body))
            };
            tokio::spawn(async move { send(&router, req).await })
        })
        .collect();
    let mut created = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == StatusCode::CREATED {
            created.push(value_of(&r.body));
        } else {
            r.error(StatusCode::FORBIDDEN, "APIG.3131");
            refused += 1;
        }
    }
    assert_eq!((created.len(), refused), (5, 45));
    let list = send(
        &f.router,
        request("GET", &codes_path(&app_id), Some(TOKEN_RW), None),
    )
    .await;
    assert_eq!(list.body["total"], 5);
    assert_eq!(f.cache.len(), 5);
    for code in &created {
        assert_eq!(f.cache.verify(code).unwrap().app_id(), app_id);
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway sees every change before the API answers.

async fn gateway_status(cache: &AppCodeCache, code: &AppCode) -> (StatusCode, String) {
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

#[tokio::test]
async fn created_codes_pass_the_gateway_and_deleted_ones_fail_at_once() {
    let f = fixture();
    let app_id = new_app(&f, "gateway_app").await;
    let generated = generate_code(&f, &app_id).await;
    let code = value_of(&generated);
    let (status, who) = gateway_status(&f.cache, &code).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        who,
        format!("{app_id} {}", generated["id"].as_str().unwrap())
    );

    let one = format!(
        "{}/{}",
        codes_path(&app_id),
        generated["id"].as_str().unwrap()
    );
    send(&f.router, request("DELETE", &one, Some(TOKEN_RW), None))
        .await
        .ok(StatusCode::NO_CONTENT);
    let (status, body) = gateway_status(&f.cache, &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("APIG.0303"), "{body}");

    // Deleting the app revokes every code it held.
    let codes = [
        value_of(&generate_code(&f, &app_id).await),
        value_of(&generate_code(&f, &app_id).await),
    ];
    for c in &codes {
        assert_eq!(gateway_status(&f.cache, c).await.0, StatusCode::OK);
    }
    send(
        &f.router,
        request(
            "DELETE",
            &format!("{}/{app_id}", apps_path()),
            Some(TOKEN_RW),
            None,
        ),
    )
    .await
    .ok(StatusCode::NO_CONTENT);
    for c in &codes {
        assert_eq!(
            gateway_status(&f.cache, c).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(f.cache.is_empty());
}

#[tokio::test]
async fn codes_go_to_their_own_instances_cache() {
    let store = Arc::new(MemoryStore::new());
    let (one, two) = (AppCodeCache::new(), AppCodeCache::new());
    let router = AdminApi::builder()
        .store(store)
        .instance("i1", one.clone())
        .instance("i2", two.clone())
        .token(TokenCredential::new(TOKEN_RW, Permissions::read_write()))
        .build()
        .unwrap()
        .router();
    let app = send(
        &router,
        request(
            "POST",
            "/v2/p/apigw/instances/i2/apps",
            Some(TOKEN_RW),
            Some(r#"{"name":"two"}"#),
        ),
    )
    .await;
    let app_id = app.body["id"].as_str().unwrap();
    let code = send(
        &router,
        request(
            "PUT",
            &format!("/v2/p/apigw/instances/i2/apps/{app_id}/app-codes"),
            Some(TOKEN_RW),
            None,
        ),
    )
    .await;
    let code = value_of(code.ok(StatusCode::CREATED));
    assert!(two.verify(&code).is_some());
    assert!(one.verify(&code).is_none());
}

// ---------------------------------------------------------------------------------------------
// Authentication and authorization

#[tokio::test]
async fn tokens_are_checked_for_role_and_project() {
    let f = fixture();
    let app_id = new_app(&f, "auth_app").await;
    let r = send(&f.router, request("GET", &apps_path(), None, None)).await;
    r.error(StatusCode::UNAUTHORIZED, "APIG.1000");
    for wrong in [
        "rw-token-0123456789abcde",
        "rw-token-0123456789abcdef ",
        "x",
    ] {
        let r = send(&f.router, request("GET", &apps_path(), Some(wrong), None)).await;
        r.error(StatusCode::UNAUTHORIZED, "APIG.1002");
    }
    let mut twice = request("GET", &apps_path(), Some(TOKEN_RW), None);
    twice
        .headers_mut()
        .append("x-auth-token", TOKEN_RW.parse().unwrap());
    send(&f.router, twice)
        .await
        .error(StatusCode::UNAUTHORIZED, "APIG.1002");

    // Read-only: every GET, no write.
    for uri in [
        apps_path(),
        format!("{}/{app_id}", apps_path()),
        codes_path(&app_id),
    ] {
        send(&f.router, request("GET", &uri, Some(TOKEN_RO), None))
            .await
            .ok(StatusCode::OK);
    }
    for (method, uri, body) in [
        ("POST", apps_path(), Some(r#"{"name":"nope"}"#)),
        ("DELETE", format!("{}/{app_id}", apps_path()), None),
        ("PUT", codes_path(&app_id), None),
    ] {
        let r = send(&f.router, request(method, &uri, Some(TOKEN_RO), body)).await;
        r.error(StatusCode::FORBIDDEN, "APIG.1005");
    }
    // Bound to proj2: refused on proj1 even for reads, allowed on proj2.
    let r = send(
        &f.router,
        request("GET", &apps_path(), Some(TOKEN_P2), None),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "APIG.1005");
    let p2 = format!("{}/apps", base("proj2", INSTANCE));
    send(
        &f.router,
        request("POST", &p2, Some(TOKEN_P2), Some(r#"{"name":"mine"}"#)),
    )
    .await
    .ok(StatusCode::CREATED);
    // X-Project-Id must name the path's project.
    let mut claim = request("GET", &apps_path(), Some(TOKEN_RW), None);
    claim
        .headers_mut()
        .insert("x-project-id", "proj2".parse().unwrap());
    send(&f.router, claim)
        .await
        .error(StatusCode::FORBIDDEN, "APIG.1005");
    let mut claim = request("GET", &apps_path(), Some(TOKEN_RW), None);
    claim
        .headers_mut()
        .insert("x-project-id", PROJECT.parse().unwrap());
    send(&f.router, claim).await.ok(StatusCode::OK);
    // The refused write changed nothing.
    assert_eq!(
        send(
            &f.router,
            request("GET", &apps_path(), Some(TOKEN_RW), None)
        )
        .await
        .body["total"],
        1
    );
}

#[tokio::test]
async fn signed_requests_with_the_sdk_keys_are_accepted() {
    let f = fixture();
    let (ak, sk) = main_key();
    let key = (ak.as_str(), sk.as_str());
    let now = vector_time();
    let r = send(
        &f.router,
        signed("POST", &apps_path(), r#"{"name":"signed_app"}"#, key, now),
    )
    .await;
    let app_id = r.ok(StatusCode::CREATED)["id"].as_str().unwrap().to_owned();
    let r = send(&f.router, signed("PUT", &codes_path(&app_id), "", key, now)).await;
    let code = value_of(r.ok(StatusCode::CREATED));
    assert!(f.cache.verify(&code).is_some());
    let r = send(
        &f.router,
        signed(
            "GET",
            &format!("{}?limit=1&name=signed", apps_path()),
            "",
            key,
            now,
        ),
    )
    .await;
    assert_eq!(r.ok(StatusCode::OK)["total"], 1);
    // 15 minutes of skew either way are tolerated.
    for at in [
        now - Duration::from_secs(900),
        now + Duration::from_secs(900),
    ] {
        send(&f.router, signed("GET", &apps_path(), "", key, at))
            .await
            .ok(StatusCode::OK);
    }
}

#[tokio::test]
async fn bad_signatures_are_401_and_unknown_keys_look_like_wrong_secrets() {
    let f = fixture();
    let (ak, sk) = main_key();
    let now = vector_time();
    let body = r#"{"name":"never_stored"}"#;
    let wrong_sk = send(
        &f.router,
        signed("POST", &apps_path(), body, (&ak, "not-the-secret"), now),
    )
    .await;
    let unknown_ak = send(
        &f.router,
        signed("POST", &apps_path(), body, ("NOSUCHAK", &sk), now),
    )
    .await;
    assert_eq!(
        wrong_sk.error(StatusCode::UNAUTHORIZED, "APIG.1002"),
        unknown_ak.error(StatusCode::UNAUTHORIZED, "APIG.1002")
    );
    // A body changed after signing.
    let req = signed("POST", &apps_path(), body, (&ak, &sk), now);
    let (parts, _) = req.into_parts();
    let tampered = Request::from_parts(parts, Body::from(r#"{"name":"tampered_one"}"#));
    send(&f.router, tampered)
        .await
        .error(StatusCode::UNAUTHORIZED, "APIG.1002");
    // Signed 16 minutes off the server clock.
    for at in [
        now - Duration::from_secs(960),
        now + Duration::from_secs(960),
    ] {
        let r = send(&f.router, signed("GET", &apps_path(), "", (&ak, &sk), at)).await;
        let msg = r.error(StatusCode::UNAUTHORIZED, "APIG.1002");
        assert!(msg.contains("clock skew"), "{msg}");
    }
    // Another scheme, or garbage.
    for auth in ["Bearer abc", "SDK-HMAC-SHA256 Access=x", "SDK-HMAC-SHA256"] {
        let mut req = request("GET", &apps_path(), None, None);
        req.headers_mut()
            .insert("authorization", auth.parse().unwrap());
        send(&f.router, req)
            .await
            .error(StatusCode::UNAUTHORIZED, "APIG.1002");
    }
    // A read-only key may read but not write; a signed X-Project-Id must match the path.
    send(
        &f.router,
        signed("GET", &apps_path(), "", (AK_RO, SK_RO), now),
    )
    .await
    .ok(StatusCode::OK);
    send(
        &f.router,
        signed("POST", &apps_path(), body, (AK_RO, SK_RO), now),
    )
    .await
    .error(StatusCode::FORBIDDEN, "APIG.1005");
    let other_project = format!("{}/apps", base("proj2", INSTANCE));
    send(
        &f.router,
        signed("GET", &other_project, "", (&ak, &sk), now),
    )
    .await
    .error(StatusCode::FORBIDDEN, "APIG.1005");
    let page = f
        .store
        .list_apps(&Scope::new(PROJECT, INSTANCE), &AppFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(page.total, 0);
}

/// Rebuilds a request exactly as the SDK sent it (tests/sdk/vectors.json).
fn replay(v: &Value) -> Request<Body> {
    let query = v["query"].as_str().unwrap();
    let path = v["path"].as_str().unwrap();
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut b = Request::builder()
        .method(v["method"].as_str().unwrap())
        .uri(uri);
    for h in v["headers"].as_array().unwrap() {
        b = b.header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
    }
    b.body(Body::from(v["body_utf8"].as_str().unwrap().to_owned()))
        .unwrap()
}

#[tokio::test]
async fn requests_recorded_from_the_official_sdk_verify() {
    let f = fixture();
    // The SDK's requests name app `app1`: put it in the store.
    let now = Timestamp::now();
    f.store
        .create_app(App {
            id: "app1".into(),
            scope: Scope::new(PROJECT, INSTANCE),
            name: "sdk_app".into(),
            remark: String::new(),
            creator: "USER".into(),
            app_key: "sdk-app-key-1".into(),
            app_secret: SecretString::new("sdk-app-secret-1"),
            register_time: now,
            update_time: now,
            status: 1,
        })
        .await
        .unwrap();

    let v = vector("client_post_create_app_code");
    let r = send(&f.router, replay(&v)).await;
    let created = r.ok(StatusCode::CREATED);
    let sent: Value = serde_json::from_str(v["body_utf8"].as_str().unwrap()).unwrap();
    assert_eq!(created["app_code"], sent["app_code"]);
    assert!(f.cache.verify(&value_of(created)).is_some());

    let r = send(&f.router, replay(&vector("client_put_auto_empty_body"))).await;
    r.ok(StatusCode::CREATED);
    let r = send(&f.router, replay(&vector("bare_get_query_mix"))).await;
    assert_eq!(r.ok(StatusCode::OK)["total"], 1);
    // Verified, then refused on their merits.
    let r = send(&f.router, replay(&vector("client_delete_app_code"))).await;
    r.error(StatusCode::NOT_FOUND, "APIG.3082");
    let r = send(
        &f.router,
        replay(&vector("bare_host_with_port_non_ascii_sk")),
    )
    .await;
    r.invalid("app_code");

    // The same request with a changed body no longer verifies.
    let mut v = vector("client_post_create_app_code");
    v["body_utf8"] = Value::from(v["body_utf8"].as_str().unwrap().replace("Gj", "Gk"));
    send(&f.router, replay(&v))
        .await
        .error(StatusCode::UNAUTHORIZED, "APIG.1002");
}

// ---------------------------------------------------------------------------------------------
// Transport-level errors, internal errors, garbage

#[tokio::test]
async fn unknown_routes_methods_and_bad_bodies_answer_apig_json() {
    let f = fixture();
    for uri in [
        "/",
        "/v2",
        "/v3/p/apigw/instances/i/apps",
        "/v2/p/apigw/instances/i/apps/a/b/c/d",
    ] {
        let r = send(&f.router, request("GET", uri, Some(TOKEN_RW), None)).await;
        r.error(StatusCode::NOT_FOUND, "APIG.0101");
    }
    let r = send(
        &f.router,
        request("PATCH", &apps_path(), Some(TOKEN_RW), None),
    )
    .await;
    let msg = r.error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0101");
    assert!(msg.contains("PATCH"), "{msg}");
    let allow = r.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    // An app is updated with PUT, not POST.
    let r = send(
        &f.router,
        request(
            "POST",
            &format!("{}/x", apps_path()),
            Some(TOKEN_RW),
            Some("{}"),
        ),
    )
    .await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0101");

    // Bodies over 64 KiB: refused by Content-Length, and by counting when streamed.
    let big = format!(r#"{{"name":"big","remark":"{}"}}"#, "r".repeat(64 * 1024));
    let r = send(
        &f.router,
        request("POST", &apps_path(), Some(TOKEN_RW), Some(&big)),
    )
    .await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE, "APIG.0201");
    let streamed = Request::builder()
        .method("POST")
        .uri(apps_path())
        .header("x-auth-token", TOKEN_RW)
        .header("content-type", "application/json")
        .body(Body::new(Chunked(70)))
        .unwrap();
    send(&f.router, streamed)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "APIG.0201");

    for content_type in [Some("text/plain"), Some("application/jsonx"), None] {
        let mut b = Request::builder()
            .method("POST")
            .uri(apps_path())
            .header("x-auth-token", TOKEN_RW);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let r = send(
            &f.router,
            b.body(Body::from(r#"{"name":"typed"}"#)).unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let msg = r.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "APIG.2012");
        assert!(msg.contains("parameterName:Content-Type"), "{msg}");
    }
    // A caller's plain request ID is kept; an odd one is replaced.
    let mut req = request("GET", "/nowhere", None, None);
    req.headers_mut()
        .insert("x-request-id", "trace-42".parse().unwrap());
    let r = send(&f.router, req).await;
    assert_eq!(r.body["request_id"], "trace-42");
    assert_eq!(r.headers["cache-control"], "no-store");
}

/// A body that arrives in `n` chunks of 1 KiB and does not announce its size.
struct Chunked(usize);

impl hyper::body::Body for Chunked {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        let chunk = bytes::Bytes::from(vec![b' '; 1024]);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }
}

/// A store whose every operation fails in the backend, with a secret-looking detail.
struct BrokenStore;

const BACKEND_DETAIL: &str = "connection to db failed: password=hunter2";

fn broken<T>() -> StoreResult<T> {
    Err(StoreError::Backend(BACKEND_DETAIL.into()))
}

impl Store for BrokenStore {
    fn create_app(&self, _: App) -> BoxFuture<'_, StoreResult<App>> {
        Box::pin(async { broken() })
    }
    fn get_app<'a>(&'a self, _: &'a Scope, _: &'a str) -> BoxFuture<'a, StoreResult<App>> {
        Box::pin(async { broken() })
    }
    fn list_apps<'a>(
        &'a self,
        _: &'a Scope,
        _: &'a AppFilter,
        _: u64,
        _: u64,
    ) -> BoxFuture<'a, StoreResult<Page<App>>> {
        Box::pin(async { broken() })
    }
    fn count_app_codes<'a>(
        &'a self,
        _: &'a Scope,
        _: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<u64>>> {
        Box::pin(async { broken() })
    }
    fn update_app<'a>(
        &'a self,
        _: &'a Scope,
        _: &'a str,
        _: AppChanges,
    ) -> BoxFuture<'a, StoreResult<App>> {
        Box::pin(async { broken() })
    }
    fn delete_app<'a>(
        &'a self,
        _: &'a Scope,
        _: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<AppCodeRecord>>> {
        Box::pin(async { broken() })
    }
    fn create_app_code<'a>(
        &'a self,
        _: &'a Scope,
        _: AppCodeRecord,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async { broken() })
    }
    fn get_app_code<'a>(
        &'a self,
        _: &'a Scope,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async { broken() })
    }
    fn list_app_codes<'a>(
        &'a self,
        _: &'a Scope,
        _: &'a str,
        _: u64,
        _: u64,
    ) -> BoxFuture<'a, StoreResult<Page<AppCodeRecord>>> {
        Box::pin(async { broken() })
    }
    fn delete_app_code<'a>(
        &'a self,
        _: &'a Scope,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async { broken() })
    }
    fn instance_app_codes<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<AppCodeRecord>>> {
        Box::pin(async { broken() })
    }
}

/// Collects formatted log lines of everything run while it is the default subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || logs.clone())
                .with_ansi(false)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn backend_errors_are_500_system_error_with_the_detail_only_in_the_log() {
    let logs = Logs::default();
    let _guard = logs.install();
    let router = AdminApi::builder()
        .store(Arc::new(BrokenStore))
        .instance(INSTANCE, AppCodeCache::new())
        .token(TokenCredential::new(TOKEN_RW, Permissions::read_write()))
        .build()
        .unwrap()
        .router();
    let app = codes_path("a1");
    let body = json!({ "app_code": "k".repeat(64) }).to_string();
    let calls = [
        ("POST", apps_path(), Some(r#"{"name":"app"}"#)),
        ("GET", apps_path(), None),
        ("GET", format!("{}/a1", apps_path()), None),
        ("DELETE", format!("{}/a1", apps_path()), None),
        (
            "PUT",
            format!("{}/a1", apps_path()),
            Some(r#"{"name":"app"}"#),
        ),
        ("PUT", format!("{}/secret/a1", apps_path()), None),
        ("POST", app.clone(), Some(body.as_str())),
        ("PUT", app.clone(), None),
        ("GET", app.clone(), None),
        ("GET", format!("{app}/c1"), None),
        ("DELETE", format!("{app}/c1"), None),
    ];
    for (method, uri, body) in calls {
        let r = send(&router, request(method, &uri, Some(TOKEN_RW), body)).await;
        assert_eq!(
            r.error(StatusCode::INTERNAL_SERVER_ERROR, "APIG.9999"),
            "System error"
        );
        assert!(!String::from_utf8_lossy(&r.raw).contains("hunter2"));
        let request_id = r.body["request_id"].as_str().unwrap().to_owned();
        let text = logs.text();
        let line = text
            .lines()
            .find(|l| l.contains(&request_id) && l.contains("APIG.9999"))
            .unwrap_or_else(|| panic!("no log line for {request_id}:\n{text}"));
        assert!(line.contains(BACKEND_DETAIL), "{line}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_token_secret_key_app_secret_or_app_code_in_the_logs() {
    let logs = Logs::default();
    let _guard = logs.install();
    let f = fixture();
    let (ak, sk) = main_key();
    let app = create_app(
        &f,
        json!({"name": "logged_app", "app_secret": "AppSecretValue-1"}),
    )
    .await;
    let app_id = app["id"].as_str().unwrap();
    let generated = generate_code(&f, app_id).await;
    let given = format!("GivenAppCode{}", "v".repeat(60));
    let body = json!({ "app_code": given }).to_string();
    send(
        &f.router,
        signed(
            "POST",
            &codes_path(app_id),
            &body,
            (&ak, &sk),
            vector_time(),
        ),
    )
    .await
    .ok(StatusCode::CREATED);
    send(
        &f.router,
        signed(
            "POST",
            &codes_path(app_id),
            &body,
            (&ak, "wrong-sk"),
            vector_time(),
        ),
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "APIG.1002");
    send(
        &f.router,
        request("GET", &codes_path(app_id), Some(TOKEN_RO), None),
    )
    .await
    .ok(StatusCode::OK);
    send(
        &f.router,
        request("GET", &apps_path(), Some("wrong-token-0123456789"), None),
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "APIG.1002");
    send(
        &f.router,
        request("POST", &apps_path(), Some(TOKEN_RO), Some("{}")),
    )
    .await
    .error(StatusCode::FORBIDDEN, "APIG.1005");
    let updated = json!({"name": "logged_app", "app_secret": "UpdatedSecret-2"}).to_string();
    send(
        &f.router,
        request("PUT", &app_path(app_id), Some(TOKEN_RW), Some(&updated)),
    )
    .await
    .ok(StatusCode::CREATED);
    send(
        &f.router,
        request(
            "PUT",
            &secret_path(app_id),
            Some(TOKEN_RW),
            Some(r#"{"app_secret":"ResetSecret-3"}"#),
        ),
    )
    .await
    .ok(StatusCode::OK);
    let generated_secret = reset_secret(&f, app_id, None).await;
    let one = format!(
        "{}/{}",
        codes_path(app_id),
        generated["id"].as_str().unwrap()
    );
    send(&f.router, request("DELETE", &one, Some(TOKEN_RW), None))
        .await
        .ok(StatusCode::NO_CONTENT);
    send(
        &f.router,
        request(
            "DELETE",
            &format!("{}/{app_id}", apps_path()),
            Some(TOKEN_RW),
            None,
        ),
    )
    .await
    .ok(StatusCode::NO_CONTENT);

    let text = logs.text();
    assert!(
        text.contains("AppCode created")
            && text.contains("app updated")
            && text.contains("app secret reset")
            && text.contains("app deleted"),
        "{text}"
    );
    for secret in [
        TOKEN_RW,
        TOKEN_RO,
        "wrong-token-0123456789",
        sk.as_str(),
        "AppSecretValue-1",
        "UpdatedSecret-2",
        "ResetSecret-3",
        generated_secret.as_str(),
        generated["app_code"].as_str().unwrap(),
        given.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret reached the log:\n{text}");
    }
}

/// Reproducible noise for the garbage test, from proptest's seeded generator.
struct Noise(proptest::test_runner::TestRng);

impl Noise {
    fn seeded(seed: u64) -> Self {
        use proptest::test_runner::{RngAlgorithm, TestRng};
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Self(TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
    }

    fn next(&mut self) -> u64 {
        use proptest::prelude::Rng as _;
        self.0.next_u64()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[tokio::test]
async fn garbage_never_causes_a_500() {
    let f = fixture();
    let app_id = new_app(&f, "garbage_app").await;
    let mut noise = Noise::seeded(0x0123_4567_89ab_cdef);
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    let paths = [
        "/v2/proj1/apigw/instances/inst1/apps".to_owned(),
        format!("/v2/proj1/apigw/instances/inst1/apps/{app_id}"),
        format!("/v2/proj1/apigw/instances/inst1/apps/{app_id}/app-codes"),
        format!("/v2/proj1/apigw/instances/inst1/apps/{app_id}/app-codes/x"),
        format!("/v1/proj1/apigw/instances/inst1/apps/{app_id}/app-codes"),
        "/v2/%ff%fe/apigw/instances/inst1/apps".to_owned(),
        "/v2/proj1/apigw/instances/%00/apps".to_owned(),
        "/v2//apigw/instances//apps".to_owned(),
        format!("/v2/proj1/apigw/instances/inst1/apps/{}", "9".repeat(4000)),
        "/v2/proj1/apigw/instances/inst1/apps?offset=%&limit=%zz&name=%C3".to_owned(),
        "/v2/proj1/apigw/instances/inst1/apps?offset=99999999999999999999&limit=-0".to_owned(),
        "/openapi.json?x=%".to_owned(),
    ];
    let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let deep = "[".repeat(100_000);
    let bodies = [
        "",
        "null",
        "{}",
        "{\"name\":\"\\u0000\\ud800\"}",
        "{\"name\":\"ok_name\",\"name\":5}",
        "{\"app_code\":\"\\u0000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "{\"app_code\":1e999}",
        "{\"name\":\"app\",\"remark\":\"\u{1F600}\"}",
        "\u{0}\u{1}\u{2}",
        deep.as_str(),
        "{\"a\":".repeat(1000).leak(),
    ];
    let tokens = [TOKEN_RW, TOKEN_RO, "", "\u{7f}garbage", TOKEN_P2];
    let content_types = [
        "application/json",
        "application/json; charset=\"x\"",
        "",
        "*/*;;;",
    ];
    for round in 0..600 {
        let method = noise.pick(&methods);
        let path = noise.pick(&path_refs);
        let body = noise.pick(&bodies);
        let mut b = Request::builder().method(method).uri(path);
        let token = noise.pick(&tokens);
        if let Ok(v) = http::HeaderValue::from_bytes(token.as_bytes()) {
            b = b.header("x-auth-token", v);
        }
        let ct = noise.pick(&content_types);
        if !ct.is_empty() {
            b = b.header("content-type", ct);
        }
        if round % 7 == 0 {
            b = b.header(
                "authorization",
                "SDK-HMAC-SHA256 Access=\u{1}, SignedHeaders=;;, Signature=zz",
            );
        }
        if round % 5 == 0 {
            b = b.header("x-project-id", "\u{0}");
        }
        let Ok(req) = b.body(Body::from(body.to_owned())) else {
            continue;
        };
        let r = send(&f.router, req).await;
        assert!(
            r.status.is_success() || r.status.is_client_error(),
            "{method} {path} {body:.40}: {}",
            r.status
        );
        if r.status.is_client_error() && method != "HEAD" {
            assert!(r.body["error_code"]
                .as_str()
                .is_some_and(|c| c.starts_with("APIG.")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document and the router agree.

fn openapi_doc() -> Value {
    serde_json::from_str(include_str!("../src/admin/openapi.json")).unwrap()
}

fn concrete(template: &str) -> String {
    template
        .replace("{project_id}", PROJECT)
        .replace("{instance_id}", INSTANCE)
        .replace("{app_id}", "a1")
        .replace("{app_code_id}", "c1")
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_no_other_method_is() {
    let f = fixture();
    let served = send(&f.router, request("GET", "/openapi.json", None, None)).await;
    assert_eq!(served.ok(StatusCode::OK), &openapi_doc());
    let doc = openapi_doc();
    let all = ["get", "post", "put", "delete", "patch"];
    for (template, item) in doc["paths"].as_object().unwrap() {
        let uri = concrete(template);
        for method in all {
            let req = request(&method.to_uppercase(), &uri, None, None);
            let r = send(&f.router, req).await;
            match (item.get(method), template.as_str()) {
                (Some(_), "/openapi.json") => assert_eq!(r.status, StatusCode::OK),
                // Routed, and protected: the request reached authentication.
                (Some(_), _) => {
                    r.error(StatusCode::UNAUTHORIZED, "APIG.1000");
                }
                (None, _) => {
                    r.error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0101");
                }
            }
        }
    }
}

#[tokio::test]
async fn documented_success_codes_are_the_ones_sent() {
    let f = fixture();
    let doc = openapi_doc();
    let documented = |method: &str, template: &str| -> StatusCode {
        let responses = doc["paths"][template][method]["responses"]
            .as_object()
            .unwrap();
        let ok = responses.keys().find(|k| k.starts_with('2')).unwrap();
        StatusCode::from_bytes(ok.as_bytes()).unwrap()
    };
    let v2 = "/v2/{project_id}/apigw/instances/{instance_id}";
    let t_apps = format!("{v2}/apps");
    let t_app = format!("{v2}/apps/{{app_id}}");
    let t_codes = format!("{v2}/apps/{{app_id}}/app-codes");
    let t_code = format!("{v2}/apps/{{app_id}}/app-codes/{{app_code_id}}");
    let t_v1 = "/v1/{project_id}/apigw/instances/{instance_id}/apps/{app_id}/app-codes".to_owned();
    let fill = |t: &str, app: &str, code: &str| {
        t.replace("{project_id}", PROJECT)
            .replace("{instance_id}", INSTANCE)
            .replace("{app_id}", app)
            .replace("{app_code_id}", code)
    };
    let mut checked = BTreeSet::new();
    let mut check = |method: &str, template: &str, r: &Reply| {
        assert_eq!(
            r.status,
            documented(method, template),
            "{method} {template}"
        );
        checked.insert((method.to_owned(), template.to_owned()));
    };

    let r = send(
        &f.router,
        request(
            "POST",
            &t_apps
                .replace("{project_id}", PROJECT)
                .replace("{instance_id}", INSTANCE),
            Some(TOKEN_RW),
            Some(r#"{"name":"doc_app"}"#),
        ),
    )
    .await;
    check("post", &t_apps, &r);
    let app = r.body["id"].as_str().unwrap().to_owned();
    let r = send(
        &f.router,
        request("GET", &fill(&t_apps, "", ""), Some(TOKEN_RW), None),
    )
    .await;
    check("get", &t_apps, &r);
    let r = send(
        &f.router,
        request("GET", &fill(&t_app, &app, ""), Some(TOKEN_RW), None),
    )
    .await;
    check("get", &t_app, &r);
    let r = send(
        &f.router,
        request(
            "PUT",
            &fill(&t_app, &app, ""),
            Some(TOKEN_RW),
            Some(r#"{"name":"doc_app_renamed"}"#),
        ),
    )
    .await;
    check("put", &t_app, &r);
    let t_secret = format!("{v2}/apps/secret/{{app_id}}");
    let r = send(
        &f.router,
        request("PUT", &fill(&t_secret, &app, ""), Some(TOKEN_RW), None),
    )
    .await;
    check("put", &t_secret, &r);
    let body = json!({ "app_code": "d".repeat(64) }).to_string();
    let r = send(
        &f.router,
        request(
            "POST",
            &fill(&t_codes, &app, ""),
            Some(TOKEN_RW),
            Some(&body),
        ),
    )
    .await;
    check("post", &t_codes, &r);
    let code = r.body["id"].as_str().unwrap().to_owned();
    let body = json!({ "app_code": "e".repeat(64) }).to_string();
    let r = send(
        &f.router,
        request("POST", &fill(&t_v1, &app, ""), Some(TOKEN_RW), Some(&body)),
    )
    .await;
    check("post", &t_v1, &r);
    let r = send(
        &f.router,
        request("PUT", &fill(&t_codes, &app, ""), Some(TOKEN_RW), None),
    )
    .await;
    check("put", &t_codes, &r);
    let r = send(
        &f.router,
        request("GET", &fill(&t_codes, &app, ""), Some(TOKEN_RW), None),
    )
    .await;
    check("get", &t_codes, &r);
    let r = send(
        &f.router,
        request("GET", &fill(&t_code, &app, &code), Some(TOKEN_RW), None),
    )
    .await;
    check("get", &t_code, &r);
    let r = send(
        &f.router,
        request("DELETE", &fill(&t_code, &app, &code), Some(TOKEN_RW), None),
    )
    .await;
    check("delete", &t_code, &r);
    let r = send(
        &f.router,
        request("DELETE", &fill(&t_app, &app, ""), Some(TOKEN_RW), None),
    )
    .await;
    check("delete", &t_app, &r);
    let r = send(&f.router, request("GET", "/openapi.json", None, None)).await;
    check("get", "/openapi.json", &r);

    let mut all = BTreeSet::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            all.insert((method.clone(), template.clone()));
        }
    }
    assert_eq!(checked, all, "every documented operation was exercised");
}

#[test]
fn configuration_errors_are_typed_and_hide_secrets() {
    let store = || Arc::new(MemoryStore::new()) as Arc<dyn Store>;
    let err = |b: apig_appcode::admin::AdminApiBuilder| b.build().unwrap_err();
    assert_eq!(err(AdminApi::builder()), BuildError::MissingStore);
    assert_eq!(
        err(AdminApi::builder().store(store())),
        BuildError::NoInstance
    );
    let base = || {
        AdminApi::builder()
            .store(store())
            .instance("i1", AppCodeCache::new())
    };
    assert_eq!(err(base()), BuildError::NoCredentials);
    let short = err(base().token(TokenCredential::new(
        "short-secret",
        Permissions::read_only(),
    )));
    assert_eq!(short, BuildError::TokenTooShort);
    assert!(!format!("{short} {short:?}").contains("short-secret"));
    let dup = err(base()
        .token(TokenCredential::new(TOKEN_RW, Permissions::read_only()))
        .token(TokenCredential::new(TOKEN_RW, Permissions::read_write())));
    assert_eq!(dup, BuildError::DuplicateToken);
    assert!(!format!("{dup} {dup:?}").contains(TOKEN_RW));
    assert_eq!(
        err(base()
            .instance("i1", AppCodeCache::new())
            .token(TokenCredential::new(TOKEN_RW, Permissions::read_only()))),
        BuildError::DuplicateInstance("i1".into())
    );
    assert_eq!(
        err(AdminApi::builder()
            .store(store())
            .instance("i/1", AppCodeCache::new())),
        BuildError::InvalidInstanceId("i/1".into())
    );
    assert_eq!(
        err(base().access_key(AccessKeyCredential::new(
            "A,K",
            "sk",
            Permissions::read_only()
        ))),
        BuildError::InvalidAccessKey("A,K".into())
    );
    assert_eq!(
        err(base().access_key(AccessKeyCredential::new("AK", "", Permissions::read_only()))),
        BuildError::EmptySecretKey("AK".into())
    );
    let builder = base()
        .token(TokenCredential::new(TOKEN_RW, Permissions::read_only()))
        .access_key(AccessKeyCredential::new(
            "AK",
            "the-secret-key",
            Permissions::read_only(),
        ));
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains(TOKEN_RW) && !shown.contains("the-secret-key"),
        "{shown}"
    );
    let api = builder.build().unwrap();
    let shown = format!("{api:?}");
    assert!(
        !shown.contains(TOKEN_RW) && !shown.contains("the-secret-key"),
        "{shown}"
    );
}
