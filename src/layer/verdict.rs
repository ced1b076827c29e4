//! What becomes of a checked request: let through to the inner service with its verified
//! identity, or refused, counted and logged. Shared by the service (a cached code) and its
//! future (a code the provider was asked about).

use std::time::Duration;

use http::{HeaderValue, Request, Response};
use tower_service::Service;

use super::authorize::AuthorizeApp;
use super::headers::{self, debug_mode, X_APIG_QUOTA_APP};
use super::rejection::{RejectResponse, Rejection};
use super::shared::Shared;
use super::signed::{self, Verdict};
use crate::acl::client_ip;
use crate::cache::{Charge, QuotaAsking, QuotaCharge};
use crate::identity::AppIdentity;
use crate::rejection_kind::RejectionKind;
use crate::request_id::{RequestId, X_REQUEST_ID};

/// When a miss that found no place for a lookup may come back: lookups end within their
/// timeout, most far sooner.
pub(super) const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Counts, logs and answers a rejection.
pub(crate) fn reject<ReqBody, ResBody, R: RejectResponse<ResBody>>(
    shared: &Shared,
    reject: &R,
    kind: RejectionKind,
    req: &Request<ReqBody>,
    app_id: Option<&str>,
) -> Response<ResBody> {
    reject_until(shared, reject, kind, req, app_id, None)
}

/// [`reject`], telling the caller to wait `retry_after` (as `Retry-After`) when given.
pub(crate) fn reject_until<ReqBody, ResBody, R: RejectResponse<ResBody>>(
    shared: &Shared,
    reject: &R,
    kind: RejectionKind,
    req: &Request<ReqBody>,
    app_id: Option<&str>,
    retry_after: Option<Duration>,
) -> Response<ResBody> {
    shared.codes.cache().counters().rejected(kind);
    let id = RequestId::from_header(req.headers().get(X_REQUEST_ID));
    tracing::debug!(
        outcome = "rejected",
        reason = kind.as_str(),
        app_id,
        request_id = id.as_str(),
        "AppCode check"
    );
    let rejection = Rejection::new(kind, id);
    let rejection = match retry_after {
        Some(wait) => rejection.retry_after(wait),
        None => rejection,
    };
    reject.reject(&rejection)
}

/// Why the app's ACL refuses the client of `req`, if it has an ACL and does.
fn acl_refusal<B>(
    shared: &Shared,
    identity: &AppIdentity,
    req: &Request<B>,
) -> Option<RejectionKind> {
    let acl = shared.codes.cache().app_acl(identity.app_id())?;
    match client_ip(req, shared.https.trusted()) {
        None => Some(RejectionKind::UnknownClientIp),
        Some(ip) if !acl.admits(ip) => Some(RejectionKind::IpDenied),
        Some(_) => None,
    }
}

/// What [`check`] made of a verified request that may go on.
pub(crate) enum Checked {
    /// Counted against its app's quota (or it has none): with the quota's debug header for
    /// its response when the request asked for it.
    Charged(Option<Box<HeaderValue>>),
    /// Its call is being counted in the shared quota counts.
    Asking(QuotaAsking),
}

/// Checks a verified request against its app's ACL, authorizes it and counts it against its
/// app's quota: what it takes to go on, or the refusal.
// Inlined so that the request is not copied once more on its way to `inner`.
#[inline]
pub(crate) fn check<ReqBody, ResBody, R, A>(
    shared: &Shared,
    rejecter: &R,
    authorize: &A,
    req: &Request<ReqBody>,
    identity: &AppIdentity,
) -> Result<Checked, Response<ResBody>>
where
    R: RejectResponse<ResBody>,
    A: AuthorizeApp<ReqBody>,
{
    if let Some(refused) = acl_refusal(shared, identity, req) {
        return Err(reject(
            shared,
            rejecter,
            refused,
            req,
            Some(identity.app_id()),
        ));
    }
    if !authorize.authorize(identity, req) {
        return Err(reject(
            shared,
            rejecter,
            RejectionKind::Forbidden,
            req,
            Some(identity.app_id()),
        ));
    }
    // Counted after this layer's other checks: a call they refuse does not use the quota.
    match shared.codes.charge_quota(identity.app_id()) {
        QuotaCharge::Now(charge) => {
            charged(shared, rejecter, req, identity, charge).map(Checked::Charged)
        }
        QuotaCharge::Asking(asking) => Ok(Checked::Asking(asking)),
    }
}

