//! A digest of which AppCodes a cache or a store holds: what the anti-entropy check compares.
//!
//! It is the number of codes and the sum (modulo 2^64) of one 64-bit hash per code, the first
//! eight bytes (big-endian) of `SHA-256(app ID, 0x00, AppCode ID)`. A sum does not depend on the
//! order of the codes, so a store computes it in SQL in any order, and a cache keeps it up to
//! date as codes come and go, without a pass over its entries. It names IDs only: no AppCode
//! value or secret goes into it.
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

use sha2::{Digest, Sha256};

/// Which codes are held, summarised (see the [module docs](self)).
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
        let digest = Sha256::new()
            .chain_update(app_id.as_bytes())
            .chain_update([0])
            .chain_update(app_code_id.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_first_eight_bytes_of_sha256() {
        // What the stores compute in SQL.
        let full = Sha256::digest(b"a\0b");
        let expected = u64::from_be_bytes(full[..8].try_into().unwrap());
        assert_eq!(CodesDigest::hash("a", "b"), expected);
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
