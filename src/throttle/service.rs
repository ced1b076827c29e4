//! [`Throttle`] and its [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::shared::Shared;
use crate::identity::AppIdentity;
use crate::layer::{ApigJson, RejectResponse, Rejection};
use crate::rejection_kind::RejectionKind;
use crate::request_id::{RequestId, X_REQUEST_ID};

/// Charges each request to its app's [`Quota`](super::Quota); see the [module](super).
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

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Throttle<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectResponse<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let verdict = match req.extensions().get::<AppIdentity>() {
            Some(id) => match shared.quota(id.app_id()) {
                Some(quota) => shared.limiter.check(id.app_id(), quota),
                None => Ok(()),
            },
            None => Ok(()),
        };
        match verdict {
            Ok(()) => ResponseFuture::call(self.inner.call(req)),
            Err(wait) => {
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
                let rejection =
                    Rejection::new(RejectionKind::Throttled, request_id).retry_after(wait);
                ResponseFuture::rejected(self.reject.reject(&rejection))
            }
        }
    }
}

pin_project! {
    /// The response future of [`Throttle`]: the inner service's, or a `429` ready at once.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Call { #[pin] future: F },
        Throttled { response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn call(future: F) -> Self {
        Self {
            state: State::Call { future },
        }
    }

    fn rejected(response: Response<B>) -> Self {
        Self {
            state: State::Throttled {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Call { future } => future.poll(cx),
            StateProj::Throttled { response } => {
                let res = response.take().expect("polled after completion");
                Poll::Ready(Ok(res))
            }
        }
    }
}
