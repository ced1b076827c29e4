//! Configuration of `apig-appcode serve`: flags, `APIG_*` environment variables and an optional
//! TOML file, merged in that order of precedence over the defaults.
//!
//! # Example
//!
//! ```
//! use apig_appcode::gateway::config::{Config, ServeArgs};
//! use clap::Parser;
//!
//! let args = ServeArgs::try_parse_from(["serve", "--upstream", "http://127.0.0.1:8000"]).unwrap();
//! let config = Config::load(args).unwrap();
//! assert_eq!(config.gateway_listen.to_string(), "127.0.0.1:8080");
//! assert_eq!(config.database.to_string(), "sqlite://apig-appcode.db");
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use http::uri::{Authority, Scheme};
use serde::Deserialize;

use super::limits::Limits;
use crate::layer::IpNetwork;

/// Default project ID when none is configured.
pub const DEFAULT_PROJECT_ID: &str = "00000000000000000000000000000001";
/// Default gateway instance ID when none is configured.
pub const DEFAULT_INSTANCE_ID: &str = "00000000000000000000000000000001";

/// Flags of `apig-appcode serve`. Each has an `APIG_*` environment equivalent.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "serve",
    about = "Run the management API and the AppCode gateway"
)]
pub struct ServeArgs {
    /// TOML configuration file (flags and environment override it).
    #[arg(long, env = "APIG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the gateway (reverse proxy) listener [default: 127.0.0.1:8080].
    #[arg(long, env = "APIG_GATEWAY_LISTEN")]
    pub gateway_listen: Option<SocketAddr>,
    /// Address of the management API listener [default: 127.0.0.1:8081].
    #[arg(long, env = "APIG_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Where authenticated requests go, `http://host:port`.
    #[arg(long, env = "APIG_UPSTREAM")]
    pub upstream: Option<String>,
    /// Store: `sqlite://PATH`, or `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME` shared by
    /// several nodes [default: sqlite://apig-appcode.db]. Give a URL with a password in the
    /// environment variable rather than the flag (flags are visible to other users).
    #[arg(long, env = "APIG_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Gateway instance whose AppCodes the gateway accepts and the API manages.
    #[arg(long, env = "APIG_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Project the command-line credentials may act on.
    #[arg(long, env = "APIG_PROJECT_ID")]
    pub project_id: Option<String>,
    /// A read-write `X-Auth-Token` for the management API (prefer the environment variable:
    /// flags are visible to other users of the machine).
    #[arg(long, env = "APIG_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Access key (AK) of a read-write AK/SK credential.
    #[arg(long, env = "APIG_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key (SK) of that credential.
    #[arg(long, env = "APIG_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// 32-byte key (64 hex or base64) that encrypts AppCodes at rest.
    #[arg(long, env = "APIG_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// PEM certificate chain for the gateway listener (turns on TLS).
    #[arg(long, env = "APIG_GATEWAY_TLS_CERT", requires = "gateway_tls_key")]
    pub gateway_tls_cert: Option<PathBuf>,
    /// PEM private key for the gateway listener.
    #[arg(long, env = "APIG_GATEWAY_TLS_KEY", requires = "gateway_tls_cert")]
    pub gateway_tls_key: Option<PathBuf>,
    /// PEM certificate chain for the management listener (turns on TLS).
    #[arg(long, env = "APIG_ADMIN_TLS_CERT", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,
    /// PEM private key for the management listener.
    #[arg(long, env = "APIG_ADMIN_TLS_KEY", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
    /// Refuse AppCodes over plain HTTP with `400 APIG.0607`, as APIG does.
    #[arg(long, env = "APIG_REQUIRE_HTTPS")]
    pub require_https: bool,
    /// Network (CIDR) of a TLS-terminating proxy whose `X-Forwarded-Proto` is trusted; repeatable.
    #[arg(
        long = "trusted-proxy",
        env = "APIG_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpNetwork>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "APIG_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `apig_appcode=debug` [default: info].
    #[arg(long, env = "APIG_LOG")]
    pub log: Option<String>,
    /// Seconds between full reloads of the AppCode cache from the store [default: 10].
    #[arg(long, env = "APIG_REFRESH_INTERVAL")]
    pub refresh_interval: Option<u64>,
    /// Seconds the last good snapshot may age while the store fails before the gateway answers
    /// 503 [default: 300].
    #[arg(long, env = "APIG_MAX_STALENESS")]
    pub max_staleness: Option<u64>,
    /// Gateway worker threads, each with its own connections and upstream pool [default: one
    /// per core].
    #[arg(long, env = "APIG_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a new connection may stay silent, and a TLS handshake or request headers may
    /// take [default: 10].
    #[arg(long, env = "APIG_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Seconds a connection may stay open with no request in progress [default: 75].
    #[arg(long, env = "APIG_KEEPALIVE_TIMEOUT")]
    pub keepalive_timeout: Option<u64>,
    /// Seconds a request body may go without sending data before the client gets 408
    /// [default: 60].
    #[arg(long, env = "APIG_BODY_TIMEOUT")]
    pub body_timeout: Option<u64>,
    /// Seconds the upstream may take to answer with headers before the client gets 504
    /// [default: 60].
    #[arg(long, env = "APIG_UPSTREAM_TIMEOUT")]
    pub upstream_timeout: Option<u64>,
    /// Open connections the gateway listener accepts; one more is refused with 503
    /// [default: from the open-file limit].
    #[arg(long, env = "APIG_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

/// `text` or `json` logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What `--database` names. `Display` and `Debug` hide a password in a PostgreSQL URL.
///
/// ```
/// use apig_appcode::gateway::config::DatabaseUrl;
///
/// let url = DatabaseUrl::parse("postgres://apig:s3cret@db:5432/apig").unwrap();
/// assert_eq!(url.to_string(), "postgres://apig:***@db:5432/apig");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://` URL, as given).
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH` (or `sqlite:PATH`), or a `postgres://` / `postgresql://` URL
    /// (checked when the store connects).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "--database {:?}: expected sqlite://PATH or postgres://USER@HOST/DBNAME",
                    redact_url(s)
                ))
            })?;
        if path.is_empty() {
            return Err(ConfigError::new("--database sqlite:// needs a file path"));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// `url` with the password of its user information and any `password=` query parameter
/// replaced by `***`. When unsure where the user information ends (an `@` anywhere before the
/// query), everything after the user name up to the last `@` is hidden.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, query) = rest.split_at(query_at);
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(before_query),
    }
    let Some(params) = query.strip_prefix('?') else {
        out.push_str(query);
        return out;
    };
    out.push('?');
    for (i, param) in params.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(param),
        }
    }
    out
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A role of a management credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// GET only.
    ReadOnly,
    /// Everything.
    ReadWrite,
}

