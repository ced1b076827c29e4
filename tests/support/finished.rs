//! A command of the tests run to its end, and the assertions on how it ended.

#![allow(dead_code, unreachable_pub)]

use std::process::ExitStatus;

/// A command run to its end: its exit code and what it printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    pub(crate) fn new(status: ExitStatus, stdout: String, stderr: String) -> Self {
        Self {
            code: status.code(),
            stdout,
            stderr,
        }
    }

    /// Asserts exit status 0, showing both streams otherwise; returns stdout.
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts exit status 1, one line on stderr holding `needle`, and nothing on stdout.
    pub(crate) fn failed(&self, needle: &str) {
        assert_eq!(self.code, Some(1), "stderr:\n{}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            self.stderr
        );
        assert_eq!(self.stderr.lines().count(), 1, "{}", self.stderr);
        assert!(self.stdout.is_empty(), "{}", self.stdout);
    }
}
