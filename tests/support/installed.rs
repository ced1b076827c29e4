//! Programs a test runs when they are installed (promtool, nginx, caddy): found, or the test
//! skipped, saying so, unless `CI` is set (to anything but empty or `false`): then it fails,
//! so CI cannot skip it silently.

use std::path::PathBuf;

#[path = "external.rs"]
mod external;

/// The program `name`, from `PATH` or the directories `also` (which a `PATH` may lack), or
/// `None` after saying that the test is skipped and how to install it (`install`).
///
/// # Panics
///
/// When `CI` is set (not empty, not `false`) and the program is not installed.
pub(crate) fn installed_or_skip(name: &str, also: &[&str], install: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(also.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    found.or_else(|| {
        external::skip(
            format_args!("{name} is not installed ({install}); CI runs this test"),
            format_args!("{name} is not installed; CI must run this test (see .ci/run)"),
        )
    })
}