/// A credential as written in the TOML file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The `X-Auth-Token` value.
    pub token: String,
    /// Projects it may act on; `["*"]` for all.
    pub projects: Vec<String>,
    /// What it may do.
    pub role: Role,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("token", &"<redacted>")
            .field("projects", &self.projects)
            .field("role", &self.role)
            .finish()
    }
}

/// An AK/SK credential as written in the TOML file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyEntry {
    /// The access key (AK).
    pub access_key: String,
    /// The secret key (SK).
    pub secret_key: String,
    /// Projects it may act on; `["*"]` for all.
    pub projects: Vec<String>,
    /// What it may do.
    pub role: Role,
}

impl fmt::Debug for AccessKeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeyEntry")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("projects", &self.projects)
            .field("role", &self.role)
            .finish()
    }
}

/// A certificate chain and key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The TOML file. Every field is optional; flags and environment win over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    gateway_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    upstream: Option<String>,
    database: Option<String>,
    instance_id: Option<String>,
    project_id: Option<String>,
    master_key: Option<String>,
    require_https: Option<bool>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    refresh_interval: Option<u64>,
    max_staleness: Option<u64>,
    workers: Option<usize>,
    header_timeout: Option<u64>,
    keepalive_timeout: Option<u64>,
    body_timeout: Option<u64>,
    upstream_timeout: Option<u64>,
    max_connections: Option<usize>,
    gateway_tls: Option<TlsFiles>,
    admin_tls: Option<TlsFiles>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    #[serde(default)]
    access_keys: Vec<AccessKeyEntry>,
}

