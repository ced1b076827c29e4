//! [`run`]: wires the store, the cache, the management API, the gateway and the verify
//! listener, and serves them until SIGTERM or Ctrl-C. Without an upstream there is no gateway
//! listener: the verify listener alone checks requests (auth-only mode).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::config::{Config, DatabaseUrl, RateLimitStore};
use super::connection::Listening;
use super::listener::{self, OpenConnections};
use super::metrics::{self, Exposition, GatewayMetrics};
use super::{memory, tls, token_file, verify, Gateway};
use crate::admin::{AdminApi, BuildError, Permissions, TokenCredential};
use crate::layer::{HttpsPolicy, IdentityHeaders};
use crate::store::{
    PostgresOptions, PostgresStore, Scope, SqliteOptions, SqliteStore, Store, StoreError,
    StoreProvider,
};
use crate::throttle::{RedisRateStore, RedisStoreError, ThrottleLayer};
use crate::{AppCodeAuthLayer, AppCodeCache};

/// Prints a line of the startup banner on stdout. A stdout that is closed (a supervisor that
/// read what it needed) fails the write, which `println!` would turn into a panic: the
/// gateway goes on without it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How long open connections get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the gateway could not start or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// The store could not be opened.
    Store(StoreError),
    /// A listener could not be bound.
    Bind {
        /// Which listener.
        listener: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A TLS certificate or key could not be used.
    Tls(tls::TlsError),
    /// The first-run admin token could not be written or read.
    AdminToken(PathBuf, std::io::Error),
    /// The management API's configuration was refused.
    Admin(BuildError),
    /// The rate limit store refused the connection's credentials or database.
    RateLimitStore(RedisStoreError),
    /// No management credential is configured and the store is shared (PostgreSQL): a
    /// first-run token file per node would give each node a token of its own.
    SharedStoreNeedsCredentials,
    /// Neither an upstream (for the gateway) nor a verify listener is configured: nothing
    /// would check a request.
    NothingToServe,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // "store backend failed" would add nothing to why opening failed.
            Self::Store(StoreError::Backend(e)) => write!(f, "opening the store: {e}"),
            Self::Store(e) => write!(f, "opening the store: {e}"),
            Self::Bind {
                listener,
                addr,
                source,
            } => write!(f, "cannot listen on {addr} ({listener}): {source}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::AdminToken(path, e) => write!(f, "admin token file {}: {e}", path.display()),
            Self::Admin(e) => write!(f, "management API: {e}"),
            Self::RateLimitStore(e) => write!(f, "rate limit store: {e}"),
            Self::SharedStoreNeedsCredentials => f.write_str(
                "management API: no management credentials configured; with a PostgreSQL \
                 database every node needs the same ones: set --admin-token \
                 (APIG_ADMIN_TOKEN), --access-key and --secret-key, or `tokens`/`access_keys` \
                 in the configuration file",
            ),
            Self::NothingToServe => f.write_str(
                "nothing to serve: configure an upstream for the gateway or a verify listener \
                 for auth-only mode",
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// How long a stopping node waits for its last quota counts to reach the store.
const QUOTA_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the management API, the gateway (with an upstream) and the verify listener (when
/// configured) until SIGTERM or Ctrl-C, then drains them.
pub async fn run(mut config: Config) -> Result<(), RunError> {
    if config.upstream.is_none() && config.verify_listen.is_none() {
        return Err(RunError::NothingToServe);
    }
    let store = open_store(&config).await?;
    check_app_rate_limits(&config, &*store).await;
    // Before binding, so that a file that cannot be written stops the start early; the hint is
    // printed once the real admin address (port 0 resolved) is known.
    let created_token_file = ensure_credentials(&mut config)?;
    let listeners = match Listeners::bind(&config).await {
        Ok(listeners) => listeners,
        Err(e) => {
            // Bound before the layer starts its background tasks, so that a start that fails
            // here stops nothing half-started (a refresher cut off mid-read would log an error
            // of its own). Nor may it leave the token it made behind: the next start would find
            // the file, keep it, and never show the hint that says where it is.
            if let Some(path) = &created_token_file {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let cache = AppCodeCache::new();
    let redis = redis_store(&config).await?;
    let auth = auth_layer(&config, &store, &cache, redis.as_ref());
    // One layer (one cache, one refresher) and one throttle for both the gateway and the
    // verify listener.
    let throttle = throttle_layer(&config, redis);
    let verify_service = verify::service(&auth, &throttle, IdentityHeaders::default());
    // Holds the layer's background tasks (the refresher, the quota counts' flusher) until the
    // last counts are shared, after the listeners have dropped their copies.
    let layer = auth.clone();
    announce(&config, &listeners, created_token_file.as_deref());
    let stop = shutdown_on_signal();

    let gateway_metrics = GatewayMetrics::new();
    let gateway = config
        .upstream
        .clone()
        .zip(listeners.gateway)
        .map(|(upstream, bound)| {
            let mut gateway = Gateway::new(auth, upstream)
                .throttle(throttle.clone())
                .metrics(gateway_metrics.clone())
                .workers(config.workers)
                .limits(config.gateway_limits)
                .trusted_proxies(config.trusted_proxies.iter().copied())
                .drain(DRAIN_TIMEOUT);
            if let Some(acceptor) = bound.tls {
                gateway = gateway.tls(acceptor);
            }
            (gateway, bound.listener, bound.addr)
        });
    let admin_open = OpenConnections::default();
    let verify_open = OpenConnections::default();
    let mut open = Vec::with_capacity(3);
    let mut workers = None;
    if let Some((gateway, ..)) = &gateway {
        open.push(("gateway", gateway.open_connections()));
        workers = Some(gateway.worker_connections());
    }
    open.push(("admin", admin_open.clone()));
    if listeners.verify.is_some() {
        open.push(("verify", verify_open.clone()));
    }
    let mut exposition = Exposition::new(cache.clone(), &gateway_metrics, open)
        .throttle(&throttle)
        .quota_counts(&layer)
        .signed_bodies(&layer);
    if let Some(workers) = workers {
        exposition = exposition.workers(workers);
    }
    let admin = admin_router(&mut config, store, cache.clone(), exposition)?;

    let gateway = gateway
        .map(|(gateway, listener, addr)| {
            listener
                .into_std()
                .and_then(|listener| gateway.spawn(listener, stop.clone()))
                .map_err(|source| RunError::Bind {
                    listener: "gateway",
                    addr,
                    source,
                })
        })
        .transpose()?;
    let gateway = async {
        if let Some(gateway) = gateway {
            gateway.join().await;
        }
    };
    let admin_listening = Listening {
        name: "admin",
        tls: listeners.admin_tls,
        limits: config.admin_limits(),
        open: admin_open.clone(),
        share: None,
        service: admin.map_request(|req: http::Request<hyper::body::Incoming>| req.map(Body::new)),
    };
    let verify_stop = stop.clone();
    let admin = listener::serve(listeners.admin, admin_listening, stop, DRAIN_TIMEOUT);
    let verify = async {
        let Some(verify) = listeners.verify else {
            return;
        };
        // The gateway's deadlines and cap: in auth-only mode this listener carries the traffic
        // the gateway listener would, from a proxy that keeps its connections open.
        let listening = Listening {
            name: "verify",
            tls: None,
            limits: config.gateway_limits,
            open: verify_open.clone(),
            share: None,
            service: verify_service,
        };
        listener::serve(verify, listening, verify_stop, DRAIN_TIMEOUT).await;
    };
    tokio::join!(gateway, admin, verify);
    // The last second's quota counts, so that a restart loses none.
    if !cache.flush_quota_counts(QUOTA_FLUSH_TIMEOUT).await {
        tracing::warn!(
            calls = cache.quota_calls_unflushed(),
            "app quota counts not shared before stopping; those calls are not counted"
        );
    }
    drop(layer);
    tracing::info!("apig-appcode stopped");
    Ok(())
}

/// With no credential configured, the first-run token file's (created if need be). Returns the
/// file's path when it was created now.
fn ensure_credentials(config: &mut Config) -> Result<Option<PathBuf>, RunError> {
    if config.has_credentials() {
        return Ok(None);
    }
    let (token, created) = first_run_token(config)?;
    config.tokens.push(token);
    Ok(created)
}

/// Logs the per-app rate limits the file set, and warns about each one whose key names no app
/// of the instance: keys are app IDs, and one that holds an app's name limits nobody.
async fn check_app_rate_limits(config: &Config, store: &dyn Store) {
    if config.app_rate_limits.is_empty() {
        return;
    }
    let scope = Scope::new(config.project_id.clone(), config.instance_id.clone());
    for (app_id, quota) in &config.app_rate_limits {
        match store.get_app(&scope, app_id).await {
            Ok(app) => {
                tracing::info!(app_id = %app_id, app = %app.name, limit = %quota, "per-app rate limit");
            }
            Err(StoreError::AppNotFound) => tracing::warn!(
                app_id = %app_id,
                limit = %quota,
                instance_id = %config.instance_id,
                "per-app rate limit for an app ID the instance does not hold (yet); the keys of \
                 [rate_limits] are app IDs, not names"
            ),
            Err(e) => tracing::warn!(
                app_id = %app_id,
                error = %e,
                "per-app rate limit not checked against the store"
            ),
        }
    }
}

/// The AppCode layer: the store as provider, the cache, the HTTPS policy; app quota counts
/// shared through Redis when rate limits are, else through the store.
fn auth_layer(
    config: &Config,
    store: &Arc<dyn Store>,
    cache: &AppCodeCache,
    redis: Option<&RedisRateStore>,
) -> AppCodeAuthLayer {
    let https = if config.require_https {
        HttpsPolicy::required()
    } else {
        HttpsPolicy::optional()
    };
    let builder = AppCodeAuthLayer::builder()
        .cache(cache.clone())
        .provider(
            StoreProvider::new(Arc::clone(store), config.instance_id.clone())
                .signing_keys(config.app_auth.accepts_signature()),
        )
        .app_auth(config.app_auth)
        .refresh_interval(config.refresh_interval)
        .max_staleness(Some(config.max_staleness))
        .max_lookups(config.max_lookups)
        .max_held_signed_bodies(config.signed_body_memory)
        .anti_entropy_interval(config.anti_entropy_interval.unwrap_or(Duration::ZERO))
        .after_snapshot(memory::release_after_snapshot)
        .identity_headers(IdentityHeaders::default())
        .https(https)
        .trusted_proxies(config.trusted_proxies.iter().copied());
    match redis {
        Some(redis) => {
            let prefix = format!(
                "{}q:{}:",
                config.rate_limit_store_prefix, config.instance_id
            );
            let builder = builder.shared_quota_counts(redis.quota_counts(&prefix));
            // Batches of one: each call is counted in Redis, as each rate-limited request is.
            if config.rate_limit_store_batch.get() == 1 {
                builder
                    .count_each_quota_call(config.rate_limit_store_timeout)
                    .build()
            } else {
                builder.build()
            }
        }
        None => builder.build(),
    }
}

/// Redis, when `--rate-limit-store` names it. One that cannot be reached yet does not stop the
/// start: the nodes count alone until it answers.
async fn redis_store(config: &Config) -> Result<Option<RedisRateStore>, RunError> {
    let RateLimitStore::Redis(url) = &config.rate_limit_store else {
        return Ok(None);
    };
    let prefix = format!("{}{}:", config.rate_limit_store_prefix, config.instance_id);
    let store = RedisRateStore::connect(url, &prefix)
        .await
        .map_err(RunError::RateLimitStore)?
        .batch(config.rate_limit_store_batch);
    tracing::info!(
        rate_limit_store = %url,
        timeout_ms = u64::try_from(config.rate_limit_store_timeout.as_millis()).unwrap_or(u64::MAX),
        batch = config.rate_limit_store_batch.get(),
        "rate limits and app quota counts shared through Redis"
    );
    Ok(Some(store))
}

/// The rate limits, counted in Redis when it is configured.
fn throttle_layer(config: &Config, redis: Option<RedisRateStore>) -> ThrottleLayer {
    let builder = config.throttle_builder();
    match redis {
        Some(store) if config.rate_limit.is_some() || !config.app_rate_limits.is_empty() => builder
            .store(store)
            .store_timeout(config.rate_limit_store_timeout)
            .build(),
        _ => builder.build(),
    }
}

/// The gateway listener, bound, with its TLS acceptor and real address.
struct GatewayListener {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
}

/// The listeners, bound, with their TLS acceptors and real addresses.
struct Listeners {
    /// None without an upstream (auth-only mode).
    gateway: Option<GatewayListener>,
    admin: TcpListener,
    admin_addr: SocketAddr,
    admin_tls: Option<TlsAcceptor>,
    /// Plain HTTP only: a proxy on the same host or network calls it.
    verify: Option<TcpListener>,
    verify_addr: Option<SocketAddr>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self, RunError> {
        let acceptor = |files: &Option<tls::TlsFiles>| {
            files
                .as_ref()
                .map(tls::acceptor)
                .transpose()
                .map_err(RunError::Tls)
        };
        // The gateway's certificate is read only when there is a gateway to serve it.
        let gateway_tls = match config.upstream {
            Some(_) => acceptor(&config.gateway_tls)?,
            None => None,
        };
        let admin_tls = acceptor(&config.admin_tls)?;
        let gateway = match config.upstream {
            Some(_) => {
                let (listener, addr) = bind("gateway", config.gateway_listen).await?;
                Some(GatewayListener {
                    listener,
                    addr,
                    tls: gateway_tls,
                })
            }
            None => None,
        };
        let (admin, admin_addr) = bind("admin", config.admin_listen).await?;
        let (verify, verify_addr) = match config.verify_listen {
            Some(addr) => {
                let (l, a) = bind("verify", addr).await?;
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        Ok(Self {
            gateway,
            admin,
            admin_addr,
            admin_tls,
            verify,
            verify_addr,
        })
    }
}

async fn bind(
    listener: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), RunError> {
    let err = |source| RunError::Bind {
        listener,
        addr,
        source,
    };
    let bound = TcpListener::bind(addr).await.map_err(err)?;
    let local = bound.local_addr().map_err(err)?;
    Ok((bound, local))
}

/// Tells the operator where the listeners are (on stdout, so that a script or a test that
/// asked for port 0 learns the real ports), and how to use a token file created now.
fn announce(config: &Config, listeners: &Listeners, created_token_file: Option<&Path>) {
    let scheme = |tls: &Option<TlsAcceptor>| if tls.is_some() { "https" } else { "http" };
    let gateway = listeners
        .gateway
        .as_ref()
        .map(|g| format!("{}://{}", scheme(&g.tls), g.addr));
    let admin = format!(
        "{}://{}",
        scheme(&listeners.admin_tls),
        listeners.admin_addr
    );
    match &gateway {
        Some(gateway) => say!("gateway listening on {gateway}"),
        None => say!(
            "auth-only mode: no upstream, so no gateway listener; requests are checked on the \
             verify listener only"
        ),
    }
    say!("admin listening on {admin}");
    if config.tokens.is_empty() && !config.access_keys.is_empty() {
        // Configured credentials switch the first-run token off: say so, or the CLI's 401
        // comes as a surprise.
        say!(
            "Management API: AK/SK signatures only ({} access key(s)); no admin token, so no \
             first-run token file. The CLI sends an admin token: add --admin-token (or \
             APIG_ADMIN_TOKEN) to use it.",
            config.access_keys.len()
        );
    }
    if let Some(addr) = listeners.verify_addr {
        say!("verify listening on http://{addr}");
        tracing::info!(verify = %format!("http://{addr}"), "verify listener (auth-only mode) on");
    }
    if let Some(path) = created_token_file {
        say!(
            "No management credentials configured: created an admin token in {}.\n\
             Use it like this:\n  curl -H \"X-Auth-Token: $(cat {})\" {admin}/v2/{}/apigw/instances/{}/apps",
            path.display(),
            path.display(),
            config.project_id,
            config.instance_id
        );
        say!(
            "Keep it out of what any upstream serves: a static file server started in {} \
             would hand it (and the database beside it) to any caller with a valid AppCode.",
            path.parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| ".".into(), |dir| dir.display().to_string())
        );
    }
    tracing::info!(
        gateway = gateway.as_deref().unwrap_or("off (auth-only mode)"),
        %admin,
        upstream = config.upstream.as_ref().map_or_else(|| "none".into(), ToString::to_string),
        database = %config.database,
        instance_id = %config.instance_id,
        "apig-appcode serving"
    );
    match &listeners.gateway {
        _ if config.require_https => {}
        Some(GatewayListener { tls: Some(_), .. }) => {}
        Some(_) => tracing::warn!(
            "AppCodes are accepted over plain HTTP; APIG allows simple authentication only over \
             HTTPS (use --gateway-tls-cert/--gateway-tls-key, or --require-https behind a \
             TLS-terminating proxy listed in --trusted-proxy)"
        ),
        // The verify listener has no TLS of its own: the proxy in front terminates it.
        None => tracing::warn!(
            "AppCodes are accepted over plain HTTP; APIG allows simple authentication only over \
             HTTPS (use --require-https, with the proxy in front listed in --trusted-proxy)"
        ),
    }
}

/// A flag that turns true on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// The management listener's routes: health, readiness, metrics, then the management API
/// with the configured credentials (moved out of `config`), serving the gateway's instance.
fn admin_router(
    config: &mut Config,
    store: Arc<dyn Store>,
    cache: AppCodeCache,
    exposition: Exposition,
) -> Result<Router, RunError> {
    let mut builder = AdminApi::builder()
        .store(store)
        .instance(config.instance_id.clone(), cache.clone());
    for token in std::mem::take(&mut config.tokens) {
        builder = builder.token(token);
    }
    for key in std::mem::take(&mut config.access_keys) {
        builder = builder.access_key(key);
    }
    let api = builder.build().map_err(RunError::Admin)?.router();
    let exposition = Arc::new(exposition);
    Ok(Router::new()
        .route(
            "/healthz",
            get(|| async { json_response(StatusCode::OK, r#"{"status":"ok"}"#) }),
        )
        .route("/readyz", get(move || ready(cache.clone())))
        .route(
            "/metrics",
            get(move || {
                let exposition = Arc::clone(&exposition);
                async move {
                    (
                        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                        exposition.render(),
                    )
                        .into_response()
                }
            }),
        )
        .fallback_service(api))
}

/// Opens the configured store: an SQLite file, or a PostgreSQL database shared with other nodes
/// (connected and migrated before serving).
async fn open_store(config: &Config) -> Result<Arc<dyn Store>, RunError> {
    let key = config.master_key.clone();
    match &config.database {
        DatabaseUrl::Sqlite(path) => {
            let mut options =
                SqliteOptions::new().change_log_retention(config.change_log_retention);
            if let Some(key) = key {
                options = options.master_key(key);
            }
            let store = SqliteStore::open(path, options).map_err(RunError::Store)?;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres(url) => {
            let mut options = PostgresOptions::new()
                .call_timeout(config.store_timeout)
                .change_log_retention(config.change_log_retention);
            if let Some(key) = key {
                options = options.master_key(key);
            }
            let store = PostgresStore::connect(url, options)
                .await
                .map_err(RunError::Store)?;
            Ok(Arc::new(store))
        }
    }
}

/// The admin token file beside the database: read it if present, else create it (mode 0600).
/// Returns the token and, if the file was created now, its path (for the operator's hint). The
/// token itself is never logged or printed.
fn first_run_token(config: &Config) -> Result<(TokenCredential, Option<PathBuf>), RunError> {
    let db = match &config.database {
        DatabaseUrl::Sqlite(db) => db,
        // Nodes sharing a database must share credentials too: a token file per node would not.
        DatabaseUrl::Postgres(_) => return Err(RunError::SharedStoreNeedsCredentials),
    };
    let path = token_file::path(db);
    let (token, created) =
        token_file::read_or_create(&path).map_err(|e| RunError::AdminToken(path.clone(), e))?;
    Ok((
        TokenCredential::new(token, Permissions::read_write()),
        created.then_some(path),
    ))
}

fn json_response(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn ready(cache: AppCodeCache) -> Response {
    if cache.status().admits() {
        json_response(StatusCode::OK, r#"{"status":"ready"}"#)
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
