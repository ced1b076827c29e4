//! Percent-coding of paths and queries, strict where the SDK is: the one decoder of the admin
//! API (query parameters and the signature's canonical request) and the SDK's encoder.

use crate::hex;

/// Strict percent-decoding into UTF-8; `None` on a malformed escape or invalid UTF-8.
///
/// Lenient decoders keep a stray `%` or replace bad UTF-8, so distinct wire forms would decode
/// alike: a signature or a parameter could then mean two different requests.
pub(crate) fn decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    if !bytes.contains(&b'%') {
        return Some(input.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex::value)?;
            let lo = bytes.get(i + 2).copied().and_then(hex::value)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Python's `quote(s, safe='~')`: keep `A-Z a-z 0-9 - _ . ~`, escape each other UTF-8 byte
/// with upper-case hex.
pub(crate) fn encode_into(input: &str, out: &mut String) {
    for &b in input.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(hex::digit(b >> 4).to_ascii_uppercase()));
            out.push(char::from(hex::digit(b & 0x0f).to_ascii_uppercase()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode("plain+text").as_deref(), Some("plain+text"));
        assert_eq!(decode("%E5%BA%94%e7%94%a8%2F").as_deref(), Some("应用/"));
        for bad in ["%", "%2", "%zz", "%+1", "a%G1", "%ff%fe", "%C3"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn encoding_keeps_only_unreserved_bytes() {
        let mut out = String::new();
        encode_into("aZ09-_.~ /+é", &mut out);
        assert_eq!(out, "aZ09-_.~%20%2F%2B%C3%A9");
        let mut all = String::new();
        let text: String = (0u8..0x80).map(char::from).collect();
        encode_into(&text, &mut all);
        assert_eq!(decode(&all).as_deref(), Some(text.as_str()));
    }
}
