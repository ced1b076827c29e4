//! [`AppCodeAuth`]: the middleware service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower_service::Service;

use super::authorize::{AllowAll, AuthorizeApp};
use super::future::ResponseFuture;
use super::rejection::{ApigJson, RejectResponse};
use super::shared::Shared;
use super::signed::{self, Verdict};
use super::verdict::{reject, reject_until, BUSY_RETRY};
use crate::cache::{Answer, Asking};
use crate::identity::AppIdentity;
use crate::rejection_kind::RejectionKind;

/// Verifies the `X-Apig-AppCode` of each request before passing it to the inner service.
///
/// Built by [`AppCodeAuthLayer`](super::AppCodeAuthLayer); see the [module docs](crate::layer) for what it checks.
pub struct AppCodeAuth<S, R = ApigJson, A = AllowAll> {
    inner: S,
    shared: Arc<Shared>,
    reject: R,
    authorize: A,
}

impl<S: Clone, R: Clone, A: Clone> Clone for AppCodeAuth<S, R, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            reject: self.reject.clone(),
            authorize: self.authorize.clone(),
        }
    }
}

impl<S: fmt::Debug, R, A> fmt::Debug for AppCodeAuth<S, R, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCodeAuth")
            .field("inner", &self.inner)
            .field("header", &self.shared.header)
            .finish_non_exhaustive()
    }
}

impl<S, R, A> AppCodeAuth<S, R, A> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared>, reject: R, authorize: A) -> Self {
        Self {
            inner,
            shared,
            reject,
            authorize,
        }
    }

    inner_service_accessors!();
}

impl<S, R, A, ReqBody, ResBody> Service<Request<ReqBody>> for AppCodeAuth<S, R, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: RejectResponse<ResBody> + Clone,
    A: AuthorizeApp<ReqBody> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        if !shared.https.admits(&req) {
            return self.rejected(RejectionKind::HttpsRequired, &req);
        }
        if !shared.codes.cache().status().admits() {
            return self.rejected(RejectionKind::Unavailable, &req);
        }
        if signed::by_signature(&req, &shared.signatures, &shared.header) {
            let (req, verdict) = signed::check(req, &shared.codes, &shared.signatures);
            return match verdict {
                Verdict::Admit(identity) => self.admitted(req, identity),
                Verdict::Refuse(kind) => self.rejected(kind, &req),
                Verdict::Ask(asking) => self.asking(asking, req).for_signature(),
                Verdict::Busy => self.busy(&req),
            };
        }
        let value = match take_code(&mut req, shared) {
            Ok(value) => value,
            Err(kind) => return self.rejected(kind, &req),
        };
        match shared.codes.answer(value.as_bytes()) {
            Answer::Known(identity) => self.admitted(req, identity),
            Answer::Unknown => self.rejected(RejectionKind::Invalid, &req),
            Answer::Busy => self.busy(&req),
            Answer::Asking(asking) => self.asking(asking, req),
        }
    }
}

impl<S: Clone, R: Clone, A: Clone> AppCodeAuth<S, R, A> {
    /// The request of a verified app, on its way through the app's policies to `inner`.
    fn admitted<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
        identity: AppIdentity,
    ) -> ResponseFuture<S, ReqBody, R, A>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        R: RejectResponse<ResBody>,
        A: AuthorizeApp<ReqBody>,
    {
        ResponseFuture::verified(
            &mut self.inner,
            take_ready,
            &self.shared,
            &self.reject,
            &self.authorize,
            req,
            identity,
        )
    }

    /// The request, waiting for the provider's answer to `asking`.
    fn asking<ReqBody>(
        &mut self,
        asking: Asking,
        req: Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody, R, A>
    where
        S: Service<Request<ReqBody>>,
    {
        ResponseFuture::lookup(
            asking,
            self.take_ready_inner(),
            req,
            Arc::clone(&self.shared),
            self.reject.clone(),
            self.authorize.clone(),
        )
    }
}

impl<S: Clone, R, A> AppCodeAuth<S, R, A> {
    /// The service that was polled ready, leaving a fresh clone in its place.
    fn take_ready_inner(&mut self) -> S {
        take_ready(&mut self.inner)
    }
}

/// `inner`, polled ready, leaving a fresh clone in its place.
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

impl<S, R, A> AppCodeAuth<S, R, A> {
    fn rejected<ReqBody, ResBody>(
        &self,
        kind: RejectionKind,
        req: &Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody, R, A>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        R: RejectResponse<ResBody>,
    {
        ResponseFuture::rejected(reject(&self.shared, &self.reject, kind, req, None))
    }

    /// `503` with `Retry-After`: the credential needs a lookup and as many as allowed are
    /// running.
    fn busy<ReqBody, ResBody>(&self, req: &Request<ReqBody>) -> ResponseFuture<S, ReqBody, R, A>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        R: RejectResponse<ResBody>,
    {
        ResponseFuture::rejected(reject_until(
            &self.shared,
            &self.reject,
            RejectionKind::Unavailable,
            req,
            None,
            Some(BUSY_RETRY),
        ))
    }
}

/// The AppCode header's one value, removed from the request unless configured to stay.
///
/// Removal is also the lookup: one hash of the header name, with a repeated header told apart by
/// how many values went.
fn take_code<B>(req: &mut Request<B>, shared: &Shared) -> Result<HeaderValue, RejectionKind> {
    let headers = req.headers_mut();
    let (value, count) = if shared.strip_header {
        let before = headers.len();
        let value = headers.remove(&shared.header);
        (value, before - headers.len())
    } else {
        // The header stays for the inner service: mark it sensitive so that `Debug` of the
        // request hides it there.
        if let Some(v) = headers.get_mut(&shared.header) {
            v.set_sensitive(true);
        }
        let mut all = headers.get_all(&shared.header).iter();
        let value = all.next().cloned();
        let count = usize::from(value.is_some()) + all.count();
        (value, count)
    };
    match value {
        None => Err(RejectionKind::Missing),
        Some(_) if count > 1 => Err(RejectionKind::Invalid),
        Some(v) if v.is_empty() => Err(RejectionKind::Missing),
        Some(v) => Ok(v),
    }
}
