//! The management API's app quotas, driven with `oneshot`: the nine calls with APIG's shapes,
//! validation with the parameter named, one quota per app, and the gateway's cache holding each
//! app's quota before the API answers.
//!
//! Run: `cargo test --features admin --test admin_app_quotas`.

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use apig_appcode::quota::TimeUnit;
use apig_appcode::store::Store;
use http::StatusCode;
use serde_json::{json, Value};

#[path = "support/admin.rs"]
mod support;
use support::*;

fn quotas_path() -> String {
    format!("{}/app-quotas", base(PROJECT, INSTANCE))
}

fn quota_path(id: &str) -> String {
    format!("{}/{id}", quotas_path())
}

async fn call(f: &Fixture, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let token = if method == "GET" { TOKEN_RO } else { TOKEN_RW };
    let body = body.map(Value::to_string);
    send(
        &f.router,
        request(method, path, Some(token), body.as_deref()),
    )
    .await
}

/// `GET` on `rest` under quota `quota`: its bound or bindable apps.
async fn get_under(f: &Fixture, quota: &str, rest: &str) -> Reply {
    call(f, "GET", &format!("{}/{rest}", quota_path(quota)), None).await
}

/// Binds the apps of `body` (`{"app_ids": [...]}`) to quota `quota`.
async fn bind(f: &Fixture, quota: &str, body: &Value) -> Reply {
    let path = format!("{}/binding-apps", quota_path(quota));
    call(f, "POST", &path, Some(body)).await
}

fn daily(name: &str, calls: u64) -> Value {
    json!({"name": name, "call_limits": calls, "time_unit": "DAY", "time_interval": 1,
           "remark": "for tests"})
}

