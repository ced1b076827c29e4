//! The management API (feature `admin`): APIG's app and AppCode endpoints over HTTP, as an axum
//! [`Router`](axum::Router), compatible with the official SDK.
//!
//! [`AdminApi`] keeps apps and AppCodes in a [`Store`](crate::store::Store) and applies every
//! change to the gateway's [`AppCodeCache`](crate::AppCodeCache) before it answers: the next
//! request carrying a new code is accepted, the next carrying a deleted one is rejected.
//! Callers authenticate with `X-Auth-Token` ([`TokenCredential`]) or an AK/SK
//! `SDK-HMAC-SHA256` signature ([`AccessKeyCredential`], see [`signature`](crate::signature)), each bound to
//! [`Permissions`]: a [`Role`] and a set of projects. `GET /openapi.json` documents the API.
//!
//! | Method, path under `/v2/{project_id}/apigw/instances/{instance_id}` | Success |
//! |---|---|
//! | `POST /apps` | 201 App |
//! | `GET /apps` (`offset`, `limit`, `id`, `name`, `status`, `app_key`, `creator`, `precise_search`) | 200 `{total,size,apps}` |
//! | `GET /apps/{app_id}` | 200 App |
//! | `DELETE /apps/{app_id}` | 204 |
//! | `POST /apps/{app_id}/app-codes` (also under `/v1/...`) | 201 AppCode |
//! | `PUT /apps/{app_id}/app-codes` (generate) | 201 AppCode |
//! | `GET /apps/{app_id}/app-codes` | 200 `{total,size,app_codes}` |
//! | `GET /apps/{app_id}/app-codes/{app_code_id}` | 201 AppCode (as documented) |
//! | `DELETE /apps/{app_id}/app-codes/{app_code_id}` | 204 |
//! | `PUT`, `GET`, `DELETE /apps/{app_id}/app-acl` | 201, 200, 204 |
//! | `POST /app-quotas`; `GET /app-quotas` (`offset`, `limit`, `name`) | 201, 200 `{total,size,quotas}` |
//! | `GET`, `PUT`, `DELETE /app-quotas/{app_quota_id}` | 200, 200, 204 |
//! | `POST /app-quotas/{app_quota_id}/binding-apps` | 201 `{applies}` |
//! | `GET /app-quotas/{app_quota_id}/bound-apps`, `.../bindable-apps` (`offset`, `limit`, `app_name`) | 200 `{total,size,apps}` |
//! | `DELETE /app-quotas/{app_quota_id}/bound-apps/{app_id}` | 204 |
//! | `GET /apps/{app_id}/bound-quota` | 200 quota |
//!
//! Errors are APIG's JSON (`error_code`, `error_msg`, `request_id`) with `X-Request-Id`. Where
//! APIG documents no code: a duplicate AppCode value is `400 APIG.3311`, an unknown route
//! `404 APIG.0101`, a wrong method `405 APIG.0101`, an app bound to another quota `400 APIG.3326`, a body over the limit `413 APIG.0201`, a
//! body not declared JSON `415 APIG.2012`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use apig_appcode::admin::{AccessKeyCredential, AdminApi, Permissions, TokenCredential};
//! use apig_appcode::store::MemoryStore;
//! use apig_appcode::AppCodeCache;
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let cache = AppCodeCache::new(); // the cache of the gateway's AppCodeAuthLayer
//! let admin = AdminApi::builder()
//!     .store(Arc::new(MemoryStore::new()))
//!     .instance("i1", cache.clone())
//!     .token(TokenCredential::new("admin-token-0123456789", Permissions::read_write()))
//!     .access_key(AccessKeyCredential::new("AK1", "SK1", Permissions::read_write()))
//!     .build()
//!     .unwrap()
//!     .router();
//!
//! let call = |method: &str, path: &str, body: &'static str| {
//!     Request::builder()
//!         .method(method)
//!         .uri(path)
//!         .header("x-auth-token", "admin-token-0123456789")
//!         .header("content-type", "application/json")
//!         .body(Body::from(body))
//!         .unwrap()
//! };
//! let res = admin.clone().oneshot(call("POST", "/v2/p1/apigw/instances/i1/apps", r#"{"name":"shop"}"#)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::CREATED);
//! let app: serde_json::Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
//!
//! let path = format!("/v2/p1/apigw/instances/i1/apps/{}/app-codes", app["id"].as_str().unwrap());
//! let res = admin.oneshot(call("PUT", &path, "")).await.unwrap();
//! assert_eq!(res.status(), StatusCode::CREATED);
//! let code: serde_json::Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
//! let code = apig_appcode::AppCode::parse(code["app_code"].as_str().unwrap()).unwrap();
//! assert_eq!(cache.verify(&code).unwrap().app_id(), app["id"].as_str().unwrap());
//! # }
//! ```

mod api;
mod app_acls;
mod app_codes;
mod app_quotas;
mod apps;
mod audit;
mod auth;
mod call;
mod error;
mod ids;
mod paging;
mod quota_bindings;
mod router;
mod state;
mod views;

pub use api::{AdminApi, AdminApiBuilder, BuildError, DEFAULT_BODY_LIMIT};
pub use auth::{AccessKeyCredential, Permissions, Role, TokenCredential, MIN_TOKEN_LEN};
