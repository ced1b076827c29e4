//! The `apig-appcode serve` TOML file, parsed into the binary's own `FileConfig` (the binary's
//! `src/cli/file.rs`, compiled into the library under feature `fuzzing`).
//!
//! Input: the file (as UTF-8). Asserts: no panic, and an error message never repeats a
//! `token`, `secret_key` or `master_key` value of the input.
#![no_main]

use apig_appcode::__fuzz::parse_serve_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(message) = parse_serve_config(text) {
        // The message names the file and a line number only: no value can leak into it.
        let rest = message
            .strip_prefix("apig-appcode.toml: invalid configuration near line ")
            .unwrap_or_else(|| panic!("unexpected error shape: {message}"));
        assert!(rest.bytes().all(|b| b.is_ascii_digit()), "{message}");
    }
});
