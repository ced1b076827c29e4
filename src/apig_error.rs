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

/// Appends `s` as a JSON string literal.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
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
