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
use super::headers::{with_debug_header, X_APIG_QUOTA_APP};
use super::rejection::RejectResponse;
use super::shared::Shared;
use super::verdict::{charged, check, forward, recheck, reject, Admitted, Checked};
use crate::cache::{Asking, Outcome, QuotaAsking};
use crate::identity::AppIdentity;
use crate::rejection_kind::RejectionKind;

pin_project! {
    /// The response future of [`AppCodeAuth`](super::AppCodeAuth).
    ///
    /// A request whose code is cached goes straight to the inner service's future (no
    /// allocation); a refused one is answered at once; only a cache miss with a lookup-capable
    /// provider waits for the provider first, and a call counted in shared quota counts one by
    /// one waits for their answer.
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
        Charging { asking: QuotaAsking, pending: Option<Charging<S, ReqBody, R>> },
    }
}

/// What a request waiting on its quota count needs to go on.
struct Charging<S, ReqBody, R> {
    inner: S,
    req: Request<ReqBody>,
    identity: AppIdentity,
    shared: Arc<Shared>,
    reject: R,
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

    fn call(admitted: Admitted<S::Future>) -> Self {
        Self {
            state: State::Call {
                future: admitted.future,
                debug: admitted.quota_header,
            },
        }
    }

    /// The future of a request whose code stands for `identity`: its call of `inner` (the
    /// service polled ready, which `take_ready` takes when the call must wait), or its refusal.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn verified<ResBody>(
        inner: &mut S,
        take_ready: impl FnOnce(&mut S) -> S,
        shared: &Arc<Shared>,
        rejecter: &R,
        authorize: &A,
        req: Request<ReqBody>,
        identity: AppIdentity,
    ) -> Self
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        R: RejectResponse<ResBody> + Clone,
        A: AuthorizeApp<ReqBody>,
    {
        match check(shared, rejecter, authorize, &req, &identity) {
            Ok(Checked::Charged(header)) => {
                Self::call(forward(inner, shared, req, identity, header))
            }
            Ok(Checked::Asking(asking)) => Self {
                state: State::Charging {
                    asking,
                    pending: Some(Charging {
                        inner: take_ready(inner),
                        req,
                        identity,
                        shared: Arc::clone(shared),
                        reject: rejecter.clone(),
                    }),
                },
            },
            Err(refused) => Self::rejected(refused),
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: RejectResponse<ResBody> + Clone,
    A: AuthorizeApp<ReqBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Call { future, debug } => {
                    let res = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(with_debug_header(res, X_APIG_QUOTA_APP, debug.take())));
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
                        Outcome::Found(identity) => {
                            // A key found for a signed request: the signature is checked now.
                            let checked = if signed {
                                recheck(&shared, &rejecter, req)
                            } else {
                                Ok((req, identity))
                            };
                            match checked {
                                Ok((req, identity)) => {
                                    Self::verified(
                                        &mut inner,
                                        |inner| inner.clone(),
                                        &shared,
                                        &rejecter,
                                        &authorize,
                                        req,
                                        identity,
                                    )
                                    .state
                                }
                                Err(refused) => State::Rejected {
                                    response: Some(refused),
                                },
                            }
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
                StateProj::Charging { asking, pending } => {
                    let charge = ready!(asking.as_mut().poll(cx));
                    let Charging {
                        mut inner,
                        req,
                        identity,
                        shared,
                        reject: rejecter,
                    } = pending.take().expect("polled after completion");
                    match charged(&shared, &rejecter, &req, &identity, charge) {
                        Ok(header) => {
                            Self::call(forward(&mut inner, &shared, req, identity, header)).state
                        }
                        Err(refused) => State::Rejected {
                            response: Some(refused),
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
            State::Charging { .. } => "charging",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
