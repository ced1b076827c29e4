//! [`Gateway`]: the data plane, one single-threaded runtime per worker thread.
//!
//! Every worker accepts from the same listening socket (a clone of it, registered with its own
//! runtime), serves its connections to the end, and sends their requests to the upstream over
//! its own pool of HTTP/1.1 connections. A request never leaves the thread that accepted its
//! connection: no work stealing, no cross-thread pool channel, no wake-up of another core.
//! The control plane (management API, store, cache refresher) runs on another runtime, so a
//! saturated gateway slows it only as much as the operating system's scheduler lets it.
//!
//! # Example
//!
//! ```no_run
//! use apig_appcode::gateway::Gateway;
//! use apig_appcode::{AppCodeAuthLayer, AppCodeCache};
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let auth = AppCodeAuthLayer::new(AppCodeCache::new());
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
//! let gateway = Gateway::new(auth, "127.0.0.1:8000".parse().unwrap())
//!     .workers(2)
//!     .spawn(listener, stopped)?;
//! // ... later:
//! stop.send(true).ok();
//! gateway.join().await;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower_layer::Layer;
use tower_service::Service;

use super::body::ProxyBody;
use super::connection::Listening;
use super::limits::Limits;
use super::listener::{self, OpenConnections};
use super::metrics::{GatewayMetrics, WorkerMetrics};
use super::proxy::{self, Forward};
use super::request_body::RequestBody;
use super::shares::{Share, Shares, WorkerConnections};
use super::upstream::{Exchanges, UpstreamPool};
use crate::layer::{AppCodeAuth, IpNetwork, SignedBody};
use crate::throttle::{Throttle, ThrottleLayer};
use crate::AppCodeAuthLayer;

/// The AppCode-checking reverse proxy: configuration, then [`spawn`](Gateway::spawn).
pub struct Gateway {
    auth: AppCodeAuthLayer,
    throttle: ThrottleLayer,
    upstream: Authority,
    limits: Limits,
    workers: usize,
    tls: Option<TlsAcceptor>,
    trusted: Vec<IpNetwork>,
    drain: Duration,
    upstream_keepalive: Duration,
    metrics: GatewayMetrics,
    open: OpenConnections,
    /// The upstream exchanges in progress on every worker.
    exchanges: OpenConnections,
    shares: Arc<Shares>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("upstream", &self.upstream)
            .field("limits", &self.limits)
            .field("workers", &self.workers)
            .field("tls", &self.tls.is_some())
            .field("trusted", &self.trusted)
            .field("drain", &self.drain)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway checking codes with `auth` and forwarding to `http://{upstream}`, with one
    /// worker per core, [`Limits::default`], no TLS and no trusted proxy.
    pub fn new(auth: AppCodeAuthLayer, upstream: Authority) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            auth,
            throttle: ThrottleLayer::builder().build(),
            upstream,
            limits: Limits::default(),
            workers,
            tls: None,
            trusted: Vec::new(),
            drain: Duration::from_secs(30),
            upstream_keepalive: Duration::from_secs(30),
            metrics: GatewayMetrics::new(),
            open: OpenConnections::default(),
            exchanges: OpenConnections::default(),
            shares: Shares::new(workers),
        }
    }

    /// Counts answers by status class and upstream latency into `metrics` (see
    /// [`Exposition`](super::metrics::Exposition)).
    pub fn metrics(mut self, metrics: GatewayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The gateway listener's open connections (for metrics), known before it starts.
    pub fn open_connections(&self) -> OpenConnections {
        self.open.clone()
    }

    /// The connections each worker serves (for metrics), known before it starts; ask after
    /// [`workers`](Self::workers), which makes new counts.
    pub fn worker_connections(&self) -> WorkerConnections {
        WorkerConnections(Arc::clone(&self.shares))
    }

    /// Per-app rate limits, checked after the AppCode. Every worker shares `throttle`'s state,
    /// so an app's limit holds for the whole process. Default: no limit.
    pub fn throttle(mut self, throttle: ThrottleLayer) -> Self {
        self.throttle = throttle;
        self
    }

    /// How many worker threads serve connections (at least one).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self.shares = Shares::new(self.workers);
        self
    }

    /// Deadlines and the connection cap.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves HTTPS with `acceptor` (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// Proxies whose `X-Forwarded-Proto` (or `Forwarded: proto=`) is believed. Give the same
    /// networks to the layer's [`HttpsPolicy`](crate::layer::HttpsPolicy).
    pub fn trusted_proxies(mut self, networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        self.trusted.extend(networks);
        self
    }

    /// How long open connections get to finish after shutdown starts.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Starts the workers on `listener`; they stop accepting when `shutdown` turns true (or its
    /// sender is dropped), then finish open requests for up to the drain period.
    pub fn spawn(
        self,
        listener: std::net::TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<GatewayHandle> {
        listener.set_nonblocking(true)?;
        let open = self.open;
        let trusted: Arc<[IpNetwork]> = self.trusted.into();
        let mut threads = Vec::with_capacity(self.workers);
        for i in 0..self.workers {
            let listener = listener.try_clone()?;
            let worker = Worker {
                auth: self.auth.clone(),
                throttle: self.throttle.clone(),
                upstream: self.upstream.clone(),
                limits: self.limits,
                tls: self.tls.clone(),
                trusted: Arc::clone(&trusted),
                drain: self.drain,
                upstream_keepalive: self.upstream_keepalive,
                open: open.clone(),
                exchanges: self.exchanges.clone(),
                share: self.shares.worker(i),
                metrics: self.metrics.clone(),
            };
            let shutdown = shutdown.clone();
            let thread = std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || worker.run(listener, shutdown))?;
            threads.push(thread);
        }
        Ok(GatewayHandle { threads, open })
    }
}