async fn new_quota(f: &Fixture, body: &Value) -> String {
    let created = call(f, "POST", &quotas_path(), Some(body)).await;
    created.ok(StatusCode::CREATED)["app_quota_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_quota_is_created_listed_shown_updated_and_deleted_with_apigs_shapes() {
    let f = fixture();
    let body = json!({"name": "gold_plan", "call_limits": 1000, "time_unit": "HOUR",
                      "time_interval": 2, "reset_time": "2026-12-07 05:05:00",
                      "remark": "partners"});
    let created = call(&f, "POST", &quotas_path(), Some(&body)).await;
    let created = created.ok(StatusCode::CREATED).clone();
    assert_eq!(
        field_names(&created),
        BTreeSet::from([
            "app_quota_id",
            "name",
            "call_limits",
            "time_unit",
            "time_interval",
            "remark",
            "reset_time",
            "create_time",
            "bound_app_num",
        ])
    );
    for field in [
        "name",
        "call_limits",
        "time_unit",
        "time_interval",
        "reset_time",
        "remark",
    ] {
        assert_eq!(created[field], body[field], "{field}");
    }
    assert_eq!(created["bound_app_num"], 0);
    assert!(is_apig_time(&created["create_time"]));
    let id = created["app_quota_id"].as_str().unwrap();
    assert!(is_lower_hex(id, 32), "{id}");

    // Without a reset time the periods start at each app's first call: none is shown.
    let plain = call(&f, "POST", &quotas_path(), Some(&daily("silver_plan", 10))).await;
    assert!(plain.ok(StatusCode::CREATED).get("reset_time").is_none());

    let shown = call(&f, "GET", &quota_path(id), None).await;
    assert_eq!(shown.ok(StatusCode::OK), &created);

    // Listed in creation order, with a name filter and paging.
    let all = call(&f, "GET", &quotas_path(), None).await;
    let all = all.ok(StatusCode::OK);
    assert_eq!(
        (all["total"].as_u64(), all["size"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(all["quotas"][0], created);
    let filtered = call(&f, "GET", &format!("{}?name=silver", quotas_path()), None).await;
    let filtered = filtered.ok(StatusCode::OK);
    assert_eq!(filtered["total"], 1);
    assert_eq!(filtered["quotas"][0]["name"], "silver_plan");
    let second = call(
        &f,
        "GET",
        &format!("{}?offset=1&limit=1", quotas_path()),
        None,
    )
    .await;
    assert_eq!(
        second.ok(StatusCode::OK)["quotas"][0]["name"],
        "silver_plan"
    );

    // An update replaces the fields; the ID and creation time stay.
    let changed = json!({"name": "gold_plan_2", "call_limits": 5, "time_unit": "MINUTE",
                         "time_interval": 30});
    let updated = call(&f, "PUT", &quota_path(id), Some(&changed)).await;
    let updated = updated.ok(StatusCode::OK).clone();
    assert_eq!(updated["app_quota_id"], id);
    assert_eq!(updated["create_time"], created["create_time"]);
    assert_eq!(
        (updated["name"].as_str(), updated["call_limits"].as_u64()),
        (Some("gold_plan_2"), Some(5))
    );
    assert_eq!(updated["remark"], "");
    assert!(updated.get("reset_time").is_none());

    // Names stay unique: 400 APIG.3325, on create and on update.
    call(&f, "POST", &quotas_path(), Some(&daily("silver_plan", 1)))
        .await
        .error(StatusCode::BAD_REQUEST, "APIG.3325");
    call(&f, "PUT", &quota_path(id), Some(&daily("silver_plan", 1)))
        .await
        .error(StatusCode::BAD_REQUEST, "APIG.3325");

    let deleted = call(&f, "DELETE", &quota_path(id), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for method in ["GET", "DELETE"] {
        call(&f, method, &quota_path(id), None)
            .await
            .error(StatusCode::NOT_FOUND, "APIG.3093");
    }
    call(&f, "PUT", &quota_path(id), Some(&daily("again", 1)))
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3093");
}

#[tokio::test]
async fn bad_quotas_are_refused_with_the_parameter_named() {
    let f = fixture();
    let long = "n".repeat(256);
    let mut cases = vec![
        (
            json!({"call_limits": 1, "time_unit": "DAY", "time_interval": 1}),
            "name",
        ),
        (
            json!({"name": "ab", "call_limits": 1, "time_unit": "DAY", "time_interval": 1}),
            "name",
        ),
        (
            json!({"name": long, "call_limits": 1, "time_unit": "DAY", "time_interval": 1}),
            "name",
        ),
        (
            json!({"name": "a\nb_quota", "call_limits": 1, "time_unit": "DAY", "time_interval": 1}),
            "name",
        ),
        (
            json!({"name": "abc", "time_unit": "DAY", "time_interval": 1}),
            "call_limits",
        ),
        (
            json!({"name": "abc", "call_limits": 0, "time_unit": "DAY", "time_interval": 1}),
            "call_limits",
        ),
        (
            json!({"name": "abc", "call_limits": -1, "time_unit": "DAY", "time_interval": 1}),
            "call_limits",
        ),
        (
            json!({"name": "abc", "call_limits": 1.5, "time_unit": "DAY", "time_interval": 1}),
            "call_limits",
        ),
        (
            json!({"name": "abc", "call_limits": "10", "time_unit": "DAY", "time_interval": 1}),
            "call_limits",
        ),
        (
            json!({"name": "abc", "call_limits": 2_147_483_648_u64, "time_unit": "DAY", "time_interval": 1}),
            "call_limits",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "WEEK", "time_interval": 1}),
            "time_unit",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "day", "time_interval": 1}),
            "time_unit",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_interval": 1}),
            "time_unit",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "DAY", "time_interval": 0}),
            "time_interval",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "DAY"}),
            "time_interval",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "DAY", "time_interval": 100_000}),
            "time_interval",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "DAY", "time_interval": 1,
                "reset_time": "2026-02-30 00:00:00"}),
            "reset_time",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "DAY", "time_interval": 1,
                "reset_time": "2026-12-07T05:05:00Z"}),
            "reset_time",
        ),
        (
            json!({"name": "abc", "call_limits": 1, "time_unit": "DAY", "time_interval": 1,
                "remark": "r".repeat(256)}),
            "remark",
        ),
    ];
    cases.push((json!([1, 2]), "body"));
    for (body, parameter) in &cases {
        call(&f, "POST", &quotas_path(), Some(body))
            .await
            .invalid(parameter);
    }
    let listed = call(&f, "GET", &quotas_path(), None).await;
    assert_eq!(
        listed.ok(StatusCode::OK)["total"],
        0,
        "a refused quota was stored"
    );

    // The same rules on update.
    let id = new_quota(&f, &daily("valid_quota", 3)).await;
    for (body, parameter) in cases.iter().take(6) {
        call(&f, "PUT", &quota_path(id.as_str()), Some(body))
            .await
            .invalid(parameter);
    }
    // Read-only callers cannot write.
    let ro = send(
        &f.router,
        request(
            "POST",
            &quotas_path(),
            Some(TOKEN_RO),
            Some(&daily("ro_quota", 1).to_string()),
        ),
    )
    .await;
    ro.error(StatusCode::FORBIDDEN, "APIG.1005");
}

