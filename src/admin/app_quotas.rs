//! App quota handlers (reference section 9): create, list, show, update and delete a quota, and
//! show the quota an app is bound to. Binding apps is in [`quota_bindings`](super::quota_bindings).
//!
//! A change to a quota reaches the instance's [`AppCodeCache`](crate::AppCodeCache) for every
//! app bound to it before the response is sent, and the other nodes through the store's change
//! log.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use super::audit::audit;
use super::call::{string_field, Call};
use super::error::AdminError;
use super::ids::random_id;
use super::paging::{Query, MAX_LIMIT};
use super::views::{json, no_content};
use crate::quota::{AppQuota, QuotaError, TimeUnit};
use crate::store::{
    anchored_at_binding, format_date_time, parse_date_time, AppQuotaRecord, Timestamp,
};

/// The most calls a quota may allow per period, as APIG bounds `call_limits`.
const MAX_CALL_LIMITS: u64 = i32::MAX as u64;
/// Name length in characters.
const NAME_LEN: std::ops::RangeInclusive<usize> = 3..=255;
/// Remark length in characters.
const MAX_REMARK_LEN: usize = 255;

/// An app quota as APIG shows it.
#[derive(Serialize)]
pub(super) struct QuotaView<'a> {
    app_quota_id: &'a str,
    name: &'a str,
    call_limits: u64,
    time_unit: &'static str,
    time_interval: u32,
    remark: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_time: Option<String>,
    create_time: String,
    bound_app_num: u64,
}

impl<'a> QuotaView<'a> {
    pub(super) fn new(record: &'a AppQuotaRecord) -> Self {
        let quota = &record.quota;
        Self {
            app_quota_id: &record.id,
            name: &record.name,
            call_limits: quota.call_limits(),
            time_unit: quota.time_unit().as_str(),
            time_interval: quota.time_interval(),
            remark: &record.remark,
            reset_time: quota
                .anchor()
                .map(|at| format_date_time(crate::quota::secs(at))),
            create_time: record.create_time.to_string(),
            bound_app_num: record.bound_app_num,
        }
    }
}

/// `{"total", "size", "quotas"}`.
#[derive(Serialize)]
struct QuotaList<'a> {
    total: u64,
    size: usize,
    quotas: Vec<QuotaView<'a>>,
}

/// `POST .../app-quotas` → `201` quota.
pub(crate) async fn create(call: Call) -> Result<Response, AdminError> {
    let record = QuotaFields::parse(&call)?.into_record(random_id()?);
    let record = call
        .stored(call.store().create_app_quota(&call.scope, record))
        .await?;
    audit!(call, app_quota_id = %record.id, "app quota created");
    json(StatusCode::CREATED, &QuotaView::new(&record))
}

/// `GET .../app-quotas` (`offset`, `limit`, `name`: a part of the name) → `200`.
pub(crate) async fn list(call: Call) -> Result<Response, AdminError> {
    let query = Query::parse(call.query.as_deref())?;
    let (offset, limit) = query.paging()?;
    let name = query.get("name").filter(|n| !n.is_empty());
    let page = call
        .stored(
            call.store()
                .list_app_quotas(&call.scope, name, offset, limit),
        )
        .await?;
    json(
        StatusCode::OK,
        &QuotaList {
            total: page.total,
            size: page.items.len(),
            quotas: page.items.iter().map(QuotaView::new).collect(),
        },
    )
}

/// `GET .../app-quotas/{app_quota_id}` → `200`.
pub(crate) async fn show(call: Call) -> Result<Response, AdminError> {
    let record = call
        .stored(call.store().get_app_quota(&call.scope, &call.app_quota_id))
        .await?;
    json(StatusCode::OK, &QuotaView::new(&record))
}

/// `PUT .../app-quotas/{app_quota_id}` with the whole quota → `200`; every bound app counts
/// under the new limit from the next call, its calls in the current window kept.
pub(crate) async fn update(call: Call) -> Result<Response, AdminError> {
    let fields = QuotaFields::parse(&call)?;
    let record = {
        let _writes = call.instance.writes.lock().await;
        let store = call.store();
        let changed = fields.into_record(call.app_quota_id.clone());
        let record = call
            .stored(store.update_app_quota(&call.scope, &call.app_quota_id, changed))
            .await?;
        for (app, bound_time) in bound_apps(&call).await? {
            let quota = anchored_at_binding(&record.quota, bound_time);
            call.instance.cache.set_app_quota(&app, Arc::new(quota));
        }
        record
    };
    audit!(call, app_quota_id = %record.id, bound_apps = record.bound_app_num, "app quota updated");
    json(StatusCode::OK, &QuotaView::new(&record))
}

