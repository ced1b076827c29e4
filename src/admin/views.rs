//! The JSON shapes of APIG's responses, and the one way handlers send them.

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use super::error::AdminError;
use crate::store::{App, AppCodeRecord};

/// `app_type` of every app created through this API.
pub(crate) const APP_TYPE: &str = "apig";

/// An app as APIG shows it; `bind_num` only in lists.
#[derive(Serialize)]
pub(crate) struct AppView<'a> {
    id: &'a str,
    name: &'a str,
    remark: &'a str,
    creator: &'a str,
    update_time: String,
    app_key: &'a str,
    app_secret: &'a str,
    register_time: String,
    status: i32,
    app_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bind_num: Option<u64>,
}

impl<'a> AppView<'a> {
    pub(crate) fn new(app: &'a App, bind_num: Option<u64>) -> Self {
        Self {
            id: &app.id,
            name: &app.name,
            remark: &app.remark,
            creator: &app.creator,
            update_time: app.update_time.to_string(),
            app_key: &app.app_key,
            app_secret: app.app_secret.expose(),
            register_time: app.register_time.to_string(),
            status: app.status,
            app_type: APP_TYPE,
            bind_num,
        }
    }
}

/// An AppCode as APIG shows it, value included: only its owner sees this.
#[derive(Serialize)]
pub(crate) struct AppCodeView<'a> {
    app_code: &'a str,
    id: &'a str,
    app_id: &'a str,
    create_time: String,
}

impl<'a> AppCodeView<'a> {
    pub(crate) fn new(record: &'a AppCodeRecord) -> Self {
        Self {
            app_code: record.value.expose(),
            id: &record.id,
            app_id: &record.app_id,
            create_time: record.create_time.to_string(),
        }
    }
}

/// `{"total", "size", "apps"}`.
#[derive(Serialize)]
pub(crate) struct AppList<'a> {
    pub(crate) total: u64,
    pub(crate) size: usize,
    pub(crate) apps: Vec<AppView<'a>>,
}

/// `{"total", "size", "app_codes"}`.
#[derive(Serialize)]
pub(crate) struct AppCodeList<'a> {
    pub(crate) total: u64,
    pub(crate) size: usize,
    pub(crate) app_codes: Vec<AppCodeView<'a>>,
}

/// A JSON response. The outer middleware adds `X-Request-Id`.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Result<Response, AdminError> {
    let body = serde_json::to_vec(value)
        .map_err(|e| AdminError::Internal(format!("response serialization failed: {e}")))?;
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// `204 No Content`.
pub(crate) fn no_content() -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}
