//! Huawei Cloud API Gateway *simple authentication* for tower, hyper and axum services.
//!
//! A caller sends its AppCode in the `X-Apig-AppCode` header; [`AppCodeAuthLayer`] verifies it in
//! constant time against a concurrent [`AppCodeCache`] fed by an
//! [`AppCodeProvider`](provider::AppCodeProvider), then either answers with APIG's error body
//! (`401 APIG.0303`, ...) or forwards the request with the caller's [`AppIdentity`] in its
//! extensions.
//!
//! # Example
//!
//! ```
//! use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
//! use apig_appcode::provider::StaticProvider;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let code = AppCode::generate();
//! let layer = AppCodeAuthLayer::builder()
//!     .provider(StaticProvider::builder().app_code("app-1", "code-1", code.clone()).build())
//!     .build();
//! layer.cache().loaded().await;
//!
//! let svc = ServiceBuilder::new().layer(layer).service(service_fn(|req: Request<()>| async move {
//!     let id = req.extensions().get::<AppIdentity>().unwrap();
//!     Ok::<_, std::convert::Infallible>(Response::new(Bytes::from(id.app_id().to_owned())))
//! }));
//!
//! let ok = svc.clone().oneshot(Request::builder()
//!     .header("x-apig-appcode", code.to_header_value())
//!     .body(()).unwrap()).await.unwrap();
//! assert_eq!(ok.into_body(), "app-1");
//!
//! let denied = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # Features
//!
//! - `file` (default): [`provider::FileProvider`], codes from a JSON, TOML or text file.
//! - `store`: the [`store::Store`] trait, [`store::MemoryStore`] and [`store::StoreProvider`].
//! - `sqlite`: [`store::SqliteStore`], the embedded default store.
//! - `postgres`: [`store::PostgresStore`], one database for many gateway nodes, changes pushed
//!   with `LISTEN`/`NOTIFY`.
//! - `admin`: the management API ([`admin`]).
//! - `gateway`: the `apig-appcode` binary's building blocks ([`gateway`]).
//!
//! Per-app rate limits ([`throttle`]) are part of the core: no feature needed.

// First: the macro it defines serves the middleware modules below.
#[macro_use]
mod inner_service;

pub mod acl;
#[cfg(feature = "admin")]
pub mod admin;
pub mod apig_error;
mod app_key;
mod boxed;
pub mod cache;
mod civil;
pub mod code;
// Entry points for the cargo-fuzz targets in fuzz/ (feature `fuzzing`), not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzz_api.rs"]
pub mod __fuzz;
#[cfg(feature = "gateway")]
pub mod gateway;
mod hex;
mod identity;
pub mod layer;
pub mod metrics;
mod network;
mod percent;
pub mod provider;
pub mod quota;
mod read_deadline;
mod rejection_kind;
mod remote;

/// The README's Rust blocks, compiled as doctests so its quickstart cannot rot.
#[cfg(all(doctest, feature = "file", feature = "admin"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub mod request_id;
mod secret;
pub mod signature;
#[cfg(feature = "store")]
pub mod store;
#[cfg(test)]
mod test_support;
pub mod throttle;

pub use app_key::AppKey;
pub use cache::{AppCodeCache, CacheStatus};
pub use code::{AppCode, AppCodeError};
pub use identity::AppIdentity;
pub use layer::{AppCodeAuth, AppCodeAuthLayer};
pub use metrics::Metrics;
