//! Management-API request bodies and list queries (apps, AppCodes on the v2 and v1 paths, app
//! ACLs, app quotas and their bindings), through the axum router in-process over a fresh
//! `MemoryStore` holding one app and one quota.
//!
//! Input: byte 0 picks the operation (`OPS`; the ASCII digits `0`-`9` and `:`-`?` pick the
//! sixteen in order), byte 1 the `Content-Type`, the rest is the body (or the query string).
//! Asserts: no panic, no 5xx (the memory store never fails), every answer is JSON and every
//! non-2xx one APIG's error body, and an AppCode created or generated is in the gateway's cache
//! when its answer is sent.
#![no_main]

use std::sync::{Arc, OnceLock};

use apig_appcode::admin::{AdminApi, Permissions, TokenCredential};
use apig_appcode::quota::{AppQuota, TimeUnit};
use apig_appcode::store::{
    App, AppQuotaRecord, MemoryStore, Scope, SecretString, Store, Timestamp,
};
use apig_appcode::{AppCode, AppCodeCache};
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-admin-token-0123456789";
const APP_ID: &str = "0123456789abcdef0123456789abcdef";
const QUOTA_ID: &str = "fedcba9876543210fedcba9876543210";
const BASE: &str = "/v2/p1/apigw/instances/i1";

/// What the rest of an input is to an operation.
#[derive(Clone, Copy, PartialEq)]
enum Input {
    Body,
    Query,
}

/// Every operation that reads a body or a query: method, path under `BASE` (`{app}` and
/// `{quota}` stand for the seeded app and quota; a path from `/` is taken whole), input.
const OPS: [(Method, &str, Input); 16] = [
    (Method::POST, "/apps", Input::Body),
    (Method::POST, "/apps/{app}/app-codes", Input::Body),
    (Method::POST, "/v1/p1/apigw/instances/i1/apps/{app}/app-codes", Input::Body),
    (Method::GET, "/apps", Input::Query),
    (Method::PUT, "/apps/{app}", Input::Body),
    (Method::PUT, "/apps/secret/{app}", Input::Body),
    (Method::PUT, "/apps/{app}/app-codes", Input::Body),
    (Method::GET, "/apps/{app}/app-codes", Input::Query),
    (Method::PUT, "/apps/{app}/app-acl", Input::Body),
    (Method::POST, "/app-quotas", Input::Body),
    (Method::GET, "/app-quotas", Input::Query),
    (Method::PUT, "/app-quotas/{quota}", Input::Body),
    (Method::POST, "/app-quotas/{quota}/binding-apps", Input::Body),
    (Method::GET, "/app-quotas/{quota}/bound-apps", Input::Query),
    (Method::GET, "/app-quotas/{quota}/bindable-apps", Input::Query),
    (Method::GET, "/apps/{app}/bound-quota", Input::Query),
];

const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/json"),
    Some("application/json;charset=utf-8"),
    Some(" Application/JSON ; q=1"),
    Some("text/plain"),
    None,
];

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let [op, ct, rest @ ..] = data else { return };
    let (method, path, input) = &OPS[usize::from(*op) % OPS.len()];
    let path = path.replace("{app}", APP_ID).replace("{quota}", QUOTA_ID);
    let path = if path.starts_with("/v1/") {
        path
    } else {
        format!("{BASE}{path}")
    };
    let (uri, body) = match input {
        Input::Body => (path, rest),
        Input::Query => {
            // Only bytes that make a valid URI reach a server.
            let Ok(query) = std::str::from_utf8(rest) else {
                return;
            };
            (format!("{path}?{query}"), &[][..])
        }
    };
    let mut req = Request::builder().method(method.clone()).uri(uri.as_str());
    if let Some(ct) = CONTENT_TYPES[usize::from(*ct) % CONTENT_TYPES.len()] {
        req = req.header("content-type", ct);
    }
    let Ok(req) = req
        .header("x-auth-token", TOKEN)
        .body(Body::from(body.to_vec()))
    else {
        return;
    };

    runtime().block_on(async {
        // A fresh store and cache per input: runs stay independent and memory bounded (a
        // shared store would fill up with every app the fuzzer manages to create).
        let store = Arc::new(MemoryStore::new());
        let now = Timestamp::now();
        store
            .create_app(App {
                id: APP_ID.into(),
                scope: Scope::new("p1", "i1"),
                name: "fuzz_app".into(),
                remark: String::new(),
                creator: "USER".into(),
                app_key: "fuzz-app-key".into(),
                app_secret: SecretString::new("fuzz-app-secret"),
                register_time: now,
                update_time: now,
                status: 1,
            })
            .await
            .unwrap();
        let quota = AppQuota::new(100, TimeUnit::Minute, 1).unwrap();
        store
            .create_app_quota(
                &Scope::new("p1", "i1"),
                AppQuotaRecord {
                    id: QUOTA_ID.into(),
                    name: "fuzz_quota".into(),
                    quota,
                    remark: String::new(),
                    create_time: now,
                    bound_app_num: 0,
                },
            )
            .await
            .unwrap();
        let cache = AppCodeCache::new();
        let router = AdminApi::builder()
            .store(store)
            .instance("i1", cache.clone())
            .token(TokenCredential::new(TOKEN, Permissions::read_write()))
            .build()
            .unwrap()
            .router();

        let res = router.oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert!(!status.is_server_error(), "{status}");
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).expect("every answer here is JSON");
        if !status.is_success() {
            let code = json["error_code"].as_str().expect("error_code");
            assert!(code.starts_with("APIG."), "{code}");
            assert!(json["error_msg"].is_string() && json["request_id"].is_string());
        } else if path_creates_a_code(&uri, method) {
            // The cache learns a new code before the client does.
            assert_eq!(status, StatusCode::CREATED);
            let value = json["app_code"].as_str().expect("app_code");
            let code = AppCode::parse(value).expect("a stored AppCode is valid");
            assert!(cache.verify(&code).is_some());
        }
    });
});

/// Whether a successful `method` on `uri` makes an AppCode (creates or generates one).
fn path_creates_a_code(uri: &str, method: &Method) -> bool {
    uri.ends_with("/app-codes") && (method == Method::POST || method == Method::PUT)
}
