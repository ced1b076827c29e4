//! Per-app request rate limits: [`ThrottleLayer`], [`Throttle`] and [`ResponseFuture`].
//!
//! Placed *after* (inside) [`AppCodeAuthLayer`](crate::AppCodeAuthLayer), the service reads the
//! verified [`AppIdentity`](crate::AppIdentity) from the request's extensions and charges the
//! request to that app's [`Quota`]: the app's own if one was set with
//! [`app_limit`](ThrottleLayerBuilder::app_limit), else the
//! [`default_limit`](ThrottleLayerBuilder::default_limit). Over the limit it answers
//! `429 APIG.0308` with APIG's JSON body and `Retry-After` (whole seconds, rounded up), without
//! calling the inner service.
//!
//! - A request without an identity (the layer placed where nothing authenticated it) passes
//!   untouched: the throttle limits apps, not anonymous traffic, and refusing would turn a
//!   wiring mistake into an outage. Put it inside the AppCode layer.
//! - An app with no quota of its own and no default passes untouched.
//! - By default the state is local to the process: N gateway nodes behind a balancer allow an
//!   app up to N times its limit in total. With a [`RateStore`]
//!   ([`ThrottleLayerBuilder::store`]), such as `RedisRateStore` (feature `redis`), every
//!   node charges the same state, one store call per limited request, bounded by a deadline;
//!   while the store fails or is late, each node falls back to its local state.
//! - Memory: one 8-byte arrival time per app that sent a request within its last burst window;
//!   expired entries (an app idle, or deleted from the store) are swept when the map doubles.
//!
//! # Example
//!
//! ```
//! use apig_appcode::throttle::{Quota, ThrottleLayer};
//! use apig_appcode::{AppCode, AppCodeAuthLayer};
//! use apig_appcode::provider::StaticProvider;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let code = AppCode::generate();
//! let auth = AppCodeAuthLayer::builder()
//!     .provider(StaticProvider::builder().app_code("app-1", "code-1", code.clone()).build())
//!     .build();
//! auth.cache().loaded().await;
//! let throttle = ThrottleLayer::builder()
//!     .default_limit(Quota::per_second(2).unwrap())
//!     .app_limit("app-vip", "1000/s".parse().unwrap())
//!     .build();
//!
//! let svc = ServiceBuilder::new()
//!     .layer(auth)
//!     .layer(throttle.clone())
//!     .service(service_fn(|_: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
//!     }));
//! let call = || svc.clone().oneshot(Request::builder()
//!     .header("x-apig-appcode", code.to_header_value())
//!     .body(()).unwrap());
//!
//! assert_eq!(call().await.unwrap().status(), StatusCode::OK);
//! assert_eq!(call().await.unwrap().status(), StatusCode::OK);
//! let over = call().await.unwrap();
//! assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(over.headers()["retry-after"], "1");
//! assert_eq!(throttle.throttled(), 1);
//! # }
//! ```

mod layer;
mod limiter;
mod quota;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_url;
mod service;
mod shared;
mod store;
#[cfg(test)]
mod tests;

pub use crate::remote::STORE_RETRY;
pub use layer::{ThrottleLayer, ThrottleLayerBuilder};
pub use quota::{Quota, QuotaError};
#[cfg(feature = "redis")]
pub use redis::{RedisQuotaCounts, RedisRateStore, RedisStoreError};
#[cfg(feature = "redis")]
pub use redis_url::{RedisUrl, RedisUrlError};
pub use service::{ResponseFuture, Throttle};
pub use store::{RateCheck, RateStore, RateStoreError, DEFAULT_STORE_TIMEOUT};
