//! [`Throttle`] and its [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Timeout};
use tower_service::Service;

use super::quota::Quota;
use super::shared::Shared;
use super::store::{Asking, RateCheck, Route};
use crate::identity::AppIdentity;
use crate::layer::{
    debug_mode, with_debug_header, ApigJson, RejectResponse, Rejection, X_APIG_RATELIMIT_APP,
};
use crate::rejection_kind::RejectionKind;
use crate::request_id::{RequestId, X_REQUEST_ID};

/// Charges each request to its app's [`Quota`]; see the [module](super).
#[derive(Clone)]
pub struct Throttle<S, R = ApigJson> {
    inner: S,
    shared: Arc<Shared>,
    reject: R,
}

impl<S, R> fmt::Debug for Throttle<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("layer", &*self.shared)
            .finish_non_exhaustive()
    }
}

impl<S, R> Throttle<S, R> {
    /// `inner`, throttled under `shared`, answering with `reject`; see [`Throttle::new`] for the
    /// public way in.
    pub(crate) fn with_shared(inner: S, shared: Arc<Shared>, reject: R) -> Self {
        Self {
            inner,
            shared,
            reject,
        }
    }

    inner_service_accessors!();
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Throttle<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: RejectResponse<ResBody> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        // `Ok(Some(left))`: charged, and `left` more would pass at once.
        let verdict = match charged(shared, &req) {
            None => Ok(None),
            Some((app_id, quota)) => {
                let route = match &shared.remote {
                    Some(remote) => remote.begin(app_id, quota),
                    None => Route::Local,
                };
                match route {
                    Route::Admitted(held) => Ok(Some(held)),
                    Route::Ask(asking) => {
                        // The clone that was polled ready is the one called, once the store
                        // has answered.
                        let clone = self.inner.clone();
                        let inner = std::mem::replace(&mut self.inner, clone);
                        return ResponseFuture::asking(
                            asking,
                            Pending {
                                inner,
                                req,
                                reject: self.reject.clone(),
                                shared: Arc::clone(shared),
                            },
                        );
                    }
                    Route::Local => shared.limiter.check(app_id, quota).map(Some),
                }
            }
        };
        match verdict {
            Ok(left) => {
                let debug = left.and_then(|left| debug_header(shared, &req, left));
                ResponseFuture::call(self.inner.call(req), debug)
            }
            Err(wait) => ResponseFuture::rejected(throttled(shared, &self.reject, &req, wait)),
        }
    }
}

/// `X-Apig-RateLimit-app` for a request that asked for debug headers and was charged to a
/// limit, with `left` requests that would pass at once.
fn debug_header<B>(shared: &Shared, req: &Request<B>, left: u64) -> Option<Box<HeaderValue>> {
    if !debug_mode(req) {
        return None;
    }
    let (_, quota) = charged(shared, req)?;
    Some(Box::new(rate_header(quota, left)))
}

/// `remain:9,limit:10,time:1 second`: the form of APIG's `X-Apig-RateLimit-*` headers.
fn rate_header(quota: &Quota, left: u64) -> HeaderValue {
    let period = quota.period();
    let secs = period.as_secs();
    let time = match secs {
        _ if secs == 0 || period.subsec_nanos() != 0 => {
            format!("{} millisecond", period.as_millis())
        }
        s if s % 86_400 == 0 => format!("{} day", s / 86_400),
        s if s % 3_600 == 0 => format!("{} hour", s / 3_600),
        s if s % 60 == 0 => format!("{} minute", s / 60),
        s => format!("{s} second"),
    };
    let text = format!("remain:{left},limit:{},time:{time}", quota.requests());
    HeaderValue::from_str(&text).expect("digits, letters, commas, colons and spaces")
}

fn charged<'a, B>(shared: &'a Shared, req: &'a Request<B>) -> Option<(&'a str, &'a Quota)> {
    let app_id = req.extensions().get::<AppIdentity>()?.app_id();
    Some((app_id, shared.quota(app_id)?))
}

