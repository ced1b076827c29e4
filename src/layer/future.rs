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
use super::layer::Shared;
use super::rejection::{RejectResponse, RejectionKind};
use super::service::{admit, reject};
use crate::cache::Digest;
use crate::code::AppCode;
use crate::identity::AppIdentity;
use crate::metrics::Counters;
use crate::provider::{AppCodeProvider, BoxFuture};

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
        Lookup { flight: Flight, pending: Option<Pending<S, ReqBody, R, A>> },
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

    pub(crate) fn lookup(
        flight: Flight,
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
                        Ok(Some(identity)) => {
                            admit(&mut inner, &shared, &rejecter, &authorize, req, identity).state
                        }
                        Ok(None) => State::Rejected {
                            response: Some(reject(
                                &shared,
                                &rejecter,
                                RejectionKind::Invalid,
                                &req,
                                None,
                            )),
                        },
                        Err(()) => State::Rejected {
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

/// One request's wait for a provider lookup, joined with every concurrent request for the same
/// code: `Ok(Some)` found, `Ok(None)` unknown, `Err` the provider failed or timed out.
pub(crate) struct Flight(BoxFuture<'static, Result<Option<AppIdentity>, ()>>);

impl Flight {
    /// Starts the lookup of `raw` (already validated) whose digest is `digest`.
    pub(crate) fn start(
        shared: Arc<Shared>,
        provider: Arc<dyn AppCodeProvider>,
        digest: Digest,
        raw: &[u8],
    ) -> Self {
        let code = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| AppCode::parse(s).ok());
        Self(Box::pin(async move {
            let code = code.ok_or(())?;
            resolve(&shared, &*provider, digest, &code).await
        }))
    }
}

async fn resolve(
    shared: &Shared,
    provider: &dyn AppCodeProvider,
    digest: Digest,
    code: &AppCode,
) -> Result<Option<AppIdentity>, ()> {
    let cache = &shared.cache;
    if cache.is_known_unknown(&digest) {
        return Ok(None);
    }
    let flight = cache.flight(digest);
    let result = flight
        .get_or_try_init(|| async {
            // Another request may have finished a lookup of this code just before we joined.
            if let Some(identity) = cache.get(&digest) {
                return Ok(Some(identity));
            }
            Counters::add(&cache.counters().provider_lookups);
            match tokio::time::timeout(shared.lookup_timeout, provider.lookup(code)).await {
                Ok(Ok(Some(identity))) => {
                    cache.insert_digest(digest, &identity);
                    Ok(Some(identity))
                }
                Ok(Ok(None)) => {
                    cache.remember_unknown(digest);
                    Ok(None)
                }
                Ok(Err(error)) => {
                    Counters::add(&cache.counters().provider_errors);
                    tracing::warn!(%error, "AppCode lookup failed");
                    Err(())
                }
                Err(_) => {
                    Counters::add(&cache.counters().provider_errors);
                    tracing::warn!(timeout = ?shared.lookup_timeout, "AppCode lookup timed out");
                    Err(())
                }
            }
        })
        .await
        .cloned();
    cache.land(&digest, &flight);
    result
}
