//! Management-API request bodies (app create, AppCode create on the v2 and v1 paths) and the
//! list query, through the axum router in-process over a fresh `MemoryStore`.
//!
//! Input: byte 0 picks the operation, byte 1 the `Content-Type`, the rest is the body (or the
//! query string for the list). Asserts: no panic, no 5xx (the memory store never fails), every
//! non-2xx answer is APIG's JSON error body, and a created AppCode is in the gateway's cache
//! when the 201 is sent.
#![no_main]

use std::sync::{Arc, OnceLock};

use apig_appcode::admin::{AdminApi, Permissions, TokenCredential};
use apig_appcode::store::{App, MemoryStore, Scope, SecretString, Store, Timestamp};
use apig_appcode::{AppCode, AppCodeCache};
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-admin-token-0123456789";
const APP_ID: &str = "0123456789abcdef0123456789abcdef";
const BASE: &str = "/v2/p1/apigw/instances/i1";

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
    let (method, uri, body) = match op % 4 {
        0 => (Method::POST, format!("{BASE}/apps"), rest),
        1 => (
            Method::POST,
            format!("{BASE}/apps/{APP_ID}/app-codes"),
            rest,
        ),
        2 => (
            Method::POST,
            format!("/v1/p1/apigw/instances/i1/apps/{APP_ID}/app-codes"),
            rest,
        ),
        _ => {
            // The list's query parser: only bytes that make a valid URI reach a server.
            let Ok(query) = std::str::from_utf8(rest) else {
                return;
            };
            (Method::GET, format!("{BASE}/apps?{query}"), &[][..])
        }
    };
    let mut req = Request::builder().method(method).uri(uri.as_str());
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
        } else if status == StatusCode::CREATED && op % 4 != 0 {
            // The cache learns a new code before the client does.
            let value = json["app_code"].as_str().expect("app_code");
            let code = AppCode::parse(value).expect("a stored AppCode is valid");
            assert!(cache.verify(&code).is_some());
        }
    });
});
