//! [`ResponseFuture`] of [`AppCodeAuth`](super::AppCodeAuth).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::authorize::AuthorizeApp;
use super::headers::X_APIG_QUOTA_APP;
use super::rejection::RejectResponse;
use super::shared::Shared;
use super::signed;
use super::verdict::{admit, reject, Admitted};
use crate::cache::{Asking, Outcome};
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
        Call { #[pin] future: S::Future, debug: Option<Box<HeaderValue>> },
        Rejected { response: Option<S::Response> },
        Lookup { asking: Asking, pending: Option<Pending<S, ReqBody, R, A>> },
    }
}

/// What a request waiting on a provider lookup needs to go on.
struct Pending<S, ReqBody, R, A> {
    inner: S,
    req: Request<ReqBody>,
    shared: Arc<Shared>,
    reject: R,
    authorize: A,
    /// Waiting on an app key for a signature (else on an AppCode).
    signed: bool,
}

impl<S, ReqBody, R, A> ResponseFuture<S, ReqBody, R, A>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    /// The future of a request [`admit`] let through, or its refusal.
    /// The future of a request [`admit`] let through (with the quota's debug header to add to
    /// its response, if asked for), or its refusal.
    pub(crate) fn admitted(verdict: Result<Admitted<S::Future>, S::Response>) -> Self {
        match verdict {
            Ok(admitted) => Self {
                state: State::Call {
                    future: admitted.future,
                    debug: admitted.quota_header,
                },
            },
            Err(response) => Self::rejected(response),
        }
    }

    pub(crate) fn lookup(
        asking: Asking,
        inner: S,
        req: Request<ReqBody>,
        shared: Arc<Shared>,
        reject: R,
        authorize: A,
    ) -> Self {
        Self {
            state: State::Lookup {
                asking,
                pending: Some(Pending {
                    inner,
                    req,
                    shared,
                    reject,
                    authorize,
                    signed: false,
                }),
            },
        }
    }

    /// This lookup is of the app key of a signed request: once the key is in, the signature is
    /// checked again.
    pub(crate) fn for_signature(mut self) -> Self {
        if let State::Lookup {
            pending: Some(p), ..
        } = &mut self.state
        {
            p.signed = true;
        }
        self
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
                StateProj::Call { future, debug } => {
                    let mut res = ready!(future.poll(cx))?;
                    if let Some(value) = debug.take() {
                        res.headers_mut().insert(X_APIG_QUOTA_APP, *value);
                    }
                    return Poll::Ready(Ok(res));
                }
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")))
                }
                StateProj::Lookup { asking, pending } => {
                    let found = ready!(Pin::new(asking).poll(cx));
                    let Pending {
                        mut inner,
                        req,
                        shared,
                        reject: rejecter,
                        authorize,
                        signed,
                    } = pending.take().expect("polled after completion");
                    let unknown = if signed {
                        RejectionKind::SignatureInvalid
                    } else {
                        RejectionKind::Invalid
                    };
                    match found {
                        Outcome::Found(_) if signed => {
                            Self::admitted(signed::admit_checked(
                                &mut inner, &shared, &rejecter, &authorize, req,
                            ))
                            .state
                        }
                        Outcome::Found(identity) => {
                            Self::admitted(admit(
                                &mut inner, &shared, &rejecter, &authorize, req, identity,
                            ))
                            .state
                        }
                        Outcome::Unknown => State::Rejected {
                            response: Some(reject(&shared, &rejecter, unknown, &req, None)),
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
