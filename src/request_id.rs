//! Request IDs: what APIG returns in `X-Request-Id` and in every error body.
//!
//! # Example
//!
//! ```
//! use apig_appcode::request_id::RequestId;
//! use http::HeaderValue;
//!
//! let fresh = RequestId::new();
//! assert_eq!(fresh.as_str().len(), 32);
//! let kept = RequestId::from_header(Some(&HeaderValue::from_static("trace-42")));
//! assert_eq!(kept.as_str(), "trace-42");
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};

use crate::hex;

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 64;

/// A request ID of 1 to 64 characters from `[A-Za-z0-9._-]`, held inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl RequestId {
    /// A fresh ID: 32 lowercase hex characters like APIG's. Unique within the process (a random
    /// prefix and a bijective scramble of a counter), without revealing how many requests the
    /// process has seen.
    #[allow(clippy::new_without_default)] // a fresh random ID is not a "default"
    pub fn new() -> Self {
        static KEYS: OnceLock<[u64; 2]> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let [prefix, key] = *KEYS.get_or_init(|| {
            let mut b = [0u8; 16];
            getrandom::fill(&mut b).expect("the OS random number generator failed");
            let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            [word(0), word(8)]
        });
        let n = scramble(COUNTER.fetch_add(1, Ordering::Relaxed) ^ key);
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&prefix.to_be_bytes());
        raw[8..].copy_from_slice(&n.to_be_bytes());
        let mut id = Self {
            len: 32,
            bytes: [0; MAX_LEN],
        };
        id.bytes[..32].copy_from_slice(&hex::encode16(&raw));
        id
    }

    /// The caller's own ID when it is plain (1 to 64 of `[A-Za-z0-9._-]`), else a fresh one, so
    /// a client's trace ID survives but nothing odd reaches a log or a JSON body.
    pub fn from_header(incoming: Option<&HeaderValue>) -> Self {
        incoming
            .and_then(|v| Self::parse(v.as_bytes()))
            .unwrap_or_else(Self::new)
    }

    /// `bytes` as an ID, if plain.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let plain = (1..=MAX_LEN).contains(&bytes.len())
            && bytes
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        plain.then(|| {
            let mut id = Self {
                len: bytes.len() as u8,
                bytes: [0; MAX_LEN],
            };
            id.bytes[..bytes.len()].copy_from_slice(bytes);
            id
        })
    }

    /// The ID's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The ID as a header value.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.bytes[..usize::from(self.len)])
            .expect("request IDs are valid header values")
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bijection on u64 (the SplitMix64 finaliser): distinct counters give distinct outputs.
fn scramble(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fresh_ids_are_unique_hex_and_not_sequential() {
        let ids: Vec<RequestId> = (0..10_000).map(|_| RequestId::new()).collect();
        let set: HashSet<&str> = ids.iter().map(RequestId::as_str).collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|id| id.as_str().len() == 32
            && id
                .as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())));
        let tail = |id: &RequestId| u64::from_str_radix(&id.as_str()[16..], 16).unwrap();
        assert_ne!(tail(&ids[1]), tail(&ids[0]) + 1, "IDs reveal a counter");
    }

    #[test]
    fn plain_incoming_ids_are_kept_and_others_replaced() {
        let keep = HeaderValue::from_static("req-1.2_3");
        assert_eq!(RequestId::from_header(Some(&keep)).as_str(), "req-1.2_3");
        for odd in ["\"},{\"x\":1", "a b", ""] {
            let v = HeaderValue::from_str(odd).unwrap();
            assert_ne!(RequestId::from_header(Some(&v)).as_str(), odd);
        }
        let long = HeaderValue::from_str(&"a".repeat(65)).unwrap();
        assert_eq!(RequestId::from_header(Some(&long)).as_str().len(), 32);
        assert_eq!(RequestId::parse(&[b'z'; 64]).unwrap().as_str().len(), 64);
    }

    #[test]
    fn scramble_is_a_bijection_on_a_sample() {
        let outs: HashSet<u64> = (0..100_000u64).map(scramble).collect();
        assert_eq!(outs.len(), 100_000);
    }
}
