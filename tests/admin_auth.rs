//! The management API's authentication and authorization, driven with `oneshot`: token roles
//! and projects, AK/SK signatures (fresh, bad, unknown keys) and requests recorded from the
//! official SDK (tests/sdk/vectors.json).
//!
//! Run: `cargo test --features admin --test admin_auth`.

use std::time::Duration;

use apig_appcode::store::{App, AppFilter, Scope, SecretString, Store, Timestamp};
use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;

#[path = "support/admin.rs"]
mod support;
use support::*;

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
        get_ro(&f, &uri).await.ok(StatusCode::OK);
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
        send_rw(&f, "GET", &apps_path(), None).await.body["total"],
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
