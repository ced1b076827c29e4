//! Which app may call which route: the authorization hook.

use http::Request;

use crate::identity::AppIdentity;

/// Decides whether a verified app may call this route (APIG binds apps to APIs). A refusal is
/// answered `403 APIG.0304`.
///
/// Implemented for closures `Fn(&AppIdentity, &Request<B>) -> bool`:
///
/// ```
/// use apig_appcode::{AppCodeAuthLayer, AppCodeCache, AppIdentity};
/// use http::Request;
///
/// let layer = AppCodeAuthLayer::new(AppCodeCache::new())
///     .authorize(|id: &AppIdentity, req: &Request<String>| {
///         !req.uri().path().starts_with("/admin") || id.attribute("role") == Some("admin")
///     });
/// ```
pub trait AuthorizeApp<B> {
    /// `true` to let the request through.
    fn authorize(&self, identity: &AppIdentity, request: &Request<B>) -> bool;
}

impl<B, F> AuthorizeApp<B> for F
where
    F: Fn(&AppIdentity, &Request<B>) -> bool,
{
    fn authorize(&self, identity: &AppIdentity, request: &Request<B>) -> bool {
        self(identity, request)
    }
}

/// Lets every verified app call every route (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl<B> AuthorizeApp<B> for AllowAll {
    fn authorize(&self, _: &AppIdentity, _: &Request<B>) -> bool {
        true
    }
}
