//! `apig-appcode serve`'s configuration: flags ([`args`]), `APIG_*` environment variables and
//! an optional TOML file ([`file`]), merged in that order of precedence over the defaults of
//! [`Config::new`] into what the library runs with; and the management API client commands
//! (`apps`, `app-codes`: [`commands`] over [`client`]).

pub(crate) mod args;
pub(crate) mod client;
pub(crate) mod commands;
pub(crate) mod file;
pub(crate) mod import;
mod output;
pub(crate) mod quotas;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use apig_appcode::admin::{AccessKeyCredential, Permissions, Role, TokenCredential, MIN_TOKEN_LEN};
use apig_appcode::gateway::config::{parse_upstream, Config, DatabaseUrl, RateLimitStore};
use apig_appcode::gateway::limits::{Limits, MIN_HEADER_SIZE};
use apig_appcode::gateway::logging::LogFormat;
use apig_appcode::gateway::tls::TlsFiles;
use apig_appcode::layer::SIGNED_BODY_LIMIT;
use apig_appcode::store::{MasterKey, SecretString};

use self::args::ServeArgs;
use self::file::{FileConfig, TlsEntry};

/// A setting that cannot be used: exit status 2. The message names the setting, never a
/// secret, as the library's own configuration errors do: the binary's are of the same type.
pub(crate) use apig_appcode::gateway::config::ConfigError as UsageError;

/// What `serve` runs with: the library's configuration and how to log.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) log_format: LogFormat,
    pub(crate) log: String,
}