/// The running workers of a [`Gateway`].
#[derive(Debug)]
pub struct GatewayHandle {
    threads: Vec<std::thread::JoinHandle<()>>,
    open: OpenConnections,
}

impl GatewayHandle {
    /// The gateway's open connections, for metrics.
    pub fn open_connections(&self) -> OpenConnections {
        self.open.clone()
    }

    /// Waits until every worker has stopped (after shutdown and the drain period).
    pub async fn join(self) {
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    tracing::error!(listener = "gateway", "a gateway worker panicked");
                }
            }
        });
        let _ = joined.await;
    }
}

struct Worker {
    auth: AppCodeAuthLayer,
    throttle: ThrottleLayer,
    upstream: Authority,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    trusted: Arc<[IpNetwork]>,
    drain: Duration,
    upstream_keepalive: Duration,
    open: OpenConnections,
    exchanges: OpenConnections,
    share: Share,
    metrics: GatewayMetrics,
}

impl Worker {
    fn run(self, listener: std::net::TcpListener, shutdown: watch::Receiver<bool>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(listener = "gateway", error = %e, "cannot start a gateway worker");
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(listener = "gateway", error = %e, "cannot register the listener");
                    return;
                }
            };
            let exchanges = Exchanges {
                open: self.exchanges,
                max: self.limits.max_connections,
            };
            let pool = UpstreamPool::new(
                self.upstream,
                self.upstream_keepalive,
                self.limits.upstream_timeout,
                exchanges,
            );
            let metrics = self.metrics.worker();
            let forward = Forward::new(
                pool,
                self.limits.body_timeout,
                self.limits.upstream_timeout,
                metrics.clone(),
            );
            let body = self
                .auth
                .signed_body_layer()
                .read_timeout(self.limits.body_timeout);
            let service = GatewayService {
                auth: body.layer(self.auth.layer(self.throttle.layer(forward))),
                trusted: self.trusted,
                metrics,
            };
            let listening = Listening {
                name: "gateway",
                tls: self.tls,
                limits: self.limits,
                open: self.open.clone(),
                share: Some(self.share),
                service,
            };
            listener::serve(listener, listening, shutdown, self.drain).await;
        });
    }
}

/// What checks a prepared request: the signed body's hash, the app's credentials, its rate
/// limit, then [`Forward`].
type Checked = SignedBody<AppCodeAuth<Throttle<Forward>>>;

/// One request's way through the gateway: [`proxy::prepare`], the AppCode layer, [`Forward`].
#[derive(Clone)]
struct GatewayService {
    auth: Checked,
    trusted: Arc<[IpNetwork]>,
    metrics: WorkerMetrics,
}

impl Service<Request<Incoming>> for GatewayService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = GatewayFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.auth.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> GatewayFuture {
        let answer = match proxy::prepare(req, &self.trusted) {
            Ok(req) => Answer::Auth(self.auth.call(req.map(RequestBody::Streamed))),
            Err(bad) => Answer::Refused(Some(bad.into_response())),
        };
        GatewayFuture {
            answer,
            metrics: self.metrics.clone(),
        }
    }
}

/// A gateway request's answer, counted by status class when it is ready.
struct GatewayFuture {
    answer: Answer,
    metrics: WorkerMetrics,
}

// Boxing the common variant would cost an allocation per request; the rare one is small.
#[allow(clippy::large_enum_variant)]
enum Answer {
    Auth(<Checked as Service<Request<RequestBody>>>::Future),
    Refused(Option<Response<ProxyBody>>),
}

impl Future for GatewayFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unpin: the layer's future pins nothing it does not box.
        let this = self.get_mut();
        let res = match &mut this.answer {
            Answer::Auth(f) => std::task::ready!(Pin::new(f).poll(cx))?,
            Answer::Refused(res) => res.take().expect("polled after completion"),
        };
        this.metrics.answered(res.status());
        Poll::Ready(Ok(res))
    }
}
