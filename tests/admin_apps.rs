//! The management API's apps, driven with `oneshot`: create, show, list (filters, paging),
//! delete, update and secret reset, with APIG's shapes and error codes.
//!
//! Run: `cargo test --features admin --test admin_apps`.

use std::collections::BTreeSet;

use apig_appcode::store::{AppFilter, Scope, Store};
use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;

#[path = "support/admin.rs"]
mod support;
use support::*;

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
    assert_eq!(
        field_names(&app),
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

    let list = get_ro(&f, &apps_path()).await;
    let list = list.ok(StatusCode::OK);
    assert_eq!(
        (list["total"].as_u64(), list["size"].as_u64()),
        (Some(1), Some(1))
    );
    let mut item = list["apps"][0].clone();
    assert_eq!(item["bind_num"], 0);
    item.as_object_mut().unwrap().remove("bind_num");
    assert_eq!(item, app);

    let deleted = send_rw(&f, "DELETE", &format!("{}/{id}", apps_path()), None).await;
    deleted.ok(StatusCode::NO_CONTENT);
    assert!(deleted.raw.is_empty());
    let gone = send_rw(&f, "GET", &format!("{}/{id}", apps_path()), None).await;
    assert_eq!(
        gone.error(StatusCode::NOT_FOUND, "APIG.3004"),
        format!("App {id} does not exist")
    );
    let again = send_rw(&f, "DELETE", &format!("{}/{id}", apps_path()), None).await;
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
    let r = get_ro(&f, &other).await;
    assert_eq!(r.ok(StatusCode::OK)["total"], 0);
}

#[tokio::test]
async fn invalid_app_bodies_are_refused_before_storing() {
    let f = fixture();
    let long = |n: usize| json!("a".repeat(n));
    // Each field with the values it refuses, in an otherwise valid body.
    let refused = [
        (
            "name",
            vec![
                json!(null),
                json!("ab"),
                long(65),
                json!("1app"),
                json!("app-1"),
                json!(12345),
            ],
        ),
        ("remark", vec![long(256), json!(1)]),
        (
            "app_key",
            vec![json!("short"), json!("-leading-dash"), long(201)],
        ),
        (
            "app_secret",
            vec![json!("!leading-bang"), json!("has space in it"), long(129)],
        ),
    ];
    for (field, values) in refused {
        for value in values {
            let mut body = json!({"name": "app"});
            body[field] = value;
            let r = send_rw(&f, "POST", &apps_path(), Some(&body.to_string())).await;
            r.invalid(field);
        }
    }
    let r = send_rw(&f, "POST", &apps_path(), Some("{}")).await;
    r.invalid("name");
    // Not an object, not JSON, or nothing at all (an empty body is a missing body).
    let bodies = [
        "[1,2]",
        "\"name\"",
        "{\"name\": \"app\"",
        "{\"name\": \"app\"} trailing",
        "\u{feff}{}",
        "",
    ];
    for body in bodies {
        let r = send_rw(&f, "POST", &apps_path(), Some(body)).await;
        r.invalid("body");
    }
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
        let r = send_rw(&f, "POST", &apps_path(), Some(&body.to_string())).await;
        r.error(StatusCode::BAD_REQUEST, code);
    }
    // The same name in another instance is another app.
    let other = format!("{}/apps", base(PROJECT, "inst2"));
    let r = send_rw(&f, "POST", &other, Some(r#"{"name":"first"}"#)).await;
    r.ok(StatusCode::CREATED);
}

// ---------------------------------------------------------------------------------------------
// Update and secret reset

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
    let r = send_rw(&f, "PUT", &app_path(app_id), Some(&body.to_string())).await;
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
    let r = send_rw(
        &f,
        "PUT",
        &app_path(app_id),
        Some(r#"{"name":"after_应用"}"#),
    )
    .await;
    let renamed = r.ok(StatusCode::CREATED).clone();
    for field in ["name", "remark", "app_key", "app_secret", "register_time"] {
        assert_eq!(renamed[field], updated[field], "{field}");
    }

    // Reset with a given secret: 200 and the app with it.
    let r = send_rw(
        &f,
        "PUT",
        &secret_path(app_id),
        Some(r#"{"app_secret":"Given_reset1"}"#),
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
    send_rw(&f, "PUT", &secret_path(&missing), None)
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
        send_rw(&f, method, &secret_path(&app_id), None)
            .await
            .error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0101");
    }

    // Nothing of the refused calls reached the store.
    assert_eq!(show_app(&f, &app_id).await, before);
    assert_eq!(show_app(&f, other["id"].as_str().unwrap()).await, other);
}
