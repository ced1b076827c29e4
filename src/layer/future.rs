//! [`ResponseFuture`] of [`AppCodeAuth`](super::AppCodeAuth), and the provider lookup behind a
//! cache miss.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::authorize::AuthorizeApp;
use super::rejection::RejectResponse;
use super::shared::Shared;
use super::verdict::{admit, reject};
use crate::cache::{Digest, Outcome};
use crate::code::AppCode;
use crate::provider::{AppCodeProvider, BoxFuture};
use crate::rejection_kind::RejectionKind;

pin_project! {
    /// The response future of [`AppCodeAuth`](super::AppCodeAuth).
    ///
    /// A request whose code is cached goes straight to the inner service's future (no
    /// allocation); a refused one is answered at once; only a cache miss with a lookup-capable
    /// provider waits for the provider first.
    pub struct ResponseFuture<S, ReqBody, R, A>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, R, A>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, R, A>
    where
        S: Service<Request<ReqBody>>,
    {
        Call { #[pin] future: S::Future },
        Rejected { response: Option<S::Response> },
        Lookup { flight: ReadThrough, pending: Option<Pending<S, ReqBody, R, A>> },
    }
}

/// What a request waiting on a provider lookup needs to go on.
struct Pending<S, ReqBody, R, A> {
    inner: S,
    req: Request<ReqBody>,
    shared: Arc<Shared>,
    reject: R,
    authorize: A,
}

impl<S, ReqBody, R, A> ResponseFuture<S, ReqBody, R, A>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn call(future: S::Future) -> Self {
        Self {
            state: State::Call { future },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    /// The future of a request [`admit`] let through, or its refusal.
    pub(crate) fn admitted(verdict: Result<S::Future, S::Response>) -> Self {
        match verdict {
            Ok(future) => Self::call(future),
            Err(response) => Self::rejected(response),
        }
    }

    pub(crate) fn lookup(
        flight: ReadThrough,
        inner: S,
        req: Request<ReqBody>,
        shared: Arc<Shared>,
        reject: R,
        authorize: A,
    ) -> Self {
        Self {
            state: State::Lookup {
                flight,
                pending: Some(Pending {
                    inner,
                    req,
                    shared,
                    reject,
                    authorize,
                }),
            },
        }
    }
}

impl<S, ReqBody, R, A, ResBody> Future for ResponseFuture<S, ReqBody, R, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectResponse<ResBody>,
    A: AuthorizeApp<ReqBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Call { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")))
                }
                StateProj::Lookup { flight, pending } => {
                    let found = ready!(flight.0.as_mut().poll(cx));
                    let Pending {
                        mut inner,
                        req,
                        shared,
                        reject: rejecter,
                        authorize,
                    } = pending.take().expect("polled after completion");
                    match found {
                        Outcome::Found(identity) => {
                            Self::admitted(admit(
                                &mut inner, &shared, &rejecter, &authorize, req, identity,
                            ))
                            .state
                        }
                        Outcome::Unknown => State::Rejected {
                            response: Some(reject(
                                &shared,
                                &rejecter,
                                RejectionKind::Invalid,
                                &req,
                                None,
                            )),
                        },
                        Outcome::Failed => State::Rejected {
                            response: Some(reject(
                                &shared,
                                &rejecter,
                                RejectionKind::Unavailable,
                                &req,
                                None,
                            )),
                        },
                    }
                }
            };
            state.set(next);
        }
    }
}

impl<S, ReqBody, R, A> fmt::Debug for ResponseFuture<S, ReqBody, R, A>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Call { .. } => "call",
            State::Rejected { .. } => "rejected",
            State::Lookup { .. } => "lookup",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// One request's wait for a provider lookup, shared with every concurrent request for the same
/// code (see [`AppCodeCache::read_through`](crate::cache::AppCodeCache)).
pub(crate) struct ReadThrough(BoxFuture<'static, Outcome>);

impl ReadThrough {
    /// Starts or joins the lookup of `raw` (already validated) whose digest is `digest`.
    pub(crate) fn start(
        shared: &Shared,
        provider: Arc<dyn AppCodeProvider>,
        digest: Digest,
        raw: &[u8],
    ) -> Self {
        let code = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| AppCode::parse(s).ok());
        let cache = shared.cache.clone();
        let timeout = shared.lookup_timeout;
        Self(Box::pin(async move {
            match code {
                Some(code) => cache.read_through(provider, digest, code, timeout).await,
                // Validated already: a code that does not parse is unknown, not an outage.
                None => Outcome::Unknown,
            }
        }))
    }
}
