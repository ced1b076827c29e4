//! The AppCode authentication middleware: [`AppCodeAuthLayer`], [`AppCodeAuth`] and
//! [`ResponseFuture`].
//!
//! For each request the service:
//!
//! 1. refuses plain HTTP with `400 APIG.0607` if [`HttpsPolicy::required`] is set;
//! 2. refuses everything with `503 APIG.0202` until the cache has been loaded once, and after
//!    the last good snapshot grew older than the maximum staleness (unless told to serve stale);
//! 3. with signatures accepted ([`AppAuth`]) and a request signed rather than carrying an
//!    AppCode, checks the signature with the app's key and secret (the body's hash comes from
//!    the [`SignedBodyLayer`] outside) and goes on at step 6; a refusal is `401 APIG.0303` with
//!    a short reason (*Authorization missing or malformed*, *signature algorithm not
//!    supported*, *X-Sdk-Date missing or expired*, *signature invalid*);
//! 4. reads `X-Apig-AppCode`: missing or empty is `401 APIG.0303` (*missing*); repeated,
//!    malformed (length, characters) or unknown is `401 APIG.0303` (*invalid*) — all decided
//!    before the provider is touched, and without saying which part was wrong;
//! 5. looks the code's keyed digest up in the [`AppCodeCache`](crate::AppCodeCache) and
//!    confirms it in constant time; on a miss, asks the provider if it supports point lookups;
//! 6. checks the app's ACL and quota, and asks the [`AuthorizeApp`] hook whether this app may
//!    call this route (`403 APIG.0304`);
//! 7. removes the AppCode header (configurable) or the signature's (`Authorization`,
//!    `X-Sdk-*`), replaces any client-sent identity headers with the verified ones (if
//!    configured), puts the [`AppIdentity`](crate::AppIdentity) in the
//!    request extensions and calls the inner service.
//!
//! # Example
//!
//! ```
//! use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
//! use apig_appcode::provider::StaticProvider;
//! use axum::{routing::get, Extension, Router};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let provider = StaticProvider::builder()
//!     .app_code("app-1", "code-1", AppCode::generate())
//!     .build();
//! let app: Router = Router::new()
//!     .route("/", get(|Extension(id): Extension<AppIdentity>| async move {
//!         format!("hello, {}", id.app_id())
//!     }))
//!     .layer(AppCodeAuthLayer::builder().provider(provider).build());
//! # }
//! ```

mod authorize;
mod future;
mod headers;
mod held_bodies;
mod https;
#[allow(clippy::module_inception)]
mod layer;
mod rejection;
mod service;
mod shared;
mod signed;
mod signed_body;
#[cfg(test)]
mod signed_tests;
#[cfg(test)]
mod tests;
mod verdict;

pub use authorize::{AllowAll, AuthorizeApp};
pub use future::ResponseFuture;
pub(crate) use headers::{debug_mode, with_debug_header};
pub use headers::{
    IdentityHeaders, X_APIG_APPCODE, X_APIG_MODE, X_APIG_QUOTA_APP, X_APIG_RATELIMIT_APP,
};
pub use held_bodies::DEFAULT_MAX_HELD_BODIES;
pub use https::HttpsPolicy;
pub use layer::{AppCodeAuthLayer, AppCodeAuthLayerBuilder, DEFAULT_MAX_LOOKUPS};
pub use rejection::{ApigJson, GrpcStatus, RejectResponse, Rejection};
pub use service::AppCodeAuth;
pub use signed::{AppAuth, AppAuthError, BodySha256};
pub use signed_body::{
    ResponseFuture as SignedBodyFuture, SignedBody, SignedBodyLayer, SIGNED_BODY_LIMIT,
};

pub use crate::network::{ConnectionInfo, IpNetwork, IpNetworkError};
pub use crate::rejection_kind::RejectionKind;
