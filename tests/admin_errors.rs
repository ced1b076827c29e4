//! The management API's errors, driven with `oneshot`: unknown routes and methods, bad and
//! oversized bodies, backend failures (500, detail only in the log), no secret in any log,
//! garbage never causing a 500, the OpenAPI document agreeing with the router, and typed
//! configuration errors.
//!
//! Run: `cargo test --features admin --test admin_errors`.

use std::collections::BTreeSet;
use std::sync::Arc;

use apig_appcode::acl::AppAcl;
use apig_appcode::admin::{
    AccessKeyCredential, AdminApi, BuildError, Permissions, TokenCredential,
};
use apig_appcode::quota::AppQuota;
use apig_appcode::store::{
    async_trait, App, AppChanges, AppCodeRecord, AppFilter, AppQuotaRecord, MemoryStore, Page,
    QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, Store, StoreError, StoreResult,
    Timestamp,
};
use apig_appcode::AppCodeCache;
use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{json, Value};

#[path = "support/admin.rs"]
mod support;
use support::*;
#[path = "support/logs.rs"]
mod logs;
use logs::Logs;
#[path = "support/noise.rs"]
mod noise;
use noise::Noise;

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
        let r = send_rw(&f, "GET", uri, None).await;
        r.error(StatusCode::NOT_FOUND, "APIG.0101");
    }
    let r = send_rw(&f, "PATCH", &apps_path(), None).await;
    let msg = r.error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0101");
    assert!(msg.contains("PATCH"), "{msg}");
    let allow = r.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    // An app is updated with PUT, not POST.
    let r = send_rw(&f, "POST", &format!("{}/x", apps_path()), Some("{}")).await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0101");

    // Bodies over 64 KiB: refused by Content-Length, and by counting when streamed.
    let big = format!(r#"{{"name":"big","remark":"{}"}}"#, "r".repeat(64 * 1024));
    let r = send_rw(&f, "POST", &apps_path(), Some(&big)).await;
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

/// Implements every listed [`Store`] method as a call that fails with [`broken`].
macro_rules! broken_store {
    ($($method:ident($($arg:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl Store for BrokenStore {
            $(
                async fn $method(&self, $(_: $arg),*) -> StoreResult<$out> {
                    broken()
                }
            )*
        }
    };
}

broken_store! {
    create_app(App) -> App;
    get_app(&Scope, &str) -> App;
    list_apps(&Scope, &AppFilter, u64, u64) -> Page<App>;
    update_app(&Scope, &str, AppChanges) -> App;
    delete_app(&Scope, &str) -> Vec<AppCodeRecord>;
    create_app_code(&Scope, AppCodeRecord) -> AppCodeRecord;
    get_app_code(&Scope, &str, &str) -> AppCodeRecord;
    list_app_codes(&Scope, &str, u64, u64) -> Page<AppCodeRecord>;
    delete_app_code(&Scope, &str, &str) -> AppCodeRecord;
    get_app_acl(&Scope, &str) -> Option<AppAcl>;
    set_app_acl(&Scope, &str, AppAcl) -> ();
    delete_app_acl(&Scope, &str) -> bool;
    instance_app_acls(&str) -> Vec<(String, AppAcl)>;
    instance_app_keys(&str) -> Vec<(String, apig_appcode::AppKey)>;
    create_app_quota(&Scope, AppQuotaRecord) -> AppQuotaRecord;
    get_app_quota(&Scope, &str) -> AppQuotaRecord;
    list_app_quotas(&Scope, Option<&str>, u64, u64) -> Page<AppQuotaRecord>;
    update_app_quota(&Scope, &str, AppQuotaRecord) -> AppQuotaRecord;
    delete_app_quota(&Scope, &str) -> ();
    bind_app_quota(&Scope, &str, &[String], Timestamp) -> Vec<QuotaBinding>;
    quota_apps(&Scope, &str, bool, Option<&str>, u64, u64) -> Page<QuotaApp>;
    unbind_app_quota(&Scope, &str, &str) -> ();
    app_bound_quota(&Scope, &str) -> Option<AppQuotaRecord>;
    instance_app_quotas(&str) -> Vec<(String, AppQuota)>;
    add_quota_counts(&str, &[QuotaCount]) -> Vec<SharedCount>;
    instance_app_codes(&str) -> Vec<AppCodeRecord>;
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
        (
            "PUT",
            format!("{}/a1/app-acl", apps_path()),
            Some(r#"{"app_acl_type":"DENY","app_acl_values":["192.0.2.1"]}"#),
        ),
        ("GET", format!("{}/a1/app-acl", apps_path()), None),
        ("DELETE", format!("{}/a1/app-acl", apps_path()), None),
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
    let create_signed_with =
        |sk: &str| signed("POST", &codes_path(app_id), &body, (&ak, sk), vector_time());
    send(&f.router, create_signed_with(&sk))
        .await
        .ok(StatusCode::CREATED);
    send(&f.router, create_signed_with("wrong-sk"))
        .await
        .error(StatusCode::UNAUTHORIZED, "APIG.1002");
    get_ro(&f, &codes_path(app_id)).await.ok(StatusCode::OK);
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
    send_rw(&f, "PUT", &app_path(app_id), Some(&updated))
        .await
        .ok(StatusCode::CREATED);
    send_rw(
        &f,
        "PUT",
        &secret_path(app_id),
        Some(r#"{"app_secret":"ResetSecret-3"}"#),
    )
    .await
    .ok(StatusCode::OK);
    let generated_secret = reset_secret(&f, app_id, None).await;
    let one = format!(
        "{}/{}",
        codes_path(app_id),
        generated["id"].as_str().unwrap()
    );
    send_rw(&f, "DELETE", &one, None)
        .await
        .ok(StatusCode::NO_CONTENT);
    send_rw(&f, "DELETE", &format!("{}/{app_id}", apps_path()), None)
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

    let r = send_rw(
        &f,
        "POST",
        &t_apps
            .replace("{project_id}", PROJECT)
            .replace("{instance_id}", INSTANCE),
        Some(r#"{"name":"doc_app"}"#),
    )
    .await;
    check("post", &t_apps, &r);
    let app = r.body["id"].as_str().unwrap().to_owned();
    let r = send_rw(&f, "GET", &fill(&t_apps, "", ""), None).await;
    check("get", &t_apps, &r);
    let r = send_rw(&f, "GET", &fill(&t_app, &app, ""), None).await;
    check("get", &t_app, &r);
    let r = send_rw(
        &f,
        "PUT",
        &fill(&t_app, &app, ""),
        Some(r#"{"name":"doc_app_renamed"}"#),
    )
    .await;
    check("put", &t_app, &r);
    let t_secret = format!("{v2}/apps/secret/{{app_id}}");
    let r = send_rw(&f, "PUT", &fill(&t_secret, &app, ""), None).await;
    check("put", &t_secret, &r);
    let body = json!({ "app_code": "d".repeat(64) }).to_string();
    let r = send_rw(&f, "POST", &fill(&t_codes, &app, ""), Some(&body)).await;
    check("post", &t_codes, &r);
    let code = r.body["id"].as_str().unwrap().to_owned();
    let body = json!({ "app_code": "e".repeat(64) }).to_string();
    let r = send_rw(&f, "POST", &fill(&t_v1, &app, ""), Some(&body)).await;
    check("post", &t_v1, &r);
    let r = send_rw(&f, "PUT", &fill(&t_codes, &app, ""), None).await;
    check("put", &t_codes, &r);
    let r = send_rw(&f, "GET", &fill(&t_codes, &app, ""), None).await;
    check("get", &t_codes, &r);
    let r = send_rw(&f, "GET", &fill(&t_code, &app, &code), None).await;
    check("get", &t_code, &r);
    let r = send_rw(&f, "DELETE", &fill(&t_code, &app, &code), None).await;
    check("delete", &t_code, &r);
    let t_acl = format!("{v2}/apps/{{app_id}}/app-acl");
    let acl = json!({"app_acl_type": "DENY", "app_acl_values": ["192.0.2.1"]}).to_string();
    for (method, body) in [("PUT", Some(acl.as_str())), ("GET", None), ("DELETE", None)] {
        let r = send_rw(&f, method, &fill(&t_acl, &app, ""), body).await;
        check(&method.to_ascii_lowercase(), &t_acl, &r);
    }
    let t_quotas = format!("{v2}/app-quotas");
    let t_quota = format!("{t_quotas}/{{app_quota_id}}");
    let quota_body =
        json!({"name": "doc_quota", "call_limits": 5, "time_unit": "DAY", "time_interval": 1})
            .to_string();
    let r = send_rw(&f, "POST", &fill(&t_quotas, "", ""), Some(&quota_body)).await;
    check("post", &t_quotas, &r);
    let quota = r.body["app_quota_id"].as_str().unwrap().to_owned();
    let in_quota = |t: &str| fill(t, &app, "").replace("{app_quota_id}", &quota);
    let binding = json!({ "app_ids": [app] }).to_string();
    for (method, template, body) in [
        ("GET", t_quotas.clone(), None),
        ("GET", t_quota.clone(), None),
        ("PUT", t_quota.clone(), Some(quota_body.as_str())),
        (
            "POST",
            format!("{t_quota}/binding-apps"),
            Some(binding.as_str()),
        ),
        ("GET", format!("{t_quota}/bound-apps"), None),
        ("GET", format!("{t_quota}/bindable-apps"), None),
        ("GET", format!("{v2}/apps/{{app_id}}/bound-quota"), None),
        ("DELETE", format!("{t_quota}/bound-apps/{{app_id}}"), None),
        ("DELETE", t_quota.clone(), None),
    ] {
        let r = send_rw(&f, method, &in_quota(&template), body).await;
        check(&method.to_ascii_lowercase(), &template, &r);
    }
    let r = send_rw(&f, "DELETE", &fill(&t_app, &app, ""), None).await;
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

// ---------------------------------------------------------------------------------------------
// Configuration errors

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