#[tokio::test]
async fn apps_are_bound_one_quota_each_and_the_cache_follows_every_change() {
    let f = fixture();
    let a = new_app(&f, "app_alpha").await;
    let b = new_app(&f, "app_beta").await;
    let c = new_app(&f, "app_gamma").await;
    let gold = new_quota(
        &f,
        &json!({"name": "gold", "call_limits": 100, "time_unit": "HOUR",
                                      "time_interval": 1, "reset_time": "2026-01-01 00:00:00"}),
    )
    .await;
    let silver = new_quota(&f, &daily("silver", 10)).await;

    let bound = bind(&f, &gold, &json!({"app_ids": [a, b]})).await;
    let applies = bound.ok(StatusCode::CREATED)["applies"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(applies.len(), 2);
    assert_eq!(
        field_names(&applies[0]),
        BTreeSet::from(["app_quota_id", "app_id", "bound_time"])
    );
    assert_eq!(
        (applies[0]["app_id"].as_str(), applies[1]["app_id"].as_str()),
        (Some(a.as_str()), Some(b.as_str()))
    );
    assert!(is_apig_time(&applies[0]["bound_time"]));
    // In the cache before the answer, anchored at the reset time.
    let cached = f.cache.app_quota(&a).expect("cached before the answer");
    assert_eq!(
        (cached.call_limits(), cached.time_unit()),
        (100, TimeUnit::Hour)
    );
    assert_eq!(
        cached.anchor(),
        Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    );
    assert_eq!(
        call(&f, "GET", &quota_path(&gold), None)
            .await
            .ok(StatusCode::OK)["bound_app_num"],
        2
    );

    // One quota per app (400 APIG.3326), all or none; unknown apps are 404 APIG.3004.
    bind(&f, &silver, &json!({"app_ids": [c, a]}))
        .await
        .error(StatusCode::BAD_REQUEST, "APIG.3326");
    let missing = "0123456789abcdef0123456789abcdef";
    let unknown = bind(&f, &silver, &json!({"app_ids": [c, missing]})).await;
    assert!(unknown
        .error(StatusCode::NOT_FOUND, "APIG.3004")
        .contains(missing));
    assert!(
        f.cache.app_quota(&c).is_none(),
        "a refused binding reached the cache"
    );
    for body in [
        json!({"app_ids": []}),
        json!({"app_ids": "x"}),
        json!({"app_ids": ["a/b"]}),
        json!({}),
    ] {
        bind(&f, &silver, &body).await.invalid("app_ids");
    }
    bind(&f, missing, &json!({"app_ids": [c]}))
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3093");

    // Bound and bindable apps, never with a secret.
    let bound = get_under(&f, &gold, "bound-apps").await;
    let bound = bound.ok(StatusCode::OK).clone();
    assert_eq!(
        (bound["total"].as_u64(), bound["size"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(bound["apps"][0]["app_id"], a.as_str());
    assert_eq!(bound["apps"][0]["app_quota_id"], gold.as_str());
    assert_eq!(bound["apps"][0]["app_quota_name"], "gold");
    assert!(is_apig_time(&bound["apps"][0]["bound_time"]));
    assert!(!bound.to_string().contains("app_secret"));
    let named = get_under(&f, &gold, "bound-apps?app_name=beta").await;
    assert_eq!(named.ok(StatusCode::OK)["apps"][0]["app_id"], b.as_str());
    let bindable = get_under(&f, &silver, "bindable-apps").await;
    let bindable = bindable.ok(StatusCode::OK);
    assert_eq!(bindable["total"], 1);
    assert_eq!(bindable["apps"][0]["app_id"], c.as_str());
    assert!(bindable["apps"][0].get("bound_time").is_none());

    // The app's own view of its quota.
    let of_app = |app: &str| format!("{}/bound-quota", app_path(app));
    let theirs = call(&f, "GET", &of_app(&a), None).await;
    assert_eq!(theirs.ok(StatusCode::OK)["app_quota_id"], gold.as_str());
    call(&f, "GET", &of_app(&c), None)
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3093");
    call(&f, "GET", &of_app(missing), None)
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3004");

    // An update reaches every bound app's cached quota.
    let changed =
        json!({"name": "gold", "call_limits": 7, "time_unit": "MINUTE", "time_interval": 1});
    call(&f, "PUT", &quota_path(&gold), Some(&changed))
        .await
        .ok(StatusCode::OK);
    // Without a reset time now, each app's windows start at its binding: the cache holds what
    // the store hands every other node.
    let handed = f.store.instance_app_quotas(INSTANCE).await.unwrap();
    for app in [&a, &b] {
        let cached = f.cache.app_quota(app).unwrap();
        assert_eq!(cached.call_limits(), 7);
        assert!(cached.anchor().is_some(), "anchored at the binding");
        let theirs = handed.iter().find(|(id, _)| id == app).map(|(_, q)| q);
        assert_eq!(Some(&*cached), theirs);
    }

    // Unbinding: the app leaves the cache; unbinding again is 404 APIG.3004.
    let unbind = format!("{}/bound-apps/{b}", quota_path(&gold));
    assert_eq!(
        call(&f, "DELETE", &unbind, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(f.cache.app_quota(&b).is_none());
    call(&f, "DELETE", &unbind, None)
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3004");

    // Deleting the app, or the quota, unbinds.
    bind(&f, &silver, &json!({"app_ids": [b, c]}))
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(f.cache.app_quota(&c).unwrap().call_limits(), 10);
    assert_eq!(
        call(&f, "DELETE", &app_path(&c), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(f.cache.app_quota(&c).is_none());
    assert_eq!(
        call(&f, "GET", &quota_path(&silver), None)
            .await
            .ok(StatusCode::OK)["bound_app_num"],
        1
    );
    assert_eq!(
        call(&f, "DELETE", &quota_path(&silver), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(f.cache.app_quota(&b).is_none());
    call(&f, "GET", &of_app(&b), None)
        .await
        .error(StatusCode::NOT_FOUND, "APIG.3093");
    assert_eq!(f.cache.app_quotas(), 1, "only app a keeps a quota");
}
