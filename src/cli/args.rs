//! The flags of `apig-appcode serve`. Each has an `APIG_*` environment equivalent.

use std::net::SocketAddr;
use std::path::PathBuf;

use apig_appcode::gateway::logging::LogFormat;
use apig_appcode::layer::{AppAuth, IpNetwork};
use apig_appcode::throttle::Quota;
use clap::Parser;

/// Flags of `apig-appcode serve`. Each has an `APIG_*` environment equivalent.
// No `Debug`: the admin token, secret key and master key are here in clear.
#[derive(Clone, Default, Parser)]
#[command(
    name = "serve",
    about = "Run the management API and the AppCode gateway (or, without --upstream, the verify listener alone)"
)]
pub(crate) struct ServeArgs {
    /// TOML configuration file (flags and environment override it).
    #[arg(long, env = "APIG_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address of the gateway (reverse proxy) listener [default: 127.0.0.1:8080].
    #[arg(long, env = "APIG_GATEWAY_LISTEN", value_parser = listen_addr)]
    pub(crate) gateway_listen: Option<SocketAddr>,
    /// Address of the management API listener [default: 127.0.0.1:8081].
    #[arg(long, env = "APIG_ADMIN_LISTEN", value_parser = listen_addr)]
    pub(crate) admin_listen: Option<SocketAddr>,
    /// Address of the verify listener, for a proxy that checks AppCodes through it (nginx
    /// `auth_request`, Caddy `forward_auth`, Envoy `ext_authz`) [default: off].
    #[arg(long, env = "APIG_VERIFY_LISTEN", value_parser = listen_addr)]
    pub(crate) verify_listen: Option<SocketAddr>,
    /// Where authenticated requests go, `http://host:port`. Without it there is no gateway
    /// listener, and `--verify-listen` is required (auth-only mode).
    #[arg(long, env = "APIG_UPSTREAM")]
    pub(crate) upstream: Option<String>,
    /// Store: `sqlite://PATH`, or `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME` shared by
    /// several nodes [default: sqlite://apig-appcode.db]. Give a URL with a password in the
    /// environment variable rather than the flag (flags are visible to other users).
    #[arg(long, env = "APIG_DATABASE", hide_env_values = true)]
    pub(crate) database: Option<String>,
    /// Gateway instance whose AppCodes the gateway accepts and the API manages.
    #[arg(long, env = "APIG_INSTANCE_ID")]
    pub(crate) instance_id: Option<String>,
    /// Project the command-line credentials may act on.
    #[arg(long, env = "APIG_PROJECT_ID")]
    pub(crate) project_id: Option<String>,
    /// A read-write `X-Auth-Token` for the management API (prefer the environment variable:
    /// flags are visible to other users of the machine).
    #[arg(long, env = "APIG_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// Access key (AK) of a read-write AK/SK credential.
    #[arg(long, env = "APIG_ACCESS_KEY")]
    pub(crate) access_key: Option<String>,
    /// Secret key (SK) of that credential.
    #[arg(long, env = "APIG_SECRET_KEY", hide_env_values = true)]
    pub(crate) secret_key: Option<String>,
    /// 32-byte key (64 hex or base64) that encrypts AppCodes at rest.
    #[arg(long, env = "APIG_MASTER_KEY", hide_env_values = true)]
    pub(crate) master_key: Option<String>,
    /// PEM certificate chain for the gateway listener (turns on TLS).
    #[arg(long, env = "APIG_GATEWAY_TLS_CERT", requires = "gateway_tls_key")]
    pub(crate) gateway_tls_cert: Option<PathBuf>,
    /// PEM private key for the gateway listener.
    #[arg(long, env = "APIG_GATEWAY_TLS_KEY", requires = "gateway_tls_cert")]
    pub(crate) gateway_tls_key: Option<PathBuf>,
    /// PEM certificate chain for the management listener (turns on TLS).
    #[arg(long, env = "APIG_ADMIN_TLS_CERT", requires = "admin_tls_key")]
    pub(crate) admin_tls_cert: Option<PathBuf>,
    /// PEM private key for the management listener.
    #[arg(long, env = "APIG_ADMIN_TLS_KEY", requires = "admin_tls_cert")]
    pub(crate) admin_tls_key: Option<PathBuf>,
    /// Refuse AppCodes over plain HTTP with `400 APIG.0607`, as APIG does.
    #[arg(long, env = "APIG_REQUIRE_HTTPS")]
    pub(crate) require_https: bool,
    /// App credentials accepted: `appcode` (the `X-Apig-AppCode` header), `signature`
    /// (SDK-HMAC-SHA256 with the app's key and secret) or `appcode,signature` [default:
    /// appcode].
    #[arg(long, env = "APIG_APP_AUTH")]
    pub(crate) app_auth: Option<AppAuth>,
    /// Network (CIDR) of a TLS-terminating proxy whose `X-Forwarded-Proto` is trusted; repeatable.
    #[arg(
        long = "trusted-proxy",
        env = "APIG_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub(crate) trusted_proxies: Vec<IpNetwork>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "APIG_LOG_FORMAT", value_parser = clap::builder::ValueParser::new(str::parse::<LogFormat>))]
    pub(crate) log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `apig_appcode=debug` [default: info].
    #[arg(long, env = "APIG_LOG")]
    pub(crate) log: Option<String>,
    /// Seconds between catch-ups of the AppCode cache with the store (the changes since its
    /// revision) [default: 10].
    #[arg(long, env = "APIG_REFRESH_INTERVAL")]
    pub(crate) refresh_interval: Option<u64>,
    /// Seconds a PostgreSQL call may take before it fails (503) and its connection is closed
    /// [default: 5].
    #[arg(long, env = "APIG_STORE_TIMEOUT")]
    pub(crate) store_timeout: Option<u64>,
    /// Revisions of each instance the store's change log keeps; a node further behind reloads
    /// every code [default: 10000].
    #[arg(long, env = "APIG_CHANGE_LOG_RETENTION")]
    pub(crate) change_log_retention: Option<u64>,
    /// Seconds the last good snapshot may age while the store fails before the gateway answers
    /// 503 [default: 300].
    #[arg(long, env = "APIG_MAX_STALENESS")]
    pub(crate) max_staleness: Option<u64>,
    /// Lookups in the store of codes the cache lacks that run at a time; past it a miss is
    /// answered 503 with `Retry-After: 1` at once, so that a flood of unknown codes holds a
    /// bounded amount of memory [default: 1024].
    #[arg(long, env = "APIG_MAX_LOOKUPS")]
    pub(crate) max_lookups: Option<usize>,
    /// Bytes the signed bodies being read may hold together (they are held until their end, to
    /// check their hash), those of one app key a quarter of it; a signed body that does not fit
    /// is answered 503 with `Retry-After: 1` [default: 268435456, 256 MiB].
    #[arg(long, env = "APIG_SIGNED_BODY_MEMORY")]
    pub(crate) signed_body_memory: Option<usize>,
    /// Seconds between checks of the AppCode cache against the store (a digest of the codes
    /// each holds; a difference reloads every code), or `off` [default: 300].
    #[arg(long, env = "APIG_ANTI_ENTROPY_INTERVAL")]
    pub(crate) anti_entropy_interval: Option<String>,
    /// Gateway worker threads, each with its own connections and upstream pool [default: one
    /// per core].
    #[arg(long, env = "APIG_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Seconds a new connection may stay silent, and a TLS handshake or request headers may
    /// take [default: 10].
    #[arg(long, env = "APIG_HEADER_TIMEOUT")]
    pub(crate) header_timeout: Option<u64>,
    /// Seconds a connection may stay open with no request in progress [default: 75].
    #[arg(long, env = "APIG_KEEPALIVE_TIMEOUT")]
    pub(crate) keepalive_timeout: Option<u64>,
    /// Seconds a request body may go without sending data before the client gets 408
    /// [default: 60].
    #[arg(long, env = "APIG_BODY_TIMEOUT")]
    pub(crate) body_timeout: Option<u64>,
    /// Seconds the upstream may take to answer with headers, or take none of an upload, before
    /// the client gets 504, and may stop sending in the middle of its body before the answer
    /// is cut [default: 60].
    #[arg(long, env = "APIG_UPSTREAM_TIMEOUT")]
    pub(crate) upstream_timeout: Option<u64>,
    /// Seconds a response may wait for a client that reads none of it (HTTP/2: grants its
    /// stream no credit) before the connection is closed [default: 60].
    #[arg(long, env = "APIG_SEND_TIMEOUT")]
    pub(crate) send_timeout: Option<u64>,
    /// Bytes a request's line and headers may take; a request over it gets 431 and its
    /// connection is closed [default: 32768, at least 8192].
    #[arg(long, env = "APIG_MAX_HEADER_SIZE")]
    pub(crate) max_header_size: Option<usize>,
    /// Open connections the gateway listener accepts; one more is refused with 503
    /// [default: from the open-file limit].
    #[arg(long, env = "APIG_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Requests each app may send, `N/s`, `N/m`, `N/h` or `N/d` (burst N), counted per gateway
    /// node or, with `--rate-limit-store`, for all nodes; over it the gateway answers 429 APIG.0308 [default: no limit]. Per-app values go
    /// in the file's `[rate_limits]` table.
    #[arg(long, env = "APIG_RATE_LIMIT", value_parser = clap::builder::ValueParser::new(str::parse::<Quota>))]
    pub(crate) rate_limit: Option<Quota>,
    /// Where rate limits are counted: `local` (each node on its own), or
    /// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (`rediss://` for TLS), one limit for every
    /// node sharing the Redis [default: local]. Give a password in the environment variable.
    #[arg(long, env = "APIG_RATE_LIMIT_STORE", hide_env_values = true)]
    pub(crate) rate_limit_store: Option<String>,
    /// PEM file of the CA certificates that a `rediss://` rate limit store's certificate is
    /// verified against [default: the system's].
    #[arg(long, env = "APIG_RATE_LIMIT_STORE_CA")]
    pub(crate) rate_limit_store_ca: Option<PathBuf>,
    /// Milliseconds one call to the rate limit store may take; past it, and for a second after,
    /// the node counts on its own [default: 50].
    #[arg(long, env = "APIG_RATE_LIMIT_STORE_TIMEOUT_MS")]
    pub(crate) rate_limit_store_timeout_ms: Option<u64>,
    /// Start of every key in the rate limit store, followed by the instance ID, `:` and the
    /// app ID [default: apig:rl:].
    #[arg(long, env = "APIG_RATE_LIMIT_STORE_PREFIX")]
    pub(crate) rate_limit_store_prefix: Option<String>,
    /// Requests of an app a node takes from the rate limit store per call, admitting the rest
    /// without asking: fewer round trips, and a cluster that may admit up to `nodes × (N - 1)`
    /// requests more or fewer than the limit in a window; above 1, app quota calls are also
    /// added to Redis in batches, at least once a second [default: 1, each request asks, and
    /// each call under an app quota is counted in Redis before it goes on].
    #[arg(long, env = "APIG_RATE_LIMIT_STORE_BATCH")]
    pub(crate) rate_limit_store_batch: Option<u32>,
}

/// A listener's address: an IP address and a port. Host names are refused rather than resolved,
/// so that the address a listener binds is the one written, whatever the resolver says.
pub(crate) fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "expects an IP address and port, such as 127.0.0.1:8080 or [::1]:8080 (host names \
             are not resolved), not {text:?}"
        )
    })
}
