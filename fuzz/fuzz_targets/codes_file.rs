//! `FileProvider`'s parser for its three formats (JSON, TOML, one code per line).
//!
//! Input: byte 0 picks the extension, the rest (as UTF-8, the file is read as a string) is the
//! file. Asserts: no panic, every code of a parsed snapshot is a valid AppCode, and an error
//! message never repeats an AppCode-looking token of the input (64 or more characters of the
//! AppCode alphabet), since such messages reach the logs.
#![no_main]

use std::path::Path;

use apig_appcode::__fuzz::parse_codes_file;
use apig_appcode::code::validate;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 4] = ["codes.json", "codes.toml", "codes.txt", "codes"];

fn appcode_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+_!@#$%-/=".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let [pick, rest @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let path = Path::new(NAMES[usize::from(*pick) % NAMES.len()]);
    match parse_codes_file(path, text) {
        Ok(snapshot) => {
            for (code, _) in &snapshot {
                assert!(validate(code.expose().as_bytes()).is_ok());
            }
        }
        Err(e) => {
            let message = format!("{e} {e:?}");
            let structured = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "toml")
            );
            // Matched as a prefix: an ID of the input can hold any text, ": malformed " too.
            let syntax = format!("provider data invalid: {}: malformed ", path.display());
            if structured && !message.starts_with(&syntax) {
                return;
            }
            for token in text.as_bytes().split(|&b| !appcode_byte(b)) {
                if token.len() >= 64 {
                    let token = std::str::from_utf8(token).unwrap();
                    assert!(
                        !message.contains(token),
                        "error repeats input token: {message}"
                    );
                }
            }
        }
    }
});
