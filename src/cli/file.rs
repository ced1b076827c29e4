//! The TOML file of `apig-appcode serve`. Every field is optional; flags and environment win
//! over it. Errors give the line, never the text, which may hold a secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::{Role, SecretString, UsageError};

/// A credential as written in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenEntry {
    /// The `X-Auth-Token` value.
    #[serde(deserialize_with = "secret")]
    pub(crate) token: SecretString,
    /// Projects it may act on; `["*"]` for all.
    pub(crate) projects: Vec<String>,
    /// What it may do.
    pub(crate) role: Role,
}

/// An AK/SK credential as written in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessKeyEntry {
    /// The access key (AK).
    pub(crate) access_key: String,
    /// The secret key (SK).
    #[serde(deserialize_with = "secret")]
    pub(crate) secret_key: SecretString,
    /// Projects it may act on; `["*"]` for all.
    pub(crate) projects: Vec<String>,
    /// What it may do.
    pub(crate) role: Role,
}

/// Reads a secret straight into the type that keeps it out of `Debug` and zeroes it.
fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::new)
}

/// A certificate chain and key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsEntry {
    /// Certificate chain.
    pub(crate) cert: PathBuf,
    /// Private key.
    pub(crate) key: PathBuf,
}

/// The TOML file. Every field is optional; flags and environment win over it.
// No `Debug`: the master key is here in clear.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    // Text, parsed by `load`: the parser's message (an IP address is needed, not a host name)
    // would be lost in this file's position-only errors.
    pub(crate) gateway_listen: Option<String>,
    pub(crate) admin_listen: Option<String>,
    pub(crate) verify_listen: Option<String>,
    pub(crate) upstream: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) master_key: Option<String>,
    pub(crate) require_https: Option<bool>,
    pub(crate) app_auth: Option<String>,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) log_format: Option<String>,
    pub(crate) log: Option<String>,
    pub(crate) refresh_interval: Option<u64>,
    pub(crate) store_timeout: Option<u64>,
    pub(crate) change_log_retention: Option<u64>,
    pub(crate) max_staleness: Option<u64>,
    pub(crate) max_lookups: Option<usize>,
    pub(crate) signed_body_memory: Option<usize>,
    pub(crate) anti_entropy_interval: Option<Interval>,
    pub(crate) workers: Option<usize>,
    pub(crate) header_timeout: Option<u64>,
    pub(crate) keepalive_timeout: Option<u64>,
    pub(crate) body_timeout: Option<u64>,
    pub(crate) upstream_timeout: Option<u64>,
    pub(crate) send_timeout: Option<u64>,
    pub(crate) max_header_size: Option<usize>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) gateway_tls: Option<TlsEntry>,
    pub(crate) admin_tls: Option<TlsEntry>,
    #[serde(default)]
    pub(crate) tokens: Vec<TokenEntry>,
    #[serde(default)]
    pub(crate) access_keys: Vec<AccessKeyEntry>,
    /// `rate_limit = "100/s"`: every app's limit (the `--rate-limit` flag wins over it).
    pub(crate) rate_limit: Option<String>,
    /// `[rate_limits]` `"app-id" = "10/s"`: per-app limits, above or below `rate_limit`.
    #[serde(default)]
    pub(crate) rate_limits: BTreeMap<String, String>,
    /// `rate_limit_store = "redis://…"`: `local` or a Redis shared by the nodes.
    pub(crate) rate_limit_store: Option<String>,
    pub(crate) rate_limit_store_ca: Option<PathBuf>,
    pub(crate) rate_limit_store_timeout_ms: Option<u64>,
    pub(crate) rate_limit_store_prefix: Option<String>,
    pub(crate) rate_limit_store_batch: Option<u32>,
}

pub(crate) fn read_file(path: &Path) -> Result<FileConfig, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::new(format!("reading {}: {e}", path.display())))?;
    parse_text(path, &text)
}

/// Parses the file's `text`; `path` only names it in the error. Apart from `read_file` so that
/// the fuzz target (feature `fuzzing`) reaches it without touching the file system.
pub(crate) fn parse_text(path: &Path, text: &str) -> Result<FileConfig, UsageError> {
    // toml's message may quote the offending value, which may be a secret: keep the position,
    // and the name of a key the file does not know (a name is no secret).
    toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        let mut line = line_of(text, at);
        let unknown = e
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .filter(|key| !key.is_empty());
        let what = match unknown {
            Some(key) => {
                // The span of an unknown key may be its whole table: find the key's own line.
                if let Some(own) = key_line(text, key) {
                    line = own;
                }
                format!("unknown key `{key}`")
            }
            None => "invalid configuration".to_owned(),
        };
        UsageError::new(format!("{}: {what} near line {line}", path.display()))
    })
}

/// The line (from 1) of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The first line (from 1) that sets `key`.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// A period in the file: seconds, or a word (`off`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Interval {
    Seconds(u64),
    Text(String),
}

impl Interval {
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Seconds(n) => n.to_string(),
            Self::Text(t) => t.clone(),
        }
    }
}
