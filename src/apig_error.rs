//! APIG's JSON error body, built in one place.
//!
//! # Example
//!
//! ```
//! use apig_appcode::apig_error;
//! use apig_appcode::request_id::RequestId;
//!
//! let id = RequestId::parse(b"r1").unwrap();
//! let body = apig_error::json("APIG.0201", "Backend unavailable", &id);
//! assert_eq!(&body[..], br#"{"error_code":"APIG.0201","error_msg":"Backend unavailable","request_id":"r1"}"#);
//! ```

use bytes::Bytes;

use crate::hex;
use crate::request_id::RequestId;

/// `{"error_code":..,"error_msg":..,"request_id":..}`, with the message escaped for JSON.
pub fn json(error_code: &str, error_msg: &str, request_id: &RequestId) -> Bytes {
    let mut out = Vec::with_capacity(48 + error_code.len() + error_msg.len() + 64);
    out.extend_from_slice(b"{\"error_code\":");
    push_str(&mut out, error_code);
    out.extend_from_slice(b",\"error_msg\":");
    push_str(&mut out, error_msg);
    out.extend_from_slice(b",\"request_id\":");
    push_str(&mut out, request_id.as_str());
    out.push(b'}');
    Bytes::from(out)
}

/// Appends `s` as a JSON string literal, copying runs that need no escaping in one piece.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'"' && b != b'\\' && b >= 0x20 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(hex::digit(b >> 4));
                out.push(hex::digit(b & 0xf));
            }
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_whatever_a_message_holds() {
        let id = RequestId::new();
        let msg = "quote \" slash \\ newline \n tab \t bell \u{7} ünï";
        let body = json("APIG.2012", msg, &id);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error_msg"], msg);
        assert_eq!(v["error_code"], "APIG.2012");
        assert_eq!(v["request_id"], id.as_str());
    }
}
