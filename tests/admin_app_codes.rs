//! The management API's AppCodes, driven with `oneshot`: create, generate, show, list and
//! delete, invalid and duplicate values, the quota under concurrency, and the gateway's
//! cache seeing every change before the API answers.
//!
//! Run: `cargo test --features admin --test admin_app_codes`.

use std::collections::BTreeSet;
use std::sync::Arc;

use apig_appcode::admin::{AdminApi, Permissions, TokenCredential};
use apig_appcode::store::MemoryStore;
use apig_appcode::AppCodeCache;
use http::StatusCode;
use serde_json::json;

#[path = "support/admin.rs"]
mod support;
use support::*;

// ---------------------------------------------------------------------------------------------
// AppCodes

#[tokio::test]
async fn app_code_endpoints_have_apigs_shapes() {
    let f = fixture();
    let app_id = new_app(&f, "codes_app").await;
    let value = format!(
        "GjOD3g80AABuuFeEJpVQADBlAjBh3UzC7W+gr4VJBB5BtJ4fdVOQoSvoji3gFxUDb5pW{}",
        "x".repeat(8)
    );
    let body = json!({ "app_code": value }).to_string();
    let created = send_rw(&f, "POST", &codes_path(&app_id), Some(&body)).await;
    let created = created.ok(StatusCode::CREATED).clone();
    assert_eq!(created["app_code"], value.as_str());
    assert_eq!(created["app_id"], app_id.as_str());
    assert!(is_lower_hex(created["id"].as_str().unwrap(), 32));
    assert!(is_apig_time(&created["create_time"]));
    assert_eq!(
        field_names(&created),
        BTreeSet::from(["app_code", "id", "app_id", "create_time"])
    );

    let generated = generate_code(&f, &app_id).await;
    assert!(is_lower_hex(generated["app_code"].as_str().unwrap(), 64));
    assert_eq!(generated["app_id"], app_id.as_str());
    assert_ne!(generated["id"], created["id"]);

    let v1 = format!("/v1/{PROJECT}/apigw/instances/{INSTANCE}/apps/{app_id}/app-codes");
    let v1_body = json!({ "app_code": format!("v1/{}", "A".repeat(70)) }).to_string();
    let r = send_rw(&f, "POST", &v1, Some(&v1_body)).await;
    let v1_code = r.ok(StatusCode::CREATED).clone();
    assert_eq!(v1_code["app_id"], app_id.as_str());

    let one = format!(
        "{}/{}",
        codes_path(&app_id),
        created["id"].as_str().unwrap()
    );
    let shown = get_ro(&f, &one).await;
    assert_eq!(
        shown.ok(StatusCode::CREATED),
        &created,
        "show answers the documented 201"
    );

    let list = get_ro(&f, &codes_path(&app_id)).await;
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

    let deleted = send_rw(&f, "DELETE", &one, None).await;
    deleted.ok(StatusCode::NO_CONTENT);
    assert!(deleted.raw.is_empty());
    let code_id = created["id"].as_str().unwrap();
    for method in ["GET", "DELETE"] {
        let r = send_rw(&f, method, &one, None).await;
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
        let r = send_rw(&f, "POST", &codes_path(&app_id), Some(&bad.to_string())).await;
        r.invalid("app_code");
    }
    let body = json!({ "app_code": ok }).to_string();
    let r = send_rw(&f, "POST", &codes_path(&app_id), Some(&body)).await;
    r.ok(StatusCode::CREATED);
    // A value is unique within the instance: on the same app and on another.
    for app in [&app_id, &other_app] {
        let r = send_rw(&f, "POST", &codes_path(app), Some(&body)).await;
        assert_eq!(
            r.error(StatusCode::BAD_REQUEST, "APIG.3311"),
            "The AppCode already exists"
        );
    }
    let list = send_rw(&f, "GET", &codes_path(&app_id), None).await;
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
        let r = send_rw(&f, method, uri, *body).await;
        assert_eq!(
            r.error(StatusCode::NOT_FOUND, "APIG.3004"),
            format!("App {missing} does not exist"),
            "{method} {uri}"
        );
    }
    let unknown_instance = format!("{}/apps", base(PROJECT, "nope"));
    let r = send_rw(&f, "GET", &unknown_instance, None).await;
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
        let r = send_rw(&f, "GET", &uri, None).await;
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
    let list = send_rw(&f, "GET", &codes_path(&app_id), None).await;
    assert_eq!(list.body["total"], 5);
    assert_eq!(f.cache.len(), 5);
    for code in &created {
        assert_eq!(f.cache.verify(code).unwrap().app_id(), app_id);
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway sees every change before the API answers.

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
    send_rw(&f, "DELETE", &one, None)
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
    send_rw(&f, "DELETE", &format!("{}/{app_id}", apps_path()), None)
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
