//! APIG's JSON error body, built in one place, and the [`code`]s this crate answers with.
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

/// The APIG error codes this crate answers with, named for what they mean, as Huawei's error
/// code tables list them. Every answer takes its code from here.
///
/// ```
/// use apig_appcode::apig_error::code;
///
/// assert_eq!(code::APP_AUTH_FAILED, "APIG.0303");
/// ```
pub mod code {
    // The gateway (APIG's gateway table).

    /// `404`/`405`: no API answers this path or method.
    pub const NO_SUCH_API: &str = "APIG.0101";
    /// `400`/`413`/`414`/`494` a bad or too large request, and `502`/`504` a backend that is
    /// unreachable or too slow.
    pub const BAD_REQUEST: &str = "APIG.0201";
    /// `503`: the backend is unavailable (for the layer: no usable set of AppCodes; for the
    /// management API: a store that does not answer).
    pub const BACKEND_UNAVAILABLE: &str = "APIG.0202";
    /// `401`: a missing or wrong AppCode.
    pub const APP_AUTH_FAILED: &str = "APIG.0303";
    /// `403`: the app may not call this API.
    pub const APP_NOT_AUTHORIZED: &str = "APIG.0304";
    /// `429`: the app's rate limit was reached.
    pub const THROTTLED: &str = "APIG.0308";
    /// `403`: the client's address could not be told (an app ACL applies, and a trusted
    /// proxy's `X-Forwarded-For` holds something that is not an address).
    pub const UNKNOWN_CLIENT_IP: &str = "APIG.0401";
    /// `403`: the app's ACL refuses the client's address.
    pub const IP_NOT_AUTHORIZED: &str = "APIG.0402";
    /// `405` (as Huawei documents it): the app's quota for the current period is used up.
    pub const APP_QUOTA_EXHAUSTED: &str = "APIG.0501";
    /// `400`: plain HTTP where only HTTPS is allowed.
    pub const HTTPS_REQUIRED: &str = "APIG.0607";

    // The management API (APIG's management table).

    /// `401`: neither a token nor a signature.
    pub const NO_CREDENTIALS: &str = "APIG.1000";
    /// `401`: a token or signature that does not verify.
    pub const INCORRECT_CREDENTIALS: &str = "APIG.1002";
    /// `403`: authenticated, but not for this project or method.
    pub const NO_PERMISSION: &str = "APIG.1005";
    /// `400`: a parameter breaks its documented rule.
    pub const INVALID_PARAMETER: &str = "APIG.2012";
    /// `404`: no such app.
    pub const APP_NOT_FOUND: &str = "APIG.3004";
    /// `404`: no such gateway instance.
    pub const INSTANCE_NOT_FOUND: &str = "APIG.3030";
    /// `404`: no such AppCode.
    pub const APP_CODE_NOT_FOUND: &str = "APIG.3082";
    /// `403`: the app holds its quota of AppCodes.
    pub const APP_CODE_QUOTA_EXCEEDED: &str = "APIG.3131";
    /// An app quota that does not exist.
    pub const APP_QUOTA_NOT_FOUND: &str = "APIG.3093";
    /// `400`: an app of this name exists.
    pub const APP_NAME_EXISTS: &str = "APIG.3203";
    /// `400`: an app with this app key exists.
    pub const APP_KEY_EXISTS: &str = "APIG.3310";
    /// `400`: an AppCode with this value exists in the instance. The tables document no code
    /// for this; it is the next free code of the "already exists" family.
    pub const APP_CODE_EXISTS: &str = "APIG.3311";
    /// An app quota name already used in the instance.
    pub const APP_QUOTA_NAME_EXISTS: &str = "APIG.3325";
    /// Binding an app that another app quota holds: APIG documents no code for it; one of the
    /// family of 3325 (the README says so).
    pub const APP_HAS_QUOTA: &str = "APIG.3326";
    /// `500`: anything else; the detail is logged, never sent.
    pub const SYSTEM_ERROR: &str = "APIG.9999";
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
