//! Structured logs on standard error: text or JSON lines, filtered like `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::config::LogFormat;

/// Installs the global subscriber. Fails on a filter that does not parse, or if one is set.
///
/// Every field the crate logs is safe to ship: AppCodes, tokens and secret keys are never
/// recorded.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("--log {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}
