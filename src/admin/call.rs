//! [`Call`]: everything a handler needs, established in a fixed order before it runs: the body
//! read (bounded), the caller authenticated and authorized for the path's project and the
//! method, the path's IDs checked, the instance found.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use bytes::BytesMut;
use http::request::Parts;
use http::{header, HeaderName, Method};
use serde_json::{Map, Value};

use super::auth::{Caller, Role};
use super::error::AdminError;
use super::ids::is_plain_id;
use super::state::{Instance, Shared};
use crate::cache::AppCodeCache;
use crate::request_id::RequestId;
use crate::store::{Scope, Store, StoreError};

/// `X-Project-Id`, which the SDK sends (and signs) with every request.
const X_PROJECT_ID: HeaderName = HeaderName::from_static("x-project-id");

/// An authenticated, authorized call on a served instance.
pub(crate) struct Call {
    pub(crate) request_id: RequestId,
    pub(crate) scope: Scope,
    /// `{app_id}` of the path, if the route has one.
    pub(crate) app_id: String,
    /// `{app_code_id}` of the path, if the route has one.
    pub(crate) app_code_id: String,
    /// `{app_quota_id}` of the path, if the route has one.
    pub(crate) app_quota_id: String,
    pub(crate) query: Option<String>,
    pub(crate) caller: Caller,
    /// The instance of the path.
    pub(crate) instance: Arc<Instance>,
    shared: Arc<Shared>,
    content_type: Option<Vec<u8>>,
    body: Bytes,
}

impl Call {
    /// The instance's store.
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.shared.store
    }

    /// What the store answered, its error as the API tells it about this call's path IDs.
    pub(crate) async fn stored<T>(
        &self,
        answer: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, AdminError> {
        answer.await.map_err(|e| self.store_error(e))
    }

    /// Changes the store with `write`, then the instance's cache with `apply` (given what the
    /// store answered), holding the instance's writes: the cache sees the changes in the order
    /// the store made them.
    pub(crate) async fn write<'a, T, F>(
        &'a self,
        write: impl FnOnce(&'a dyn Store) -> F,
        apply: impl FnOnce(&AppCodeCache, &T),
    ) -> Result<T, AdminError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        let _writes = self.instance.writes.lock().await;
        let answer = self.stored(write(self.store())).await?;
        apply(&self.instance.cache, &answer);
        Ok(answer)
    }

    /// A store error as the API tells it about this call's path IDs (those the route does not
    /// have are empty).
    pub(crate) fn store_error(&self, e: StoreError) -> AdminError {
        AdminError::from_store(e, &self.app_id, &self.app_code_id, &self.app_quota_id)
    }

    /// The body as a JSON object: it must be present, declared `application/json` (parameters
    /// such as `charset` allowed) and an object.
    pub(crate) fn json_object(&self) -> Result<Map<String, Value>, AdminError> {
        if self.body.is_empty() {
            return Err(AdminError::InvalidParameter("body"));
        }
        let is_json = self.content_type.as_deref().is_some_and(|ct| {
            let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
            essence
                .trim_ascii()
                .eq_ignore_ascii_case(b"application/json")
        });
        if !is_json {
            return Err(AdminError::UnsupportedMediaType);
        }
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(AdminError::InvalidParameter("body")),
        }
    }

    /// The body as [`json_object`](Self::json_object), or `None` when the request has none: for
    /// a call whose body is optional (reset-secret).
    pub(crate) fn optional_json_object(&self) -> Result<Option<Map<String, Value>>, AdminError> {
        if self.body.is_empty() {
            return Ok(None);
        }
        self.json_object().map(Some)
    }
}

/// A string field of a JSON body: absent or `null` is `None`, another type is an invalid parameter.
pub(crate) fn string_field<'a>(
    body: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, AdminError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AdminError::InvalidParameter(name)),
    }
}

impl FromRequest<Arc<Shared>> for Call {
    type Rejection = AdminError;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, AdminError> {
        let (mut parts, body) = req.into_parts();
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .copied()
            .unwrap_or_else(RequestId::new);

        // The signature covers the body, so it is read (bounded) before anything else.
        let body = read_body(&parts, body, shared.body_limit).await?;

        let caller = shared.auth.authenticate(&parts, &body)?;
        // Only a parameter that does not decode to UTF-8 fails here.
        let params = RawPathParams::from_request_parts(&mut parts, shared)
            .await
            .map_err(|_| AdminError::InvalidParameter("path"))?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        };
        let project_id = param("project_id").unwrap_or_default();
        let needed = if matches!(parts.method, Method::GET | Method::HEAD) {
            Role::ReadOnly
        } else {
            Role::ReadWrite
        };
        if !caller.permissions.allows(&project_id, needed) {
            tracing::info!(
                request_id = %request_id,
                caller = %caller.name,
                "management call refused: no permission for this project or method"
            );
            return Err(AdminError::Forbidden(
                "the credential does not grant this method on this project",
            ));
        }
        if let Some(claimed) = parts.headers.get(&X_PROJECT_ID) {
            if claimed.as_bytes() != project_id.as_bytes() {
                return Err(AdminError::Forbidden(
                    "X-Project-Id does not match the project in the path",
                ));
            }
        }

        let instance_id = param("instance_id").unwrap_or_default();
        let app_id = param("app_id");
        let app_code_id = param("app_code_id");
        let app_quota_id = param("app_quota_id");
        for (name, value) in [
            ("project_id", Some(&project_id)),
            ("instance_id", Some(&instance_id)),
            ("app_id", app_id.as_ref()),
            ("app_code_id", app_code_id.as_ref()),
            ("app_quota_id", app_quota_id.as_ref()),
        ] {
            if value.is_some_and(|v| !is_plain_id(v)) {
                return Err(AdminError::InvalidParameter(name));
            }
        }
        let Some(instance) = shared.instances.get(&instance_id).map(Arc::clone) else {
            return Err(AdminError::InstanceNotFound(instance_id));
        };

        Ok(Self {
            request_id,
            scope: Scope::new(project_id, instance_id),
            app_id: app_id.unwrap_or_default(),
            app_code_id: app_code_id.unwrap_or_default(),
            app_quota_id: app_quota_id.unwrap_or_default(),
            query: parts.uri.query().map(str::to_owned),
            caller,
            instance,
            shared: Arc::clone(shared),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes().to_vec()),
            body,
        })
    }
}

/// Reads the whole body, refusing more than `limit` bytes: at once when `Content-Length` says
/// so, else as soon as the data read exceeds it.
async fn read_body(parts: &Parts, mut body: Body, limit: usize) -> Result<Bytes, AdminError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |n: u64| usize::try_from(n).map(|n| n > limit).unwrap_or(true);
    if declared.is_some_and(too_large) || too_large(body.size_hint().lower()) {
        return Err(AdminError::PayloadTooLarge(limit));
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| AdminError::BodyUnreadable)?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit - buf.len() {
                return Err(AdminError::PayloadTooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