/// `DELETE .../app-quotas/{app_quota_id}` → `204`; its apps are unbound.
pub(crate) async fn delete(call: Call) -> Result<Response, AdminError> {
    let unbound = {
        let _writes = call.instance.writes.lock().await;
        let bound = bound_apps(&call).await?;
        call.stored(
            call.store()
                .delete_app_quota(&call.scope, &call.app_quota_id),
        )
        .await?;
        for (app, _) in &bound {
            call.instance.cache.remove_app_quota(app);
        }
        bound.len()
    };
    audit!(call, app_quota_id = %call.app_quota_id, unbound, "app quota deleted");
    Ok(no_content())
}

/// `GET .../apps/{app_id}/bound-quota` → `200` the app's quota; `404 APIG.3093` when the app
/// has none.
pub(crate) async fn of_app(call: Call) -> Result<Response, AdminError> {
    let record = call
        .stored(call.store().app_bound_quota(&call.scope, &call.app_id))
        .await?
        .ok_or_else(|| AdminError::QuotaNotFound(format!("of app {}", call.app_id)))?;
    json(StatusCode::OK, &QuotaView::new(&record))
}

/// Every app bound to the call's quota, with the time it was bound, read a page at a time.
/// Called under the instance's write lock, so the list is the one the write changes.
async fn bound_apps(call: &Call) -> Result<Vec<(String, Timestamp)>, AdminError> {
    let store = call.store();
    let mut apps = Vec::new();
    loop {
        let page = call
            .stored(store.quota_apps(
                &call.scope,
                &call.app_quota_id,
                true,
                None,
                apps.len() as u64,
                MAX_LIMIT,
            ))
            .await?;
        let done = page.items.is_empty() || apps.len() + page.items.len() >= page.total as usize;
        apps.extend(
            page.items
                .into_iter()
                .filter_map(|a| Some((a.app.id, a.bound_time?))),
        );
        if done {
            return Ok(apps);
        }
    }
}

/// A quota's fields as a create or update body gives them.
struct QuotaFields {
    name: String,
    quota: AppQuota,
    remark: String,
}

impl QuotaFields {
    /// The record of quota `id` with these fields, made now and bound to no app.
    fn into_record(self, id: String) -> AppQuotaRecord {
        AppQuotaRecord {
            id,
            name: self.name,
            quota: self.quota,
            remark: self.remark,
            create_time: Timestamp::now(),
            bound_app_num: 0,
        }
    }

    fn parse(call: &Call) -> Result<Self, AdminError> {
        let body = call.json_object()?;
        let name = string_field(&body, "name")?.ok_or(AdminError::InvalidParameter("name"))?;
        if !NAME_LEN.contains(&name.chars().count()) || name.chars().any(char::is_control) {
            return Err(AdminError::InvalidParameter("name"));
        }
        let call_limits = integer(&body, "call_limits")?
            .filter(|n| (1..=MAX_CALL_LIMITS).contains(n))
            .ok_or(AdminError::InvalidParameter("call_limits"))?;
        let time_unit: TimeUnit = string_field(&body, "time_unit")?
            .ok_or(AdminError::InvalidParameter("time_unit"))?
            .parse()
            .map_err(|_| AdminError::InvalidParameter("time_unit"))?;
        let time_interval = integer(&body, "time_interval")?
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(AdminError::InvalidParameter("time_interval"))?;
        let mut quota = AppQuota::new(call_limits, time_unit, time_interval).map_err(|e| {
            AdminError::InvalidParameter(match e {
                QuotaError::CallLimits => "call_limits",
                QuotaError::TimeUnit => "time_unit",
                _ => "time_interval",
            })
        })?;
        if let Some(text) = string_field(&body, "reset_time")?.filter(|t| !t.is_empty()) {
            let secs = parse_date_time(text).ok_or(AdminError::InvalidParameter("reset_time"))?;
            let at = if secs >= 0 {
                std::time::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
            } else {
                return Err(AdminError::InvalidParameter("reset_time"));
            };
            quota = quota.reset_time(at);
        }
        let remark = string_field(&body, "remark")?.unwrap_or_default();
        if remark.chars().count() > MAX_REMARK_LEN {
            return Err(AdminError::InvalidParameter("remark"));
        }
        Ok(Self {
            name: name.to_owned(),
            quota,
            remark: remark.to_owned(),
        })
    }
}

/// A non-negative integer field: absent or `null` is `None`; a negative number, a fraction or
/// another type is an invalid parameter.
fn integer(body: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AdminError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or(AdminError::InvalidParameter(name)),
        Some(_) => Err(AdminError::InvalidParameter(name)),
    }
}
