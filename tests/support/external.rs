//! What the tests that need a service of their own (PostgreSQL, Redis) share: the service's URL
//! from the environment or a skip, and a random tag that keeps each test's names apart.
//!
//! A test without its service prints that it was skipped and passes, unless `CI` is set: then
//! it fails, so CI cannot skip it silently.

#![allow(dead_code)]

use std::fmt::Display;

/// The URL in the variable `env`, or `None` after saying that `test` was skipped because it
/// needs `service` (a URL like `example`).
///
/// # Panics
///
/// When `CI` is set and `env` is not.
pub(crate) fn url_or_skip(env: &str, service: &str, example: &str, test: &str) -> Option<String> {
    match std::env::var(env) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => skip(
            format_args!("{test} needs {service}; set {env}={example} to run it"),
            format_args!("{test}: CI is set but {env} is not: {service} tests must run in CI"),
        ),
    }
}

/// `None`, after saying that the test is skipped and why (`skipped`).
///
/// # Panics
///
/// With `in_ci` when `CI` is set (to anything but `false`): CI runs every test.
pub(crate) fn skip<T>(skipped: impl Display, in_ci: impl Display) -> Option<T> {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(!ci, "{in_ci}");
    eprintln!("SKIPPED: {skipped}");
    None
}

/// Sixteen random lowercase hex digits.
pub(crate) fn random_tag() -> String {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}