/// The merged configuration `serve` runs with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Gateway listener.
    pub gateway_listen: SocketAddr,
    /// Management listener.
    pub admin_listen: SocketAddr,
    /// Scheme and authority of the upstream.
    pub upstream: Authority,
    /// The store.
    pub database: DatabaseUrl,
    /// Instance served.
    pub instance_id: String,
    /// Project of the command-line credentials.
    pub project_id: String,
    /// Management tokens.
    pub tokens: Vec<TokenEntry>,
    /// Management AK/SK credentials.
    pub access_keys: Vec<AccessKeyEntry>,
    /// Encryption key for AppCodes at rest, as given (hex or base64).
    pub master_key: Option<MasterKeyText>,
    /// TLS of the gateway listener.
    pub gateway_tls: Option<TlsFiles>,
    /// TLS of the management listener.
    pub admin_tls: Option<TlsFiles>,
    /// Refuse plain HTTP on the gateway.
    pub require_https: bool,
    /// Proxies trusted for `X-Forwarded-Proto`.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log: String,
    /// Cache refresh period.
    pub refresh_interval: Duration,
    /// Maximum snapshot age.
    pub max_staleness: Duration,
    /// Gateway worker threads.
    pub workers: usize,
    /// The gateway listener's deadlines and connection cap.
    pub gateway_limits: Limits,
}

/// The master key as configured text; `Debug` redacts it.
#[derive(Clone)]
pub struct MasterKeyText(pub String);

impl fmt::Debug for MasterKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKeyText(<redacted>)")
    }
}

