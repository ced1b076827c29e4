//! What `apig-appcode serve` runs with: a [`Config`], which the binary builds from its flags,
//! `APIG_*` environment variables and TOML file, and which a program can build by hand.
//!
//! # Example
//!
//! ```
//! use apig_appcode::gateway::config::{parse_upstream, Config, DatabaseUrl};
//!
//! let mut config = Config::new(parse_upstream("http://127.0.0.1:8000").unwrap());
//! config.database = DatabaseUrl::parse("sqlite:///var/lib/apig/apig.db").unwrap();
//! assert_eq!(config.gateway_listen.to_string(), "127.0.0.1:8080");
//! assert!(!config.has_credentials());
//! ```

mod database;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme};

pub use self::database::DatabaseUrl;
use super::limits::{default_max_connections, Limits};
use super::tls::TlsFiles;
use crate::admin::{AccessKeyCredential, TokenCredential};
use crate::layer::AppAuth;
use crate::layer::IpNetwork;
use crate::store::MasterKey;
use crate::throttle::{
    Quota, RedisUrl, ThrottleLayer, ThrottleLayerBuilder, DEFAULT_STORE_TIMEOUT,
};

/// Default project ID when none is configured.
pub const DEFAULT_PROJECT_ID: &str = "00000000000000000000000000000001";
/// Default gateway instance ID when none is configured.
pub const DEFAULT_INSTANCE_ID: &str = "00000000000000000000000000000001";

/// Default start of the rate limit store's keys: `apig:rl:INSTANCE:APP`.
pub const DEFAULT_RATE_LIMIT_STORE_PREFIX: &str = "apig:rl:";

/// Everything [`run`](fn@super::run) needs. `Debug` shows no credential, key or password.
#[derive(Debug)]
#[non_exhaustive]
pub struct Config {
    /// Gateway listener.
    pub gateway_listen: SocketAddr,
    /// Management listener.
    pub admin_listen: SocketAddr,
    /// Verify listener (auth-only mode for nginx `auth_request`, Caddy `forward_auth`, Envoy
    /// `ext_authz`): off unless set.
    pub verify_listen: Option<SocketAddr>,
    /// Host and port of the upstream (plain HTTP); `None` runs no gateway listener, only the
    /// management API and the verify listener (auth-only mode, [`Config::auth_only`]).
    pub upstream: Option<Authority>,
    /// The store.
    pub database: DatabaseUrl,
    /// Instance served.
    pub instance_id: String,
    /// Project of the command-line credentials.
    pub project_id: String,
    /// Management tokens.
    pub tokens: Vec<TokenCredential>,
    /// Management AK/SK credentials.
    pub access_keys: Vec<AccessKeyCredential>,
    /// Encryption key for AppCodes at rest.
    pub master_key: Option<MasterKey>,
    /// TLS of the gateway listener.
    pub gateway_tls: Option<TlsFiles>,
    /// TLS of the management listener.
    pub admin_tls: Option<TlsFiles>,
    /// Refuse plain HTTP on the gateway.
    pub require_https: bool,
    /// Which app credentials the gateway and verify listeners accept.
    pub app_auth: AppAuth,
    /// Proxies trusted for `X-Forwarded-Proto`.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Cache refresh period.
    pub refresh_interval: Duration,
    /// How long a PostgreSQL call may take.
    pub store_timeout: Duration,
    /// Revisions of each instance the store's change log keeps.
    pub change_log_retention: u64,
    /// Maximum snapshot age.
    pub max_staleness: Duration,
    /// Point lookups of codes the cache lacks, run at a time at most.
    pub max_lookups: usize,
    /// Bytes the signed bodies being read may hold together (every listener of the process).
    pub signed_body_memory: usize,
    /// How often the cache is checked against the store (`None`: never).
    pub anti_entropy_interval: Option<Duration>,
    /// Gateway worker threads.
    pub workers: usize,
    /// The gateway listener's deadlines and connection cap.
    pub gateway_limits: Limits,
    /// Requests per period every app may send (`None`: no limit but `app_rate_limits`).
    pub rate_limit: Option<Quota>,
    /// Per-app rate limits, above or below `rate_limit`.
    pub app_rate_limits: BTreeMap<String, Quota>,
    /// Where the rate limits are counted: on each node, or in Redis for all of them.
    pub rate_limit_store: RateLimitStore,
    /// How long one call to the rate limit store may take before the node counts alone.
    pub rate_limit_store_timeout: Duration,
    /// Start of every key in the rate limit store; the instance ID, `:` and the app ID follow.
    pub rate_limit_store_prefix: String,
    /// Requests of an app a node takes from the rate limit store per call (1: each request
    /// asks, and each call under an app quota is counted in Redis before it goes on; above 1,
    /// quota counts go to Redis in batches).
    pub rate_limit_store_batch: NonZeroU32,
}

