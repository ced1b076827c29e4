//! A digest of which AppCodes a cache or a store holds: what the anti-entropy check compares.
//!
//! It is the number of codes and the sum (modulo 2^64) of one 64-bit hash per code:
//! `hashtextextended(app_code_id, hashtextextended(app_id, 0))` in PostgreSQL's terms, the
//! 64-bit variant of its built-in hash of text (Bob Jenkins' lookup3, ported in [`pg_hash`]).
//! PostgreSQL computes it in SQL at a fraction of the cost of a cryptographic hash (BENCHMARKS.md);
//! it needs no secrecy, since it names IDs only, never an AppCode value or a secret. A sum does
//! not depend on the order of the codes, so a store computes it in any order, and a cache keeps
//! it up to date as codes come and go, without a pass over its entries.
//!
//! ```
//! use apig_appcode::provider::CodesDigest;
//!
//! let mut a = CodesDigest::default();
//! a.add("app-1", "code-1");
//! a.add("app-1", "code-2");
//! let mut b = CodesDigest::default();
//! b.add("app-1", "code-2");
//! b.add("app-1", "code-1");
//! assert_eq!(a, b);
//! b.remove("app-1", "code-1");
//! assert_ne!(a, b);
//! ```

/// Which codes are held, summarised: how many, and the sum of their hashes (see
/// [`CodesDigest::hash`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodesDigest {
    /// How many codes.
    pub count: u64,
    /// The sum of their hashes, modulo 2^64.
    pub sum: u64,
}

impl CodesDigest {
    /// The hash of one code.
    pub fn hash(app_id: &str, app_code_id: &str) -> u64 {
        pg_hash(app_code_id.as_bytes(), pg_hash(app_id.as_bytes(), 0))
    }

    /// Counts one code in.
    pub fn add(&mut self, app_id: &str, app_code_id: &str) {
        self.add_hash(Self::hash(app_id, app_code_id));
    }

    /// Counts one code out.
    pub fn remove(&mut self, app_id: &str, app_code_id: &str) {
        self.remove_hash(Self::hash(app_id, app_code_id));
    }

    pub(crate) fn add_hash(&mut self, hash: u64) {
        self.count = self.count.wrapping_add(1);
        self.sum = self.sum.wrapping_add(hash);
    }

    pub(crate) fn remove_hash(&mut self, hash: u64) {
        self.count = self.count.wrapping_sub(1);
        self.sum = self.sum.wrapping_sub(hash);
    }

    /// Counts in every code `other` counts.
    pub(crate) fn add_all(&mut self, other: &Self) {
        self.count = self.count.wrapping_add(other.count);
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// Counts out every code `other` counts.
    pub(crate) fn remove_all(&mut self, other: &Self) {
        self.count = self.count.wrapping_sub(other.count);
        self.sum = self.sum.wrapping_sub(other.sum);
    }
}

/// A provider's digest of an instance's codes as of one of its revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionDigest {
    /// The revision the digest reflects (see
    /// [`AppCodeProvider::revisioned_snapshot`](super::AppCodeProvider::revisioned_snapshot)).
    pub revision: u64,
    /// The codes at that revision.
    pub codes: CodesDigest,
}

/// PostgreSQL's `hash_bytes_extended` (`src/common/hashfn.c`), which `hashtextextended` applies
/// to a text's bytes, as a little-endian server computes it.
fn pg_hash(key: &[u8], seed: u64) -> u64 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }
    fn last(a: &mut u32, b: &mut u32, c: &mut u32) {
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(14));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(11));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(25));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(16));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(4));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(14));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(24));
    }
    // PostgreSQL takes the length as a C `int`, 32 bits.
    let start = 0x9e37_79b9_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (start, start, start);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    let word = |bytes: &[u8]| {
        let mut w = [0u8; 4];
        w[..bytes.len()].copy_from_slice(bytes);
        u32::from_le_bytes(w)
    };
    let mut rest = key;
    while rest.len() >= 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    // The last 11 bytes at most: `c`'s lowest byte is left for nothing (the length went into
    // the start), as in PostgreSQL.
    let n = rest.len();
    a = a.wrapping_add(word(&rest[..n.min(4)]));
    if n > 4 {
        b = b.wrapping_add(word(&rest[4..n.min(8)]));
    }
    if n > 8 {
        c = c.wrapping_add(word(&rest[8..n]) << 8);
    }
    last(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_postgresqls_hashtextextended() {
        // `SELECT hashtextextended(t, s)` on PostgreSQL 15 (x86-64), as unsigned.
        let known: [(&str, u64, i64); 7] = [
            ("", 0, -6939563903564495251),
            ("a", 0, 3591986179850072241),
            ("0123456789abcdef0123456789abcdef", 0, 4476546233601355488),
            ("0123456789abcdef0123456789abcdef", 42, 8443710513238411653),
            ("abcdefghijk", 0, 3112909444737856467),
            ("abcdefghi", 0, -3278210106038014113),
            ("abcde", 7, -2496737214044990496),
        ];
        for (text, seed, expected) in known {
            assert_eq!(
                pg_hash(text.as_bytes(), seed) as i64,
                expected,
                "{text:?} {seed}"
            );
        }
        assert_ne!(CodesDigest::hash("a", "b"), CodesDigest::hash("ab", ""));
    }

    #[test]
    fn adding_and_removing_cancel_out() {
        let mut d = CodesDigest::default();
        d.add("x", "1");
        d.add("y", "2");
        d.remove("x", "1");
        let mut e = CodesDigest::default();
        e.add("y", "2");
        assert_eq!(d, e);
        e.remove("y", "2");
        assert_eq!(e, CodesDigest::default());
    }
}