/// Merges `args` (flags and environment) over the TOML file it names, over the defaults.
pub(crate) fn load(args: ServeArgs) -> Result<Settings, UsageError> {
    let file = match &args.config {
        Some(path) => file::read_file(path)?,
        None => FileConfig::default(),
    };
    let verify_listen = listen(args.verify_listen, "verify_listen", &file.verify_listen)?;
    let upstream = args.upstream.clone().or(file.upstream.clone());
    let mut config = match (upstream, verify_listen) {
        (Some(upstream), _) => Config::new(parse_upstream(&upstream)?),
        (None, Some(verify)) => Config::auth_only(verify),
        (None, None) => {
            return Err(UsageError::new(
                "--upstream (APIG_UPSTREAM, `upstream` in the file) is required for the \
                 gateway; for auth-only mode without a gateway, give --verify-listen instead",
            ))
        }
    };
    config.verify_listen = verify_listen;
    if let Some(addr) = listen(args.gateway_listen, "gateway_listen", &file.gateway_listen)? {
        config.gateway_listen = addr;
    }
    if let Some(addr) = listen(args.admin_listen, "admin_listen", &file.admin_listen)? {
        config.admin_listen = addr;
    }
    if let Some(db) = args.database.clone().or(file.database.clone()) {
        config.database = DatabaseUrl::parse(&db)?;
    }
    if let Some(id) = args.instance_id.clone().or(file.instance_id.clone()) {
        config.instance_id = id;
    }
    if let Some(id) = args.project_id.clone().or(file.project_id.clone()) {
        config.project_id = id;
    }
    credentials(&args, &file, &mut config)?;
    // Parsed once, here, so that a malformed key is a usage error (exit 2) like any other bad
    // setting; the message names the rule, never the key.
    if let Some(text) = args.master_key.as_ref().or(file.master_key.as_ref()) {
        let key =
            MasterKey::parse(text).map_err(|e| UsageError::new(format!("--master-key: {e}")))?;
        config.master_key = Some(key);
    }
    let tls = |cert: &Option<PathBuf>, key: &Option<PathBuf>, file: &Option<TlsEntry>| match (
        cert, key,
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => file.as_ref().map(|f| TlsFiles {
            cert: f.cert.clone(),
            key: f.key.clone(),
        }),
    };
    config.gateway_tls = tls(
        &args.gateway_tls_cert,
        &args.gateway_tls_key,
        &file.gateway_tls,
    );
    config.admin_tls = tls(&args.admin_tls_cert, &args.admin_tls_key, &file.admin_tls);
    config.require_https = args.require_https || file.require_https.unwrap_or(false);
    if let Some(accepted) = args.app_auth {
        config.app_auth = accepted;
    } else if let Some(text) = &file.app_auth {
        config.app_auth = text
            .parse()
            .map_err(|e| UsageError::new(format!("app_auth: {e}")))?;
    }
    config.trusted_proxies = args.trusted_proxies.clone();
    for net in &file.trusted_proxies {
        let net = net
            .parse()
            .map_err(|e| UsageError::new(format!("trusted_proxies: {e}")))?;
        config.trusted_proxies.push(net);
    }
    if let Some(s) = args.refresh_interval.or(file.refresh_interval) {
        config.refresh_interval = Duration::from_secs(s.max(1));
    }
    if let Some(s) = args.store_timeout.or(file.store_timeout) {
        config.store_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(n) = args.change_log_retention.or(file.change_log_retention) {
        config.change_log_retention = n.max(1);
    }
    let anti_entropy = args.anti_entropy_interval.clone().or_else(|| {
        file.anti_entropy_interval
            .as_ref()
            .map(file::Interval::text)
    });
    if let Some(text) = anti_entropy {
        config.anti_entropy_interval = off_or_seconds(&text).ok_or_else(|| {
            UsageError::new(format!(
                "--anti-entropy-interval: not a number of seconds nor `off`: {text:?}"
            ))
        })?;
    }
    if let Some(s) = args.max_staleness.or(file.max_staleness) {
        config.max_staleness = Duration::from_secs(s);
    }
    match args.max_lookups.or(file.max_lookups) {
        Some(0) => return Err(UsageError::new("--max-lookups must be at least 1")),
        Some(n) => config.max_lookups = n,
        None => {}
    }
    match args.signed_body_memory.or(file.signed_body_memory) {
        Some(n) if n < SIGNED_BODY_LIMIT => {
            return Err(UsageError::new(format!(
                "--signed-body-memory must be at least {SIGNED_BODY_LIMIT} bytes (one signed \
                 body of the largest size)"
            )))
        }
        Some(n) => config.signed_body_memory = n,
        None => {}
    }
    match args.workers.or(file.workers) {
        Some(0) => return Err(UsageError::new("--workers must be at least 1")),
        Some(n) => config.workers = n,
        None => {}
    }
    config.gateway_limits = gateway_limits(&args, &file)?;
    rate_limits(&args, &file, &mut config)?;
    let log_format = match (args.log_format, &file.log_format) {
        (Some(f), _) => f,
        (None, Some(text)) => text
            .parse()
            .map_err(|e| UsageError::new(format!("log_format: {e}")))?,
        (None, None) => LogFormat::default(),
    };
    Ok(Settings {
        config,
        log_format,
        log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
    })
}

/// Tokens and AK/SK pairs from the file, then those of the flags (scoped to the project).
fn credentials(args: &ServeArgs, file: &FileConfig, config: &mut Config) -> Result<(), UsageError> {
    let permissions = |role: Role, projects: &[String]| {
        let p = Permissions::new(role);
        if projects.iter().any(|p| p == "*") {
            p
        } else {
            p.projects(projects.iter().cloned())
        }
    };
    let flag_scope = || Permissions::read_write().projects([config.project_id.clone()]);
    let mut tokens: Vec<(&str, Permissions)> = file
        .tokens
        .iter()
        .map(|t| (t.token.expose(), permissions(t.role, &t.projects)))
        .collect();
    if let Some(token) = &args.admin_token {
        tokens.push((token, flag_scope()));
    }
    if tokens.iter().any(|(t, _)| t.len() < MIN_TOKEN_LEN) {
        return Err(UsageError::new(format!(
            "an admin token must be at least {MIN_TOKEN_LEN} characters"
        )));
    }
    let scope = flag_scope();
    for (token, p) in tokens {
        config.tokens.push(TokenCredential::new(token, p));
    }
    for k in &file.access_keys {
        config.access_keys.push(AccessKeyCredential::new(
            k.access_key.clone(),
            k.secret_key.expose(),
            permissions(k.role, &k.projects),
        ));
    }
    match (&args.access_key, &args.secret_key) {
        (Some(ak), Some(sk)) => {
            config
                .access_keys
                .push(AccessKeyCredential::new(ak.clone(), sk.clone(), scope))
        }
        (None, None) => {}
        _ => return Err(UsageError::new("--access-key and --secret-key go together")),
    }
    Ok(())
}

/// The default rate limit (flag over file) and the file's per-app limits.
fn rate_limits(args: &ServeArgs, file: &FileConfig, config: &mut Config) -> Result<(), UsageError> {
    config.rate_limit = match (args.rate_limit, &file.rate_limit) {
        (Some(q), _) => Some(q),
        (None, Some(text)) => Some(
            text.parse()
                .map_err(|e| UsageError::new(format!("rate_limit: {e}")))?,
        ),
        (None, None) => None,
    };
    for (app, text) in &file.rate_limits {
        let quota = text
            .parse()
            .map_err(|e| UsageError::new(format!("rate_limits.{app}: {e}")))?;
        config.app_rate_limits.insert(app.clone(), quota);
    }
    if let Some(text) = args
        .rate_limit_store
        .as_ref()
        .or(file.rate_limit_store.as_ref())
    {
        config.rate_limit_store = RateLimitStore::parse(text)?;
    }
    if let Some(path) = args
        .rate_limit_store_ca
        .as_ref()
        .or(file.rate_limit_store_ca.as_ref())
    {
        let RateLimitStore::Redis(url) = &config.rate_limit_store else {
            return Err(UsageError::new(
                "--rate-limit-store-ca needs a rediss:// --rate-limit-store",
            ));
        };
        let pem = std::fs::read(path).map_err(|e| {
            UsageError::new(format!("--rate-limit-store-ca {}: {e}", path.display()))
        })?;
        let url = url
            .clone()
            .root_certificates(pem)
            .map_err(|e| UsageError::new(format!("--rate-limit-store-ca: {e}")))?;
        config.rate_limit_store = RateLimitStore::Redis(url);
    }
    match args
        .rate_limit_store_timeout_ms
        .or(file.rate_limit_store_timeout_ms)
    {
        Some(0) => {
            return Err(UsageError::new(
                "--rate-limit-store-timeout-ms must be at least 1",
            ))
        }
        Some(ms) => config.rate_limit_store_timeout = Duration::from_millis(ms),
        None => {}
    }
    if let Some(prefix) = args
        .rate_limit_store_prefix
        .clone()
        .or(file.rate_limit_store_prefix.clone())
    {
        config.rate_limit_store_prefix = prefix;
    }
    if let Some(n) = args.rate_limit_store_batch.or(file.rate_limit_store_batch) {
        config.rate_limit_store_batch = std::num::NonZeroU32::new(n)
            .ok_or_else(|| UsageError::new("--rate-limit-store-batch must be at least 1"))?;
    }
    Ok(())
}

/// The gateway's deadlines, header size and connection cap: flags over the file over
/// [`Limits::default`].
fn gateway_limits(args: &ServeArgs, file: &FileConfig) -> Result<Limits, UsageError> {
    type Set = fn(Limits, Duration) -> Limits;
    let deadlines: [(&str, Option<u64>, Set); 5] = [
        (
            "header-timeout",
            args.header_timeout.or(file.header_timeout),
            Limits::header_timeout,
        ),
        (
            "keepalive-timeout",
            args.keepalive_timeout.or(file.keepalive_timeout),
            Limits::keepalive_timeout,
        ),
        (
            "body-timeout",
            args.body_timeout.or(file.body_timeout),
            Limits::body_timeout,
        ),
        (
            "upstream-timeout",
            args.upstream_timeout.or(file.upstream_timeout),
            Limits::upstream_timeout,
        ),
        (
            "send-timeout",
            args.send_timeout.or(file.send_timeout),
            Limits::send_timeout,
        ),
    ];
    let mut limits = Limits::default();
    for (flag, seconds, set) in deadlines {
        match seconds {
            Some(0) => {
                return Err(UsageError::new(format!(
                    "--{flag} must be at least 1 second"
                )))
            }
            Some(s) => limits = set(limits, Duration::from_secs(s)),
            None => {}
        }
    }
    match args.max_header_size.or(file.max_header_size) {
        Some(n) if n < MIN_HEADER_SIZE => {
            return Err(UsageError::new(format!(
                "--max-header-size must be at least {MIN_HEADER_SIZE} bytes"
            )))
        }
        Some(n) => limits = limits.max_header_size(n),
        None => {}
    }
    match args.max_connections.or(file.max_connections) {
        Some(0) => return Err(UsageError::new("--max-connections must be at least 1")),
        Some(n) => limits = limits.max_connections(n),
        None => {}
    }
    Ok(limits)
}

/// A listener's address: the flag's (parsed by clap), else the file's `key`, if either is set.
fn listen(
    flag: Option<SocketAddr>,
    key: &str,
    file: &Option<String>,
) -> Result<Option<SocketAddr>, UsageError> {
    if flag.is_some() {
        return Ok(flag);
    }
    file.as_deref()
        .map(args::listen_addr)
        .transpose()
        .map_err(|e| UsageError::new(format!("{key}: {e}")))
}

/// A period given as seconds or `off`: `None` if it is neither, `Some(None)` when off (or 0).
fn off_or_seconds(text: &str) -> Option<Option<Duration>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    let seconds: u64 = text.parse().ok()?;
    Some((seconds > 0).then(|| Duration::from_secs(seconds)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use apig_appcode::admin::Role;
    use apig_appcode::gateway::config::DEFAULT_PROJECT_ID;
    use clap::Parser;

    use super::*;

    fn args(list: &[&str]) -> ServeArgs {
        let mut all = vec!["serve"];
        all.extend_from_slice(list);
        ServeArgs::try_parse_from(all).unwrap()
    }

    /// The configuration `serve` with these flags runs with.
    fn config(list: &[&str]) -> Config {
        load(args(list)).unwrap().config
    }

    /// What `serve` with these flags says instead of starting.
    fn usage_error(list: &[&str]) -> String {
        load(args(list)).unwrap_err().to_string()
    }

    /// An `apig.toml` for `--config`, in a directory removed when the test ends.
    struct TomlFile {
        dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl TomlFile {
        fn new(text: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let file = Self {
                path: dir.path().join("apig.toml"),
                dir,
            };
            file.write(text);
            file
        }

        fn write(&self, text: &str) {
            std::fs::write(&self.path, text).unwrap();
        }

        fn path(&self) -> &str {
            self.path.to_str().unwrap()
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file = TomlFile::new(
            r#"
upstream = "http://127.0.0.1:7000"
admin_listen = "127.0.0.1:9999"
verify_listen = "127.0.0.1:9998"
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
        );
        let cfg = load(args(&[
            "--config",
            file.path(),
            "--instance-id",
            "from-flag",
            "--admin-token",
            "flag-token-0123456789",
        ]))
        .unwrap();
        assert_eq!(cfg.log_format, LogFormat::Json);
        let cfg = cfg.config;
        assert_eq!(cfg.instance_id, "from-flag");
        assert_eq!(cfg.admin_listen.port(), 9999);
        assert_eq!(cfg.verify_listen.map(|a| a.port()), Some(9998));
        assert_eq!(cfg.upstream.as_ref().unwrap().as_str(), "127.0.0.1:7000");
        assert_eq!(cfg.tokens.len(), 2);
        let file_token = cfg.tokens[0].permissions();
        assert_eq!(file_token.role(), Role::ReadOnly);
        assert!(file_token.allows("any-project", Role::ReadOnly));
        let flag_token = cfg.tokens[1].permissions();
        assert_eq!(flag_token.role(), Role::ReadWrite);
        assert!(flag_token.allows(DEFAULT_PROJECT_ID, Role::ReadWrite));
        assert!(!flag_token.allows("p1", Role::ReadOnly));
        let key = cfg.access_keys[0].permissions();
        assert!(key.allows("p1", Role::ReadWrite) && !key.allows("p2", Role::ReadOnly));
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
            (
                vec![],
                "--upstream (APIG_UPSTREAM, `upstream` in the file) is required",
            ),
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
            let err = usage_error(&list);
            assert!(err.contains(want), "{list:?}: {err}");
            assert!(!err.contains("short"), "a secret was echoed: {err}");
        }
    }

    #[test]
    fn a_verify_listener_without_an_upstream_is_auth_only_mode() {
        let cfg = config(&["--verify-listen", "127.0.0.1:8082"]);
        assert!(cfg.upstream.is_none());
        assert_eq!(cfg.verify_listen.map(|a| a.port()), Some(8082));

        let file = TomlFile::new("verify_listen = \"[::1]:8082\"\n");
        let cfg = config(&["--config", file.path()]);
        assert!(cfg.upstream.is_none());
        assert_eq!(cfg.verify_listen, Some("[::1]:8082".parse().unwrap()));
        file.write("verify_listen = \"localhost:8082\"\n");
        let err = usage_error(&["--config", file.path()]);
        assert!(
            err.starts_with("verify_listen: expects an IP address and port"),
            "{err}"
        );
    }

    #[test]
    fn the_anti_entropy_interval_is_seconds_or_off_from_a_flag_or_the_file() {
        let interval = |list: &[&str]| {
            let mut all = vec!["--upstream", "http://x:1"];
            all.extend_from_slice(list);
            load(args(&all)).map(|c| c.config.anti_entropy_interval)
        };
        assert_eq!(interval(&[]).unwrap(), Some(Duration::from_secs(300)));
        let flag = ["--anti-entropy-interval", "60"];
        assert_eq!(interval(&flag).unwrap(), Some(Duration::from_secs(60)));
        for off in ["off", "OFF", "0"] {
            let flag = ["--anti-entropy-interval", off];
            assert_eq!(interval(&flag).unwrap(), None, "{off}");
        }
        let err = interval(&["--anti-entropy-interval", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--anti-entropy-interval"), "{err}");

        let file = TomlFile::new("");
        for (line, expected) in [
            ("anti_entropy_interval = 30", Some(Duration::from_secs(30))),
            ("anti_entropy_interval = \"off\"", None),
        ] {
            file.write(line);
            let from_file = interval(&["--config", file.path()]).unwrap();
            assert_eq!(from_file, expected, "{line}");
        }
        // The flag wins over the file.
        let both = interval(&["--config", file.path(), "--anti-entropy-interval", "7"]);
        assert_eq!(both.unwrap(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn data_plane_settings_come_from_flags_or_the_file() {
        let file = TomlFile::new(
            "upstream = \"http://x:1\"\nworkers = 3\nbody_timeout = 7\nmax_connections = 50\n\
             max_header_size = 9000\nsend_timeout = 11\n",
        );
        let cfg = config(&["--config", file.path(), "--header-timeout", "4"]);
        assert_eq!(cfg.workers, 3);
        let expected = Limits::default()
            .header_timeout(Duration::from_secs(4))
            .body_timeout(Duration::from_secs(7))
            .send_timeout(Duration::from_secs(11))
            .max_header_size(9000)
            .max_connections(50);
        assert_eq!(cfg.gateway_limits, expected);
        // The flag wins over the file.
        let args = ["--config", file.path(), "--header-timeout", "4"];
        let flag = config(&[&args[..], &["--max-header-size", "65536"]].concat());
        assert_eq!(flag.gateway_limits, expected.max_header_size(65536));
        for bad in [
            ["--workers", "0"],
            ["--body-timeout", "0"],
            ["--send-timeout", "0"],
            ["--max-connections", "0"],
            ["--max-header-size", "8191"],
        ] {
            let mut list = vec!["--upstream", "http://x:1"];
            list.extend(bad);
            let err = usage_error(&list);
            assert!(err.contains(bad[0]), "{err}");
        }
    }

    #[test]
    fn app_auth_comes_from_the_flag_or_the_file() {
        use apig_appcode::layer::AppAuth;

        let none = config(&["--upstream", "http://x:1"]);
        assert_eq!(none.app_auth, AppAuth::AppCode);
        let file = TomlFile::new("upstream = \"http://x:1\"\napp_auth = \"appcode,signature\"\n");
        let p = file.path();
        let cfg = config(&["--config", p]);
        assert_eq!(cfg.app_auth, AppAuth::AppCodeOrSignature);
        let cfg = config(&["--config", p, "--app-auth", "signature"]);
        assert_eq!(cfg.app_auth, AppAuth::Signature);
        file.write("upstream = \"http://x:1\"\napp_auth = \"token\"\n");
        let err = usage_error(&["--config", p]);
        assert!(err.contains("app_auth"), "{err}");
    }

    #[test]
    fn store_settings_come_from_flags_or_the_file() {
        let defaults = config(&["--upstream", "http://x:1"]);
        assert_eq!(defaults.store_timeout, Duration::from_secs(5));
        assert_eq!(
            defaults.change_log_retention,
            apig_appcode::store::CHANGE_LOG_RETENTION
        );
        let file = TomlFile::new(
            "upstream = \"http://x:1\"\nstore_timeout = 7\nchange_log_retention = 50\n",
        );
        let cfg = config(&["--config", file.path(), "--change-log-retention", "100"]);
        assert_eq!(cfg.store_timeout, Duration::from_secs(7));
        assert_eq!(cfg.change_log_retention, 100);
    }

    #[test]
    fn the_lookup_limit_and_the_signed_body_memory_come_from_the_flag_or_the_file() {
        type Get = fn(&Config) -> usize;
        // Flag, its default, a file's value, a flag's value, a value refused, what reads it.
        let cases: [(&str, usize, usize, usize, &str, Get); 2] = [
            (
                "max-lookups",
                apig_appcode::layer::DEFAULT_MAX_LOOKUPS,
                64,
                8,
                "0",
                |c| c.max_lookups,
            ),
            (
                "signed-body-memory",
                apig_appcode::layer::DEFAULT_MAX_HELD_BODIES,
                100_000_000,
                50_000_000,
                "1000",
                |c| c.signed_body_memory,
            ),
        ];
        for (flag, default, in_file, in_flag, bad, get) in cases {
            assert_eq!(
                get(&config(&["--upstream", "http://x:1"])),
                default,
                "{flag}"
            );
            let key = flag.replace('-', "_");
            let file = TomlFile::new(&format!("upstream = \"http://x:1\"\n{key} = {in_file}\n"));
            let p = file.path();
            assert_eq!(get(&config(&["--config", p])), in_file, "{flag}");
            let option = format!("--{flag}");
            let both = config(&["--config", p, &option, &in_flag.to_string()]);
            assert_eq!(get(&both), in_flag, "{flag}");
            let err = usage_error(&["--config", p, &option, bad]);
            assert!(err.contains(&option), "{err}");
        }
    }

    #[test]
    fn rate_limits_from_the_flag_and_the_file() {
        use apig_appcode::throttle::Quota;

        let file = TomlFile::new(
            "upstream = \"http://x:1\"\nrate_limit = \"5/s\"\n[rate_limits]\n\"app-1\" = \"100/s\"\nslow = \"1/m\"\n",
        );
        let p = file.path();
        let cfg = config(&["--config", p]);
        assert_eq!(cfg.rate_limit, Some(Quota::per_second(5).unwrap()));
        assert_eq!(
            cfg.app_rate_limits["app-1"],
            Quota::per_second(100).unwrap()
        );
        assert_eq!(cfg.app_rate_limits["slow"].to_string(), "1/m");
        let cfg = config(&["--config", p, "--rate-limit", "2/s"]);
        assert_eq!(cfg.rate_limit, Some(Quota::per_second(2).unwrap()));
        let none = config(&["--upstream", "http://x:1"]);
        assert!(none.rate_limit.is_none() && !none.throttle_layer().is_active());

        file.write("upstream = \"http://x:1\"\n[rate_limits]\nx = \"0/s\"\n");
        let err = usage_error(&["--config", p]);
        assert!(err.contains("rate_limits.x"), "{err}");

        assert_eq!(none.rate_limit_store, RateLimitStore::Local);
        assert_eq!(none.rate_limit_store_timeout, Duration::from_millis(50));
        file.write(
            "upstream = \"http://x:1\"\nrate_limit_store = \"redis://:pa55word@cache:6380/2\"\nrate_limit_store_timeout_ms = 20\nrate_limit_store_prefix = \"test:\"\n",
        );
        let cfg = config(&["--config", p]);
        assert_eq!(
            cfg.rate_limit_store.to_string(),
            "redis://:***@cache:6380/2"
        );
        assert_eq!(cfg.rate_limit_store_timeout, Duration::from_millis(20));
        assert_eq!(cfg.rate_limit_store_prefix, "test:");
        assert_eq!(cfg.rate_limit_store_batch.get(), 1);
        let cfg = config(&["--config", p, "--rate-limit-store-batch", "8"]);
        assert_eq!(cfg.rate_limit_store_batch.get(), 8);
        let err = usage_error(&["--config", p, "--rate-limit-store-batch", "0"]);
        assert!(err.contains("--rate-limit-store-batch"), "{err}");
        let cfg = config(&[
            "--config",
            p,
            "--rate-limit-store",
            "local",
            "--rate-limit-store-timeout-ms",
            "5",
        ]);
        assert_eq!(cfg.rate_limit_store, RateLimitStore::Local);
        assert_eq!(cfg.rate_limit_store_timeout, Duration::from_millis(5));
        for (bad, want) in [
            ("redis://:pa55word@cache:port/0", "--rate-limit-store"),
            ("memcached://:pa55word@cache", "--rate-limit-store"),
        ] {
            let err = usage_error(&["--upstream", "http://x:1", "--rate-limit-store", bad]);
            assert!(err.contains(want) && !err.contains("pa55word"), "{err}");
        }
        let err = usage_error(&[
            "--upstream",
            "http://x:1",
            "--rate-limit-store-timeout-ms",
            "0",
        ]);
        assert!(err.contains("--rate-limit-store-timeout-ms"), "{err}");

        let ca = file.dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let ca = ca.to_str().unwrap();
        let store = |url: &str| {
            load(args(&[
                "--upstream",
                "http://x:1",
                "--rate-limit-store",
                url,
                "--rate-limit-store-ca",
                ca,
            ]))
        };
        assert!(store("rediss://cache:6380").is_ok());
        let err = store("redis://cache:6379").unwrap_err().to_string();
        assert!(err.contains("rediss://"), "{err}");
        let err = usage_error(&["--upstream", "http://x:1", "--rate-limit-store-ca", ca]);
        assert!(err.contains("--rate-limit-store-ca"), "{err}");
        assert!(ServeArgs::try_parse_from(["serve", "--rate-limit", "fast"]).is_err());
    }

    #[test]
    fn a_broken_file_does_not_echo_its_content() {
        let file = TomlFile::new(
            "upstream = \"http://x:1\"\n[[tokens]]\ntoken = \"s3cret-token-value\nrole=1",
        );
        let err = usage_error(&["--config", file.path()]);
        assert!(err.contains("invalid configuration near line 3"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_misspelt_key_is_named_with_its_line() {
        let file = TomlFile::new("upstream = \"http://x:1\"\nrate_limt = \"10/s\"\n");
        let err = usage_error(&["--config", file.path()]);
        assert!(err.contains("unknown key `rate_limt` near line 2"), "{err}");
    }
}
