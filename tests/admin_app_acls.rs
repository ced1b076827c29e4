//! The management API's app ACLs, driven with `oneshot`: set, show and remove with APIG's
//! shapes, bad types and values refused with APIG.2012, permissions, and the gateway's cache
//! holding every change before the API answers.
//!
//! Run: `cargo test --features admin --test admin_app_acls`.

use std::collections::BTreeSet;

use apig_appcode::acl::AclType;
use http::StatusCode;
use serde_json::json;

#[path = "support/admin.rs"]
mod support;
use support::*;

fn acl_path(app_id: &str) -> String {
    format!("{}/app-acl", app_path(app_id))
}

async fn put_acl(f: &Fixture, app_id: &str, body: &serde_json::Value) -> Reply {
    send_rw(f, "PUT", &acl_path(app_id), Some(&body.to_string())).await
}

#[tokio::test]
async fn an_acl_is_set_shown_replaced_and_removed_with_apigs_shapes() {
    let f = fixture();
    let app_id = new_app(&f, "acl_app").await;

    // Before any ACL: the app, no type, no values.
    let shown = get_ro(&f, &acl_path(&app_id)).await;
    let shown = shown.ok(StatusCode::OK);
    assert_eq!(shown, &json!({"app_id": app_id, "app_acl_values": []}));
    assert!(f.cache.app_acl(&app_id).is_none());

    let body = json!({
        "app_acl_type": "PERMIT",
        "app_acl_values": ["192.0.2.1", "198.51.100.0/24", "2001:db8::1-2001:db8::ff"],
    });
    let set = put_acl(&f, &app_id, &body).await;
    let set = set.ok(StatusCode::CREATED);
    assert_eq!(
        field_names(set),
        BTreeSet::from(["app_id", "app_acl_type", "app_acl_values"])
    );
    assert_eq!(set["app_acl_type"], "PERMIT");
    assert_eq!(set["app_acl_values"], body["app_acl_values"]);
    // The gateway's cache has it before the answer.
    let cached = f.cache.app_acl(&app_id).expect("cached before the answer");
    assert_eq!(cached.kind(), AclType::Permit);
    assert!(cached.admits("198.51.100.7".parse().unwrap()));
    assert!(!cached.admits("203.0.113.7".parse().unwrap()));

    let shown = get_ro(&f, &acl_path(&app_id)).await;
    assert_eq!(shown.ok(StatusCode::OK), set);

    // A PUT replaces the whole ACL.
    let deny = json!({"app_acl_type": "DENY", "app_acl_values": ["10.0.0.0/8"]});
    put_acl(&f, &app_id, &deny).await.ok(StatusCode::CREATED);
    assert_eq!(f.cache.app_acl(&app_id).unwrap().kind(), AclType::Deny);

    let gone = send_rw(&f, "DELETE", &acl_path(&app_id), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert!(f.cache.app_acl(&app_id).is_none());
    // Removing what is not there is no error.
    let again = send_rw(&f, "DELETE", &acl_path(&app_id), None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_acls_are_refused_with_the_parameter_named() {
    let f = fixture();
    let app_id = new_app(&f, "acl_bad").await;
    let hundred: Vec<String> = (0..100).map(|i| format!("10.0.{i}.0/24")).collect();
    let too_many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
    for (body, parameter) in [
        (json!({"app_acl_values": ["192.0.2.1"]}), "app_acl_type"),
        (
            json!({"app_acl_type": "permit", "app_acl_values": ["192.0.2.1"]}),
            "app_acl_type",
        ),
        (
            json!({"app_acl_type": 1, "app_acl_values": ["192.0.2.1"]}),
            "app_acl_type",
        ),
        (json!({"app_acl_type": "DENY"}), "app_acl_values"),
        (
            json!({"app_acl_type": "DENY", "app_acl_values": "192.0.2.1"}),
            "app_acl_values",
        ),
        (
            json!({"app_acl_type": "DENY", "app_acl_values": []}),
            "app_acl_values",
        ),
        (
            json!({"app_acl_type": "DENY", "app_acl_values": [7]}),
            "app_acl_values",
        ),
        (
            json!({"app_acl_type": "DENY", "app_acl_values": ["192.0.2.300"]}),
            "app_acl_values",
        ),
        (
            json!({"app_acl_type": "DENY", "app_acl_values": ["192.0.2.9-192.0.2.1"]}),
            "app_acl_values",
        ),
        (
            json!({"app_acl_type": "DENY", "app_acl_values": ["10.0.0.0/33"]}),
            "app_acl_values",
        ),
        (
            json!({"app_acl_type": "DENY", "app_acl_values": too_many}),
            "app_acl_values",
        ),
    ] {
        put_acl(&f, &app_id, &body).await.invalid(parameter);
    }
    assert!(
        f.cache.app_acl(&app_id).is_none(),
        "a refused ACL reached the cache"
    );
    let shown = get_ro(&f, &acl_path(&app_id)).await;
    assert_eq!(shown.ok(StatusCode::OK)["app_acl_values"], json!([]));
    // The limit itself is fine.
    put_acl(
        &f,
        &app_id,
        &json!({"app_acl_type": "DENY", "app_acl_values": hundred}),
    )
    .await
    .ok(StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_apps_read_only_callers_and_deleted_apps() {
    let f = fixture();
    let body = json!({"app_acl_type": "DENY", "app_acl_values": ["192.0.2.1"]});
    let missing = "0123456789abcdef0123456789abcdef";
    put_acl(&f, missing, &body)
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3004");
    get_ro(&f, &acl_path(missing))
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3004");

    let app_id = new_app(&f, "acl_perm").await;
    let ro = send(
        &f.router,
        request(
            "PUT",
            &acl_path(&app_id),
            Some(TOKEN_RO),
            Some(&body.to_string()),
        ),
    )
    .await;
    ro.error(StatusCode::FORBIDDEN, "APIG.1005");
    assert!(f.cache.app_acl(&app_id).is_none());

    // Deleting the app takes its ACL from the store and the cache.
    put_acl(&f, &app_id, &body).await.ok(StatusCode::CREATED);
    let deleted = send_rw(&f, "DELETE", &app_path(&app_id), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(f.cache.app_acl(&app_id).is_none());
    get_ro(&f, &acl_path(&app_id))
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3004");
}
