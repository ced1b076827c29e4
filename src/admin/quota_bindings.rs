//! App quota binding handlers (reference section 9): bind apps to a quota, list its bound and
//! bindable apps, unbind one. A binding reaches the instance's
//! [`AppCodeCache`](crate::AppCodeCache) before the response is sent.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::audit::audit;
use super::call::Call;
use super::error::AdminError;
use super::ids::is_plain_id;
use super::paging::Query;
use super::views::{json, no_content};
use crate::store::{
    anchored_at_binding, QuotaApp, QuotaBinding, StoreError, Timestamp, MAX_APPS_PER_BINDING,
};

/// One binding as APIG shows it.
#[derive(Serialize)]
struct BindingView<'a> {
    app_quota_id: &'a str,
    app_id: &'a str,
    bound_time: String,
}

/// `{"applies": [...]}`.
#[derive(Serialize)]
struct Applies<'a> {
    applies: Vec<BindingView<'a>>,
}

/// An app listed under a quota, without its secret.
#[derive(Serialize)]
struct QuotaAppView<'a> {
    app_id: &'a str,
    name: &'a str,
    status: i32,
    app_key: &'a str,
    remark: &'a str,
    related_project_id: &'a str,
    register_time: String,
    update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_quota_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_quota_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bound_time: Option<String>,
}

/// `{"total", "size", "apps"}`.
#[derive(Serialize)]
struct QuotaAppList<'a> {
    total: u64,
    size: usize,
    apps: Vec<QuotaAppView<'a>>,
}

/// `POST .../app-quotas/{app_quota_id}/binding-apps` with `{"app_ids": [...]}` → `201`
/// `{"applies"}`: all the apps, or none when one is unknown or bound to another quota.
pub(crate) async fn bind(call: Call) -> Result<Response, AdminError> {
    let body = call.json_object()?;
    let app_ids = match body.get("app_ids") {
        Some(Value::Array(ids)) if !ids.is_empty() && ids.len() <= MAX_APPS_PER_BINDING => ids
            .iter()
            .map(|id| match id.as_str() {
                Some(id) if is_plain_id(id) => Ok(id.to_owned()),
                _ => Err(AdminError::InvalidParameter("app_ids")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(AdminError::InvalidParameter("app_ids")),
    };
    let bindings: Vec<QuotaBinding> = {
        let _writes = call.instance.writes.lock().await;
        let store = call.store();
        let bindings = store
            .bind_app_quota(&call.scope, &call.app_quota_id, &app_ids, Timestamp::now())
            .await;
        let bindings = match bindings {
            Err(StoreError::AppNotFound) => return Err(missing_app(&call, &app_ids).await),
            other => other.map_err(|e| call.store_error(e))?,
        };
        let record = call
            .stored(store.get_app_quota(&call.scope, &call.app_quota_id))
            .await?;
        for binding in &bindings {
            let quota = anchored_at_binding(&record.quota, binding.bound_time);
            call.instance
                .cache
                .set_app_quota(&binding.app_id, Arc::new(quota));
        }
        bindings
    };
    audit!(
        call,
        app_quota_id = %call.app_quota_id,
        apps = bindings.len(),
        "apps bound to app quota"
    );
    let applies = bindings
        .iter()
        .map(|b| BindingView {
            app_quota_id: &b.app_quota_id,
            app_id: &b.app_id,
            bound_time: b.bound_time.to_string(),
        })
        .collect();
    json(StatusCode::CREATED, &Applies { applies })
}

/// `404 APIG.3004` naming the first of `app_ids` that does not exist.
async fn missing_app(call: &Call, app_ids: &[String]) -> AdminError {
    for id in app_ids {
        match call.store().get_app(&call.scope, id).await {
            Ok(_) => {}
            Err(StoreError::AppNotFound) => return AdminError::AppNotFound(id.clone()),
            Err(e) => return call.store_error(e),
        }
    }
    // Created since: the binding can be tried again.
    AdminError::AppNotFound(app_ids.join(","))
}

/// `GET .../app-quotas/{app_quota_id}/bound-apps` (`offset`, `limit`, `app_name`) → `200`.
pub(crate) async fn bound(call: Call) -> Result<Response, AdminError> {
    list(call, true).await
}

/// `GET .../app-quotas/{app_quota_id}/bindable-apps` (`offset`, `limit`, `app_name`) → `200`:
/// the apps without any quota.
pub(crate) async fn bindable(call: Call) -> Result<Response, AdminError> {
    list(call, false).await
}

async fn list(call: Call, bound: bool) -> Result<Response, AdminError> {
    let query = Query::parse(call.query.as_deref())?;
    let (offset, limit) = query.paging()?;
    let app_name = query.get("app_name").filter(|n| !n.is_empty());
    let store = call.store();
    let quota = call
        .stored(store.get_app_quota(&call.scope, &call.app_quota_id))
        .await?;
    let page = call
        .stored(store.quota_apps(
            &call.scope,
            &call.app_quota_id,
            bound,
            app_name,
            offset,
            limit,
        ))
        .await?;
    let apps: Vec<QuotaAppView<'_>> = page
        .items
        .iter()
        .map(|listed| quota_app_view(listed, bound.then_some((&quota.id, &quota.name))))
        .collect();
    json(
        StatusCode::OK,
        &QuotaAppList {
            total: page.total,
            size: apps.len(),
            apps,
        },
    )
}

/// `listed` as APIG shows it; `quota` (ID and name) for a bound app.
fn quota_app_view<'a>(listed: &'a QuotaApp, quota: Option<(&'a str, &'a str)>) -> QuotaAppView<'a> {
    let app = &listed.app;
    QuotaAppView {
        app_id: &app.id,
        name: &app.name,
        status: app.status,
        app_key: &app.app_key,
        remark: &app.remark,
        related_project_id: &app.scope.project_id,
        register_time: app.register_time.to_string(),
        update_time: app.update_time.to_string(),
        app_quota_id: quota.map(|(id, _)| id),
        app_quota_name: quota.map(|(_, name)| name),
        bound_time: listed.bound_time.map(|t| t.to_string()),
    }
}

/// `DELETE .../app-quotas/{app_quota_id}/bound-apps/{app_id}` → `204`; `404 APIG.3004` when the
/// app is not bound to it.
pub(crate) async fn unbind(call: Call) -> Result<Response, AdminError> {
    call.write(
        |store| store.unbind_app_quota(&call.scope, &call.app_quota_id, &call.app_id),
        |cache, _| {
            cache.remove_app_quota(&call.app_id);
        },
    )
    .await?;
    audit!(
        call,
        app_quota_id = %call.app_quota_id,
        app_id = %call.app_id,
        "app unbound from app quota"
    );
    Ok(no_content())
}
