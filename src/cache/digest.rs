//! Keyed digests of AppCodes: what the cache is indexed by.
//!
//! An AppCode is never a map key. The cache stores `BLAKE3-keyed(key, code)` under a key drawn
//! at random for each cache, so an attacker can neither predict where a guess lands in the table
//! nor learn anything from how the table compares it. Equality of digests goes through
//! [`subtle`]: the map's own key comparison is the constant-time confirmation, so a hit costs one
//! probe and no pointer chase.

use std::hash::{BuildHasher, Hash, Hasher};

use subtle::ConstantTimeEq;

use super::entry::StoredId;
use crate::secret::Secret;

/// A 128-bit keyed digest of an AppCode, held as two machine words.
///
/// 128 bits of a keyed PRF are plenty: without the key nobody can aim at a digest, and a random
/// guess meets one of a million cached digests with probability 2^-108. Half of BLAKE3's 256
/// bits saves 16 bytes in every table slot, which pays for the index by AppCode ID.
#[derive(Clone, Copy)]
pub(crate) struct Digest([u64; 2]);

impl Digest {
    #[cfg(test)]
    pub(crate) fn from_words(words: [u64; 2]) -> Self {
        Self(words)
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        let word =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Self([word(0), word(1)])
    }

    /// Which of `lanes` lanes this digest falls in, evenly: for splitting work on a set of
    /// digests between threads. Reads the word the map does not hash by.
    pub(crate) fn lane(&self, lanes: u64) -> u64 {
        self.0[1] % lanes.max(1)
    }
}

impl PartialEq for Digest {
    /// Constant time: every word is compared, whatever the first difference.
    fn eq(&self, other: &Self) -> bool {
        let a = &self.0;
        let b = &other.0;
        (a[0].ct_eq(&b[0]) & a[1].ct_eq(&b[1])).into()
    }
}

impl Eq for Digest {}

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already the output of a keyed PRF: one word of it is a uniform hash.
        state.write_u64(self.0[0]);
    }
}

/// The per-cache secret key of the digest.
pub(crate) struct DigestKey(Secret<[u8; 32]>);

impl DigestKey {
    /// A fresh random key.
    pub(crate) fn random() -> Self {
        let mut key = Secret::new([0u8; 32]);
        getrandom::fill(key.expose_mut()).expect("the OS random number generator failed");
        Self(key)
    }

    /// The digest of `code` under this key.
    pub(crate) fn digest(&self, code: &[u8]) -> Digest {
        Digest::from_bytes(blake3::keyed_hash(self.0.expose(), code).as_bytes())
    }

    /// The digest of an app's signing key under this key, for the negative cache and the
    /// flights; kept apart from the digests of codes by a prefix no code can start with.
    pub(crate) fn key_digest(&self, app_key: &str) -> Digest {
        let mut hasher = blake3::Hasher::new_keyed(self.0.expose());
        hasher.update(b"\0app-key\0");
        hasher.update(app_key.as_bytes());
        Digest::from_bytes(hasher.finalize().as_bytes())
    }

    /// A 64-bit hash of an AppCode ID under this key, for the index by ID; kept apart from the
    /// digests of codes by a prefix no code can start with.
    pub(crate) fn id_hash(&self, id: &StoredId) -> u64 {
        let mut hasher = blake3::Hasher::new_keyed(self.0.expose());
        hasher.update(b"\0app-code-id\0");
        id.feed(&mut hasher);
        let bytes = hasher.finalize();
        u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}

/// Hashes a [`Digest`] by passing its first word through.
#[derive(Clone, Copy, Default)]
pub(crate) struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> Self::Hasher {
        PassThroughHasher(0)
    }
}

#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Digest` is hashed with this hasher, and it writes one u64; fold anything else
        // in rather than ignoring it, so a misuse degrades speed, not correctness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_keyed() {
        let (a, b) = (DigestKey::random(), DigestKey::random());
        let code = [b'x'; 64];
        assert!(a.digest(&code) == a.digest(&code));
        assert!(a.digest(&code) != b.digest(&code));
        assert!(a.digest(&code) != a.digest(&[b'y'; 64]));
    }

    #[test]
    fn equality_looks_at_every_word() {
        let base = Digest([1, 2]);
        for i in 0..2 {
            let mut other = base;
            other.0[i] ^= 1 << 63;
            assert!(base != other, "word {i} ignored");
        }
    }
}
