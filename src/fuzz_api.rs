//! Crate-private parsers of untrusted input, reachable from the cargo-fuzz targets in `fuzz/`
//! (feature `fuzzing`). Hidden from the documentation and outside any stability promise: the
//! public API stays what it is without the feature.

use std::fmt;
use std::path::Path;

use crate::provider::{ProviderError, Snapshot};
// Named by `cli/file.rs` as `super::SecretString` and `super::Role`, as in the binary.
use crate::admin::Role;
use crate::store::SecretString;

/// [`FileProvider`](crate::provider::FileProvider)'s parser: `path`'s extension picks JSON,
/// TOML or one code per line, as when the file is read.
pub fn parse_codes_file(path: &Path, text: &str) -> Result<Snapshot, ProviderError> {
    crate::provider::parse_file(path, text)
}

/// The `apig-appcode serve` TOML file parsed into the binary's own `FileConfig` (the same
/// source file, compiled here too because a binary crate cannot be linked by a fuzz target).
/// The error is the message the binary would print.
pub fn parse_serve_config(text: &str) -> Result<(), String> {
    serve_file::parse_text(Path::new("apig-appcode.toml"), text)
        .map(drop)
        .map_err(|e| e.to_string())
}

// The binary's `cli/file.rs`; only its parser is used here, so its fields are never read.
#[allow(dead_code)]
#[path = "cli/file.rs"]
mod serve_file;

/// Stands in for the binary's `cli::UsageError`, which `cli/file.rs` names as `super::UsageError`:
/// the same constructor and `Display`.
#[derive(Debug)]
struct UsageError(String);

impl UsageError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