/// Counts, logs and answers a request over its app's limit.
fn throttled<B, ResBody, R: RejectResponse<ResBody>>(
    shared: &Shared,
    reject: &R,
    req: &Request<B>,
    wait: Duration,
) -> Response<ResBody> {
    shared.throttled.fetch_add(1, Ordering::Relaxed);
    let request_id = RequestId::from_header(req.headers().get(X_REQUEST_ID));
    let app_id = req.extensions().get::<AppIdentity>().map(|i| i.app_id());
    tracing::debug!(
        outcome = "rejected",
        reason = RejectionKind::Throttled.as_str(),
        app_id,
        request_id = request_id.as_str(),
        retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "rate limit"
    );
    let res =
        reject.reject(&Rejection::new(RejectionKind::Throttled, request_id).retry_after(wait));
    with_debug_header(res, X_APIG_RATELIMIT_APP, debug_header(shared, req, 0))
}

/// What calling the inner service takes once the store has answered.
struct Pending<S, ReqBody, R> {
    inner: S,
    req: Request<ReqBody>,
    reject: R,
    shared: Arc<Shared>,
}

pin_project! {
    /// The response future of [`Throttle`]: the inner service's, or a `429` ready at once, or
    /// (with a [`RateStore`](super::RateStore)) the store's answer and then one of those.
    pub struct ResponseFuture<S, ReqBody, R, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S::Future, ResBody>,
        pending: Option<Pending<S, ReqBody, R>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Asking { check: Pin<Box<Timeout<RateCheck>>>, started: Instant },
        Call { #[pin] future: F, debug: Option<Box<HeaderValue>> },
        Throttled { response: Option<Response<B>> },
    }
}

impl<S, ReqBody, R, ResBody> ResponseFuture<S, ReqBody, R, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn call(future: S::Future, debug: Option<Box<HeaderValue>>) -> Self {
        Self {
            state: State::Call { future, debug },
            pending: None,
        }
    }

    fn rejected(response: Response<ResBody>) -> Self {
        Self {
            state: State::Throttled {
                response: Some(response),
            },
            pending: None,
        }
    }

    fn asking(asking: Asking, pending: Pending<S, ReqBody, R>) -> Self {
        Self {
            state: State::Asking {
                check: asking.check,
                started: asking.started,
            },
            pending: Some(pending),
        }
    }
}

impl<S, ReqBody, R, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, R, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, R, ResBody> Future for ResponseFuture<S, ReqBody, R, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectResponse<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Asking { check, started } => {
                    let outcome = ready!(check.as_mut().poll(cx));
                    let took = started.elapsed();
                    let Pending {
                        mut inner,
                        req,
                        reject,
                        shared,
                    } = this.pending.take().expect("polled after completion");
                    let remote = shared.remote.as_ref().expect("asked a store");
                    let verdict = match remote.answered(outcome, took) {
                        Some(verdict) => verdict.map(Some),
                        None => match charged(&shared, &req) {
                            Some((app_id, quota)) => shared.limiter.check(app_id, quota).map(Some),
                            None => Ok(None),
                        },
                    };
                    match verdict {
                        Ok(left) => {
                            let debug = left.and_then(|left| debug_header(&shared, &req, left));
                            this.state.set(State::Call {
                                future: inner.call(req),
                                debug,
                            });
                        }
                        Err(wait) => {
                            return Poll::Ready(Ok(throttled(&shared, &reject, &req, wait)))
                        }
                    }
                }
                StateProj::Call { future, debug } => {
                    let res = ready!(future.poll(cx))?;
                    let res = with_debug_header(res, X_APIG_RATELIMIT_APP, debug.take());
                    return Poll::Ready(Ok(res));
                }
                StateProj::Throttled { response } => {
                    let res = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}
