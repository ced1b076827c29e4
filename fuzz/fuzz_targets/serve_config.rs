//! The `apig-appcode serve` TOML file, parsed into the binary's own `FileConfig` (the binary's
//! `src/cli/file.rs`, compiled into the library under feature `fuzzing`).
//!
//! Input: the file (as UTF-8). Asserts: no panic, and an error message says only where (a
//! line) and, for a key the file does not know, that key's name: never a value, so no `token`,
//! `secret_key` or `master_key` of the input can leak into it.
#![no_main]

use apig_appcode::__fuzz::parse_serve_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(message) = parse_serve_config(text) {
        let what = message
            .strip_prefix("apig-appcode.toml: ")
            .unwrap_or_else(|| unexpected(&message));
        let line = if let Some(line) = what.strip_prefix("invalid configuration near line ") {
            line
        } else if let Some(rest) = what.strip_prefix("unknown key `") {
            let (key, line) = rest.split_once("` near line ").unwrap_or_else(|| unexpected(&message));
            // A name the file spells out as a key, not a value.
            assert!(!key.is_empty() && text.contains(key), "{message}");
            line
        } else {
            unexpected(&message)
        };
        assert!(
            !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()),
            "{message}"
        );
    }
});

fn unexpected(message: &str) -> ! {
    panic!("unexpected error shape: {message}")
}