/// What `charge` of a request's quota means for it: the quota's debug header for its
/// response, if any, or the refusal.
pub(crate) fn charged<ReqBody, ResBody, R: RejectResponse<ResBody>>(
    shared: &Shared,
    rejecter: &R,
    req: &Request<ReqBody>,
    identity: &AppIdentity,
    charge: Charge,
) -> Result<Option<Box<HeaderValue>>, Response<ResBody>> {
    // Debug headers are looked for only when the app has a quota: the others pay nothing.
    match charge {
        Charge::NoQuota => Ok(None),
        Charge::Counted { quota, left } => {
            Ok(debug_mode(req).then(|| Box::new(headers::quota_header(&quota, left))))
        }
        Charge::UsedUp { quota, wait } => {
            let mut refused = reject_until(
                shared,
                rejecter,
                RejectionKind::QuotaExhausted,
                req,
                Some(identity.app_id()),
                Some(wait),
            );
            if debug_mode(req) {
                refused
                    .headers_mut()
                    .insert(X_APIG_QUOTA_APP, headers::quota_header(&quota, 0));
            }
            Err(refused)
        }
    }
}

/// Rewrites the headers of a request [`check`] let through, attaches its identity and calls
/// `inner`.
#[inline]
pub(crate) fn forward<S, ReqBody, ResBody>(
    inner: &mut S,
    shared: &Shared,
    mut req: Request<ReqBody>,
    identity: AppIdentity,
    quota_header: Option<Box<HeaderValue>>,
) -> Admitted<S::Future>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    if let Some(names) = &shared.identity_headers {
        let headers = req.headers_mut();
        // `insert` drops every client-sent value of the name. An ID that is not a valid header
        // value is left out rather than mangled, but the client's value still goes.
        for (name, id) in [
            (&names.app_id, identity.app_id()),
            (&names.app_code_id, identity.app_code_id()),
        ] {
            // A signed request's identity has no AppCode ID: no header for it.
            match HeaderValue::from_str(id) {
                Ok(v) if !id.is_empty() => headers.insert(name.clone(), v),
                _ => headers.remove(name),
            };
        }
    }
    tracing::debug!(
        outcome = "accepted",
        app_id = identity.app_id(),
        "AppCode check"
    );
    req.extensions_mut().insert(identity);
    Admitted {
        future: inner.call(req),
        quota_header,
    }
}

/// A request [`forward`] let through: the inner service's future, and the quota's debug
/// header for its response when the request asked for it.
pub(crate) struct Admitted<F> {
    pub(crate) future: F,
    pub(crate) quota_header: Option<Box<HeaderValue>>,
}

/// A signed request whose app key the provider just found, checked again now that the cache
/// holds the key: its request and identity, or its refusal.
pub(crate) fn recheck<ReqBody, ResBody, R: RejectResponse<ResBody>>(
    shared: &Shared,
    rejecter: &R,
    req: Request<ReqBody>,
) -> Result<(Request<ReqBody>, AppIdentity), Response<ResBody>> {
    let (req, verdict) = signed::check(req, &shared.codes, &shared.signatures);
    match verdict {
        Verdict::Admit(identity) => Ok((req, identity)),
        Verdict::Refuse(kind) => Err(reject(shared, rejecter, kind, &req, None)),
        Verdict::Busy => Err(reject_until(
            shared,
            rejecter,
            RejectionKind::Unavailable,
            &req,
            None,
            Some(BUSY_RETRY),
        )),
        // Gone again while the lookup landed: as unknown.
        Verdict::Ask(_) => Err(reject(
            shared,
            rejecter,
            RejectionKind::SignatureInvalid,
            &req,
            None,
        )),
    }
}