/// Where `serve` counts each app's requests against its rate limit.
///
/// ```
/// use apig_appcode::gateway::config::RateLimitStore;
///
/// assert_eq!(RateLimitStore::parse("local").unwrap(), RateLimitStore::Local);
/// let redis = RateLimitStore::parse("redis://:s3cret@10.0.0.5:6379/0").unwrap();
/// assert_eq!(redis.to_string(), "redis://:***@10.0.0.5:6379/0");
/// assert!(RateLimitStore::parse("memcached://10.0.0.5").is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum RateLimitStore {
    /// Each node on its own: N nodes allow an app N times its limit.
    #[default]
    Local,
    /// One Redis for every node (one script call per limited request).
    Redis(RedisUrl),
}

impl RateLimitStore {
    /// `local`, or a `redis://` / `rediss://` URL.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        if s == "local" {
            return Ok(Self::Local);
        }
        RedisUrl::parse(s)
            .map(Self::Redis)
            .map_err(|e| ConfigError::new(format!("--rate-limit-store: `local` or {e}")))
    }
}

impl fmt::Display for RateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Redis(url) => fmt::Display::fmt(url, f),
        }
    }
}

impl Config {
    /// The per-app rate limits, as a layer counting on this node (an inactive one when none is
    /// set).
    pub fn throttle_layer(&self) -> ThrottleLayer {
        self.throttle_builder().build()
    }

    /// The per-app rate limits, as a builder to which a store may be added.
    pub(crate) fn throttle_builder(&self) -> ThrottleLayerBuilder {
        let mut builder = ThrottleLayer::builder();
        if let Some(quota) = self.rate_limit {
            builder = builder.default_limit(quota);
        }
        for (app, quota) in &self.app_rate_limits {
            builder = builder.app_limit(app.clone(), *quota);
        }
        builder
    }

    /// The defaults, forwarding to `upstream`: gateway on `127.0.0.1:8080`, management API on
    /// `127.0.0.1:8081`, no verify listener, SQLite file `apig-appcode.db`, no credential (the
    /// first run creates a token file), plain HTTP, one worker per core.
    pub fn new(upstream: Authority) -> Self {
        Self {
            upstream: Some(upstream),
            ..Self::defaults()
        }
    }

    /// Auth-only mode: the management API and a verify listener on `verify_listen`, for a proxy
    /// already in front of the application, and no gateway listener. The other settings are
    /// [`Config::new`]'s defaults.
    ///
    /// ```
    /// use apig_appcode::gateway::config::Config;
    ///
    /// let config = Config::auth_only("127.0.0.1:8082".parse().unwrap());
    /// assert!(config.upstream.is_none());
    /// assert_eq!(config.verify_listen.unwrap().port(), 8082);
    /// ```
    pub fn auth_only(verify_listen: SocketAddr) -> Self {
        Self {
            verify_listen: Some(verify_listen),
            ..Self::defaults()
        }
    }

