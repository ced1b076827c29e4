//! AppCode handlers (reference section 2): create with a value, auto-generate, show, list,
//! delete. Every change reaches the instance's [`AppCodeCache`](crate::AppCodeCache) before the
//! response is sent.

use axum::response::Response;
use http::StatusCode;

use super::audit::audit;
use super::call::{string_field, Call};
use super::error::AdminError;
use super::ids::{random_app_code, random_id};
use super::paging::Query;
use super::views::{json, no_content, AppCodeList, AppCodeView};
use crate::code::AppCode;
use crate::store::{AppCodeRecord, Timestamp};

/// How often auto-generation draws a new value when the last one already exists (with 256
/// random bits, once is enough in practice).
const GENERATE_ATTEMPTS: usize = 3;

/// `POST .../apps/{app_id}/app-codes` with `{"app_code": "..."}` (also the v1 path) → `201`.
pub(crate) async fn create(call: Call) -> Result<Response, AdminError> {
    let body = call.json_object()?;
    let value = string_field(&body, "app_code")?
        .and_then(|v| AppCode::parse(v).ok())
        .ok_or(AdminError::InvalidParameter("app_code"))?;
    let record = insert(&call, value).await?;
    json(StatusCode::CREATED, &AppCodeView::new(&record))
}

/// `PUT .../apps/{app_id}/app-codes` (no body) → `201` with a generated value of 64
/// lowercase hex characters.
pub(crate) async fn generate(call: Call) -> Result<Response, AdminError> {
    let mut attempts = 0;
    let record = loop {
        attempts += 1;
        match insert(&call, random_app_code()?).await {
            Err(AdminError::AppCodeExists) if attempts < GENERATE_ATTEMPTS => continue,
            other => break other?,
        }
    };
    json(StatusCode::CREATED, &AppCodeView::new(&record))
}

/// Stores a new code, then upserts it into the cache, under the instance's write lock.
async fn insert(call: &Call, value: AppCode) -> Result<AppCodeRecord, AdminError> {
    let record = AppCodeRecord {
        id: random_id()?,
        app_id: call.app_id.clone(),
        value,
        create_time: Timestamp::now(),
    };
    let record = call
        .write(
            |store| store.create_app_code(&call.scope, record),
            |cache, record| cache.upsert(&record.value, record.identity()),
        )
        .await?;
    audit!(call, app_id = %record.app_id, app_code_id = %record.id, "AppCode created");
    Ok(record)
}

/// `GET .../app-codes/{app_code_id}` → the documented `201`.
pub(crate) async fn show(call: Call) -> Result<Response, AdminError> {
    let record = call
        .stored(
            call.store()
                .get_app_code(&call.scope, &call.app_id, &call.app_code_id),
        )
        .await?;
    json(StatusCode::CREATED, &AppCodeView::new(&record))
}

/// `GET .../app-codes` → `200 {"total","size","app_codes"}`.
pub(crate) async fn list(call: Call) -> Result<Response, AdminError> {
    let (offset, limit) = Query::parse(call.query.as_deref())?.paging()?;
    let page = call
        .stored(
            call.store()
                .list_app_codes(&call.scope, &call.app_id, offset, limit),
        )
        .await?;
    json(
        StatusCode::OK,
        &AppCodeList {
            total: page.total,
            size: page.items.len(),
            app_codes: page.items.iter().map(AppCodeView::new).collect(),
        },
    )
}

/// `DELETE .../app-codes/{app_code_id}` → `204`, after the code left the store and the cache.
pub(crate) async fn delete(call: Call) -> Result<Response, AdminError> {
    call.write(
        |store| store.delete_app_code(&call.scope, &call.app_id, &call.app_code_id),
        |cache, record| {
            cache.remove(&record.value);
        },
    )
    .await?;
    audit!(call, app_id = %call.app_id, app_code_id = %call.app_code_id, "AppCode deleted");
    Ok(no_content())
}