impl Config {
    /// Merges `args` (flags and environment) over the TOML file it names, over the defaults.
    pub fn load(args: ServeArgs) -> Result<Self, ConfigError> {
        let args_limits = LimitArgs {
            header_timeout: args.header_timeout,
            keepalive_timeout: args.keepalive_timeout,
            body_timeout: args.body_timeout,
            upstream_timeout: args.upstream_timeout,
            max_connections: args.max_connections,
        };
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let gateway_limits = gateway_limits(&args_limits, &file)?;
        let upstream = args.upstream.or(file.upstream).ok_or_else(|| {
            ConfigError::new("--upstream is required (or APIG_UPSTREAM, or `upstream` in the file)")
        })?;
        let database = args
            .database
            .or(file.database)
            .unwrap_or_else(|| "sqlite://apig-appcode.db".into());
        let project_id = args
            .project_id
            .or(file.project_id)
            .unwrap_or_else(|| DEFAULT_PROJECT_ID.into());
        let mut tokens = file.tokens;
        if let Some(token) = args.admin_token {
            tokens.push(TokenEntry {
                token,
                projects: vec![project_id.clone()],
                role: Role::ReadWrite,
            });
        }
        let mut access_keys = file.access_keys;
        match (args.access_key, args.secret_key) {
            (Some(access_key), Some(secret_key)) => access_keys.push(AccessKeyEntry {
                access_key,
                secret_key,
                projects: vec![project_id.clone()],
                role: Role::ReadWrite,
            }),
            (None, None) => {}
            _ => {
                return Err(ConfigError::new(
                    "--access-key and --secret-key go together",
                ))
            }
        }
        for t in &tokens {
            if t.token.len() < 16 {
                return Err(ConfigError::new(
                    "an admin token must be at least 16 characters",
                ));
            }
        }
        let mut trusted_proxies = args.trusted_proxies;
        for net in &file.trusted_proxies {
            trusted_proxies.push(
                net.parse()
                    .map_err(|e| ConfigError::new(format!("trusted_proxies: {e}")))?,
            );
        }
        let tls =
            |cert: Option<PathBuf>, key: Option<PathBuf>, file: Option<TlsFiles>| match (cert, key)
            {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => file,
            };
        Ok(Self {
            gateway_listen: args
                .gateway_listen
                .or(file.gateway_listen)
                .unwrap_or(([127, 0, 0, 1], 8080).into()),
            admin_listen: args
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or(([127, 0, 0, 1], 8081).into()),
            upstream: parse_upstream(&upstream)?,
            database: DatabaseUrl::parse(&database)?,
            instance_id: args
                .instance_id
                .or(file.instance_id)
                .unwrap_or_else(|| DEFAULT_INSTANCE_ID.into()),
            project_id,
            tokens,
            access_keys,
            master_key: match args.master_key.or(file.master_key) {
                // Checked here so that a malformed key is a usage error (exit 2) like any other
                // bad setting; the message names the rule, never the key.
                Some(text) => match crate::store::MasterKey::parse(&text) {
                    Ok(_) => Some(MasterKeyText(text)),
                    Err(e) => return Err(ConfigError::new(format!("--master-key: {e}"))),
                },
                None => None,
            },
            gateway_tls: tls(
                args.gateway_tls_cert,
                args.gateway_tls_key,
                file.gateway_tls,
            ),
            admin_tls: tls(args.admin_tls_cert, args.admin_tls_key, file.admin_tls),
            require_https: args.require_https || file.require_https.unwrap_or(false),
            trusted_proxies,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
            refresh_interval: Duration::from_secs(
                args.refresh_interval
                    .or(file.refresh_interval)
                    .unwrap_or(10)
                    .max(1),
            ),
            max_staleness: Duration::from_secs(
                args.max_staleness.or(file.max_staleness).unwrap_or(300),
            ),
            workers: match args.workers.or(file.workers) {
                Some(0) => return Err(ConfigError::new("--workers must be at least 1")),
                Some(n) => n,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
            gateway_limits,
        })
    }

    /// The management listener's deadlines and connection cap: the defaults, with a cap of its
    /// own so that the gateway's connections cannot take its descriptors.
    pub fn admin_limits(&self) -> Limits {
        Limits::default().max_connections(super::limits::default_max_connections().admin)
    }

    /// Whether any management credential is configured.
    pub fn has_credentials(&self) -> bool {
        !self.tokens.is_empty() || !self.access_keys.is_empty()
    }
}

/// The limit flags, kept apart so they can be merged over the file's.
struct LimitArgs {
    header_timeout: Option<u64>,
    keepalive_timeout: Option<u64>,
    body_timeout: Option<u64>,
    upstream_timeout: Option<u64>,
    max_connections: Option<usize>,
}

fn gateway_limits(args: &LimitArgs, file: &FileConfig) -> Result<Limits, ConfigError> {
    let secs = |flag: &str, v: Option<u64>| -> Result<Option<Duration>, ConfigError> {
        match v {
            Some(0) => Err(ConfigError::new(format!(
                "--{flag} must be at least 1 second"
            ))),
            v => Ok(v.map(Duration::from_secs)),
        }
    };
    let mut limits = Limits::default();
    if let Some(d) = secs(
        "header-timeout",
        args.header_timeout.or(file.header_timeout),
    )? {
        limits = limits.header_timeout(d);
    }
    if let Some(d) = secs(
        "keepalive-timeout",
        args.keepalive_timeout.or(file.keepalive_timeout),
    )? {
        limits = limits.keepalive_timeout(d);
    }
    if let Some(d) = secs("body-timeout", args.body_timeout.or(file.body_timeout))? {
        limits = limits.body_timeout(d);
    }
    if let Some(d) = secs(
        "upstream-timeout",
        args.upstream_timeout.or(file.upstream_timeout),
    )? {
        limits = limits.upstream_timeout(d);
    }
    match args.max_connections.or(file.max_connections) {
        Some(0) => return Err(ConfigError::new("--max-connections must be at least 1")),
        Some(n) => limits = limits.max_connections(n),
        None => {}
    }
    Ok(limits)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("reading {}: {e}", path.display())))?;
    // toml's message may quote the offending line, which may hold a secret: keep the position.
    toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        let line = text[..at.min(text.len())].lines().count().max(1);
        ConfigError::new(format!(
            "{}: invalid configuration near line {line}",
            path.display()
        ))
    })
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
    fn new(msg: impl Into<String>) -> Self {
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

    fn args(list: &[&str]) -> ServeArgs {
        let mut all = vec!["serve"];
        all.extend_from_slice(list);
        ServeArgs::try_parse_from(all).unwrap()
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apig.toml");
        std::fs::write(
            &path,
            r#"
upstream = "http://127.0.0.1:7000"
admin_listen = "127.0.0.1:9999"
instance_id = "from-file"
log_format = "json"
trusted_proxies = ["10.0.0.0/8"]
[[tokens]]
token = "read-only-token-0123456789"
projects = ["*"]
role = "read-only"
[[access_keys]]
access_key = "AK1"
secret_key = "sk-secret-from-file"
projects = ["p1"]
role = "read-write"
"#,
        )
        .unwrap();
        let cfg = Config::load(args(&[
            "--config",
            path.to_str().unwrap(),
            "--instance-id",
            "from-flag",
            "--admin-token",
            "flag-token-0123456789",
        ]))
        .unwrap();
        assert_eq!(cfg.instance_id, "from-flag");
        assert_eq!(cfg.admin_listen.port(), 9999);
        assert_eq!(cfg.upstream.as_str(), "127.0.0.1:7000");
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.tokens.len(), 2);
        assert_eq!(cfg.tokens[1].role, Role::ReadWrite);
        assert_eq!(cfg.tokens[1].projects, vec![DEFAULT_PROJECT_ID.to_string()]);
        assert_eq!(cfg.access_keys[0].projects, vec!["p1".to_string()]);
        assert_eq!(cfg.trusted_proxies.len(), 1);
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("sk-secret-from-file") && !shown.contains("flag-token"),
            "{shown}"
        );
    }

    #[test]
    fn clear_errors_for_bad_settings() {
        let bad = [
            (vec![], "--upstream is required"),
            (vec!["--upstream", "https://x:1"], "only http://"),
            (
                vec!["--upstream", "http://x:1/path"],
                "scheme, host and port",
            ),
            (
                vec!["--upstream", "http://x:1", "--database", "mysql://x"],
                "expected sqlite://PATH",
            ),
            (
                vec![
                    "--upstream",
                    "http://x:1",
                    "--master-key",
                    "short-key-not-hex",
                ],
                "--master-key",
            ),
            (
                vec!["--upstream", "http://x:1", "--access-key", "AK"],
                "go together",
            ),
            (
                vec!["--upstream", "http://x:1", "--admin-token", "short"],
                "at least 16",
            ),
        ];
        for (list, want) in bad {
            let err = Config::load(args(&list)).unwrap_err().to_string();
            assert!(err.contains(want), "{list:?}: {err}");
            assert!(!err.contains("short"), "a secret was echoed: {err}");
        }
    }

    #[test]
    fn postgres_urls_are_accepted_and_shown_without_password() {
        for (given, shown) in [
            (
                "postgres://apig:pa55@db.internal:5432/apig",
                "postgres://apig:***@db.internal:5432/apig",
            ),
            (
                "postgresql://apig@db/apig?password=pa55&application_name=n1",
                "postgresql://apig@db/apig?password=***&application_name=n1",
            ),
            ("postgres://db/apig", "postgres://db/apig"),
            // An unencoded '@' or '/' in the password: hidden up to the last '@'.
            (
                "postgres://apig:pa/5@5@db/apig",
                "postgres://apig:***@db/apig",
            ),
        ] {
            let url = DatabaseUrl::parse(given).unwrap();
            assert_eq!(url, DatabaseUrl::Postgres(given.to_owned()));
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), shown);
        }
        let cfg = Config::load(args(&[
            "--upstream",
            "http://x:1",
            "--database",
            "postgres://u:pa55word@h/d",
        ]))
        .unwrap();
        assert!(!format!("{cfg:?}").contains("pa55word"));
        let err = Config::load(args(&[
            "--upstream",
            "http://x:1",
            "--database",
            "mysql://u:pa55word@h/d",
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("postgres://") && !err.contains("pa55word"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_file_does_not_echo_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apig.toml");
        std::fs::write(
            &path,
            "upstream = \"http://x:1\"\n[[tokens]]\ntoken = \"s3cret-token-value\nrole=1",
        )
        .unwrap();
        let err = Config::load(args(&["--config", path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid configuration near line"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