    /// The defaults shared by both modes, with neither an upstream nor a verify listener.
    fn defaults() -> Self {
        Self {
            gateway_listen: ([127, 0, 0, 1], 8080).into(),
            admin_listen: ([127, 0, 0, 1], 8081).into(),
            verify_listen: None,
            upstream: None,
            database: DatabaseUrl::Sqlite(PathBuf::from("apig-appcode.db")),
            instance_id: DEFAULT_INSTANCE_ID.into(),
            project_id: DEFAULT_PROJECT_ID.into(),
            tokens: Vec::new(),
            access_keys: Vec::new(),
            master_key: None,
            gateway_tls: None,
            admin_tls: None,
            require_https: false,
            app_auth: AppAuth::AppCode,
            trusted_proxies: Vec::new(),
            refresh_interval: Duration::from_secs(10),
            store_timeout: Duration::from_secs(5),
            change_log_retention: crate::store::CHANGE_LOG_RETENTION,
            max_staleness: Duration::from_secs(300),
            max_lookups: crate::layer::DEFAULT_MAX_LOOKUPS,
            signed_body_memory: crate::layer::DEFAULT_MAX_HELD_BODIES,
            anti_entropy_interval: Some(Duration::from_secs(300)),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            gateway_limits: Limits::default(),
            rate_limit: None,
            app_rate_limits: BTreeMap::new(),
            rate_limit_store: RateLimitStore::Local,
            rate_limit_store_timeout: DEFAULT_STORE_TIMEOUT,
            rate_limit_store_prefix: DEFAULT_RATE_LIMIT_STORE_PREFIX.into(),
            rate_limit_store_batch: NonZeroU32::MIN,
        }
    }

    /// The management listener's deadlines and connection cap: the defaults, with a cap of its
    /// own so that the gateway's connections cannot take its descriptors.
    pub fn admin_limits(&self) -> Limits {
        Limits::default().max_connections(default_max_connections().admin)
    }

    /// Whether any management credential is configured.
    pub fn has_credentials(&self) -> bool {
        !self.tokens.is_empty() || !self.access_keys.is_empty()
    }
}

/// Parses an upstream URL: `http://host[:port][/]` only (no TLS, path, query or credentials).
pub fn parse_upstream(s: &str) -> Result<Authority, ConfigError> {
    // User information in a URL may hold a password: such a value is not echoed.
    let shown = if s.contains('@') {
        "(a URL with credentials, not shown)".to_owned()
    } else {
        format!("{s:?}")
    };
    let err = |why: &str| ConfigError::new(format!("--upstream {shown}: {why}"));
    let uri: http::Uri = s.parse().map_err(|_| err("not a URL"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(err("only http:// upstreams are supported"));
    }
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return Err(err("give only scheme, host and port"));
    }
    let authority = uri.authority().ok_or_else(|| err("no host"))?;
    if authority.as_str().contains('@') {
        return Err(err("credentials in the URL are not supported"));
    }
    Ok(authority.clone())
}

/// A configuration that cannot be used. The message names the setting, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with `msg`, which must name the setting and hold no secret.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_plain_http_host_and_port() {
        assert_eq!(parse_upstream("http://h:9").unwrap().as_str(), "h:9");
        assert_eq!(parse_upstream("http://h:9/").unwrap().as_str(), "h:9");
        for (bad, want) in [
            ("https://h:9", "only http://"),
            ("http://h:9/api", "scheme, host and port"),
            ("h:9", "only http://"),
            ("http://u:pa55@h:9", "credentials"),
        ] {
            let err = parse_upstream(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
            assert!(!err.contains("pa55"), "{err}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut config = Config::new(parse_upstream("http://h:9").unwrap());
        config.tokens.push(TokenCredential::new(
            "token-secret-0123456789",
            crate::admin::Permissions::read_write(),
        ));
        config.database = DatabaseUrl::parse("postgres://u:pa55word@db/apig").unwrap();
        config.rate_limit_store = RateLimitStore::parse("redis://:pa55word@cache/0").unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("token-secret") && !shown.contains("pa55word"),
            "{shown}"
        );
    }
}
