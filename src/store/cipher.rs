//! Encryption at rest for persistent stores: the [`MasterKey`], and the sealing of AppCode values
//! and app secrets into ChaCha20-Poly1305 ciphertext bound to their rows.
//!
//! With a master key, a store keeps every secret as ciphertext under a random 96-bit nonce, with
//! associated data naming the row it belongs to (so ciphertext copied into another row does not
//! decrypt), and finds duplicate AppCode values through a keyed digest (HMAC-SHA256) instead of
//! the values. Without one, values are kept in clear and the digest is a plain SHA-256.
//!
//! Three keys are derived from the master key, each as HMAC-SHA256 of a fixed label: the
//! encryption key, the digest key, and a *key check value* the store records when the database is
//! created, so that a later open with another key (or none) fails with [`KeyMismatch`] instead
//! of returning garbage.
//!
//! # Example
//!
//! ```
//! use apig_appcode::store::MasterKey;
//!
//! let key: MasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
//!     .parse()
//!     .unwrap();
//! assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
//! ```

use std::fmt;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::hex;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Length of a nonce stored beside each ciphertext.
pub(crate) const NONCE_LEN: usize = 12;

const LABEL_ENCRYPTION: &[u8] = b"apig-appcode/v1/encryption";
const LABEL_DIGEST: &[u8] = b"apig-appcode/v1/digest";
const LABEL_CHECK: &[u8] = b"apig-appcode/v1/key-check";

/// The 32-byte key that encrypts AppCodes and app secrets at rest.
///
/// `Debug` never shows it and its memory is zeroed on drop. Parse it from 64 hexadecimal
/// characters or 44 characters of standard base64 (with its `=`); whitespace around the text is
/// ignored, so a key read from a file with a trailing newline works.
///
/// ```
/// use apig_appcode::store::MasterKey;
///
/// let hex = "ab".repeat(32);
/// let base64 = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
/// assert_eq!(MasterKey::parse(&hex).unwrap(), MasterKey::parse(base64).unwrap());
/// assert_eq!(MasterKey::from_bytes([0xab; 32]), MasterKey::parse(&hex).unwrap());
/// assert!(MasterKey::parse("not a key").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MasterKey(Secret<[u8; 32]>);

impl MasterKey {
    /// A key from its 32 raw bytes.
    ///
    /// ```
    /// use apig_appcode::store::MasterKey;
    ///
    /// let key = MasterKey::from_bytes([7; 32]);
    /// assert!(!format!("{key:?}").contains('7'));
    /// ```
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Secret::new(bytes))
    }

    /// Parses 64 hexadecimal characters (either case) or 44 characters of standard base64.
    ///
    /// ```
    /// use apig_appcode::store::{MasterKey, MasterKeyError};
    ///
    /// assert!(MasterKey::parse(&"0F".repeat(32)).is_ok());
    /// assert_eq!(MasterKey::parse("abc").unwrap_err(), MasterKeyError::InvalidLength { len: 3 });
    /// assert_eq!(MasterKey::parse(&"zz".repeat(32)).unwrap_err(), MasterKeyError::InvalidHex);
    /// ```
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim_ascii();
        let mut bytes = Zeroizing::new([0u8; 32]);
        match text.len() {
            64 => decode_hex(text.as_bytes(), &mut bytes)?,
            44 => decode_base64(text.as_bytes(), &mut bytes)?,
            len => return Err(MasterKeyError::InvalidLength { len }),
        }
        Ok(Self::from_bytes(*bytes))
    }

    fn derive(&self, label: &[u8]) -> Secret<[u8; 32]> {
        Secret::new(hmac(self.0.expose(), &[label]))
    }
}

impl FromStr for MasterKey {
    type Err = MasterKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a text is not a [`MasterKey`]. Never contains the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterKeyError {
    /// Neither 64 (hex) nor 44 (base64) characters long.
    InvalidLength {
        /// The length seen, in bytes, after trimming whitespace.
        len: usize,
    },
    /// 64 characters, but not all hexadecimal digits.
    InvalidHex,
    /// 44 characters, but not the standard base64 of 32 bytes.
    InvalidBase64,
}

impl fmt::Display for MasterKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidLength { len } => write!(
                f,
                "master key is {len} characters long; expected 32 bytes as 64 hex characters or \
                 44 base64 characters"
            ),
            Self::InvalidHex => {
                f.write_str("master key of 64 characters contains a non-hexadecimal character")
            }
            Self::InvalidBase64 => f.write_str(
                "master key of 44 characters is not the standard base64 (with '=') of 32 bytes",
            ),
        }
    }
}

impl std::error::Error for MasterKeyError {}

/// Why a database and the configured master key do not belong together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyMismatch {
    /// The database was created with a master key and none is configured.
    MissingKey,
    /// The database was created with a different master key.
    WrongKey,
    /// The database was created without a master key (its values are in clear) and one is
    /// configured.
    UnexpectedKey,
}

impl fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingKey => {
                "the database was created with a master key and none is configured; \
                 configure the same master key"
            }
            Self::WrongKey => {
                "the configured master key is not the one the database was created with"
            }
            Self::UnexpectedKey => {
                "the database was created without a master key (values stored in clear) but a \
                 master key is configured; remove it or use a new database"
            }
        })
    }
}

impl std::error::Error for KeyMismatch {}

/// A ciphertext (or, without a key, the plaintext) and its nonce, ready to store.
pub(crate) struct Sealed {
    /// `None` without a master key.
    pub(crate) nonce: Option<[u8; NONCE_LEN]>,
    pub(crate) bytes: Secret<Vec<u8>>,
}

/// Why a stored secret could not be sealed or opened. Never contains the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CipherError {
    /// The operating system gave no random bytes for a nonce.
    Random,
    /// Ciphertext that fails authentication: corrupt, truncated, or moved to another row.
    Corrupt,
    /// A nonce of the wrong length, or one missing where the store is encrypted.
    BadNonce,
    /// A nonce where the store is not encrypted.
    UnexpectedNonce,
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Random => "the operating system random number generator failed",
            Self::Corrupt => {
                "ciphertext failed authentication (corrupt, or copied from another row)"
            }
            Self::BadNonce => "nonce missing or not 12 bytes long",
            Self::UnexpectedNonce => "a nonce is stored although the database is not encrypted",
        })
    }
}

impl std::error::Error for CipherError {}

/// Associated data binding a ciphertext to its row: a kind and the row's identifying fields,
/// each prefixed with its length so no two different rows share a binding.
pub(crate) fn row_binding(kind: &str, fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + fields.iter().map(|f| f.len() + 4).sum::<usize>());
    out.extend_from_slice(b"apig-appcode/v1/");
    out.extend_from_slice(kind.as_bytes());
    for field in fields {
        // Fields are IDs far below 4 GiB; saturate rather than wrap if one is not.
        out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// The binding of an app's secret: its scope and ID.
pub(crate) fn secret_binding(scope: &crate::store::Scope, app_id: &str) -> Vec<u8> {
    row_binding(
        "app-secret",
        &[&scope.project_id, &scope.instance_id, app_id],
    )
}

/// The binding of an AppCode value: its instance, app and ID.
pub(crate) fn code_binding(instance_id: &str, app_id: &str, app_code_id: &str) -> Vec<u8> {
    row_binding("app-code", &[instance_id, app_id, app_code_id])
}

/// Seals and opens secrets for a store, with or without a master key.
pub(crate) struct Sealer {
    keys: Option<Keys>,
}

struct Keys {
    aead: ChaCha20Poly1305,
    digest: Secret<[u8; 32]>,
    check: [u8; 32],
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("encrypted", &self.is_encrypted())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub(crate) fn new(key: Option<&MasterKey>) -> Self {
        let keys = key.map(|key| {
            let enc = key.derive(LABEL_ENCRYPTION);
            let check = key.derive(LABEL_CHECK);
            Keys {
                aead: ChaCha20Poly1305::new(enc.expose().into()),
                digest: key.derive(LABEL_DIGEST),
                check: *check.expose(),
            }
        });
        Self { keys }
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// The key check value to record in a new database (`None` without a key).
    pub(crate) fn key_check(&self) -> Option<[u8; 32]> {
        self.keys.as_ref().map(|k| k.check)
    }

    /// Checks what a database recorded at creation against this sealer's key.
    pub(crate) fn verify(
        &self,
        db_encrypted: bool,
        db_key_check: Option<&[u8]>,
    ) -> Result<(), KeyMismatch> {
        match (&self.keys, db_encrypted) {
            (None, false) => Ok(()),
            (None, true) => Err(KeyMismatch::MissingKey),
            (Some(_), false) => Err(KeyMismatch::UnexpectedKey),
            (Some(keys), true) => match db_key_check {
                Some(stored) if bool::from(stored.ct_eq(&keys.check)) => Ok(()),
                _ => Err(KeyMismatch::WrongKey),
            },
        }
    }

    /// The digest that stands for `value` in uniqueness checks: HMAC-SHA256 under the derived
    /// digest key with a master key, SHA-256 without.
    pub(crate) fn digest(&self, value: &[u8]) -> [u8; 32] {
        match &self.keys {
            Some(keys) => hmac(keys.digest.expose(), &[value]),
            None => Sha256::digest(value).into(),
        }
    }

    /// Encrypts `plaintext` under a fresh random nonce, bound to `binding`; without a key,
    /// returns the plaintext.
    pub(crate) fn seal(&self, binding: &[u8], plaintext: &[u8]) -> Result<Sealed, CipherError> {
        let Some(keys) = &self.keys else {
            return Ok(Sealed {
                nonce: None,
                bytes: Secret::new(plaintext.to_vec()),
            });
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CipherError::Random)?;
        let bytes = keys
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: binding,
                },
            )
            // Encryption fails only for messages beyond 256 GiB.
            .map_err(|_| CipherError::Corrupt)?;
        Ok(Sealed {
            nonce: Some(nonce),
            bytes: Secret::new(bytes),
        })
    }

    /// Decrypts what [`seal`](Self::seal) stored for the same `binding`.
    pub(crate) fn open(
        &self,
        binding: &[u8],
        nonce: Option<&[u8]>,
        bytes: &[u8],
    ) -> Result<Secret<Vec<u8>>, CipherError> {
        match (&self.keys, nonce) {
            (None, None) => Ok(Secret::new(bytes.to_vec())),
            (None, Some(_)) => Err(CipherError::UnexpectedNonce),
            (Some(keys), Some(nonce)) if nonce.len() == NONCE_LEN => keys
                .aead
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: bytes,
                        aad: binding,
                    },
                )
                .map(Secret::new)
                .map_err(|_| CipherError::Corrupt),
            (Some(_), _) => Err(CipherError::BadNonce),
        }
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn decode_hex(text: &[u8], out: &mut [u8; 32]) -> Result<(), MasterKeyError> {
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex::value(pair[0]), hex::value(pair[1])) else {
            return Err(MasterKeyError::InvalidHex);
        };
        *byte = hi << 4 | lo;
    }
    Ok(())
}

/// Standard base64 of exactly 32 bytes: 43 symbols and one `=`, with the unused low bits zero.
fn decode_base64(text: &[u8], out: &mut [u8; 32]) -> Result<(), MasterKeyError> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    if text.len() != 44 || text[43] != b'=' {
        return Err(MasterKeyError::InvalidBase64);
    }
    let mut acc = Zeroizing::new(0u32);
    let mut bits = 0u32;
    let mut written = 0;
    for &c in &text[..43] {
        let v = sextet(c).ok_or(MasterKeyError::InvalidBase64)?;
        *acc = (*acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out[written] = (*acc >> bits) as u8;
            written += 1;
            *acc &= (1 << bits) - 1;
        }
    }
    // 43 symbols carry 258 bits: 32 bytes and 2 bits that must be zero.
    if written != 32 || *acc != 0 {
        return Err(MasterKeyError::InvalidBase64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    #[test]
    fn parses_hex_in_either_case_around_whitespace() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        let expected = MasterKey::from_bytes(bytes);
        assert_eq!(MasterKey::parse(&hex).unwrap(), expected);
        assert_eq!(
            MasterKey::parse(&format!("  {}\n", hex.to_lowercase())).unwrap(),
            expected
        );
    }

    #[test]
    fn base64_known_vector() {
        // 32 bytes 0x00..0x1f.
        let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(MasterKey::parse(b64).unwrap(), MasterKey::from_bytes(bytes));
    }

    #[test]
    fn malformed_keys_are_named_without_echo() {
        let secret = "Zm9vYmFy".repeat(5) + "Zm9="; // 44 chars, non-zero trailing bits
        let err = MasterKey::parse(&secret).unwrap_err();
        assert_eq!(err, MasterKeyError::InvalidBase64);
        assert!(!err.to_string().contains("Zm9v"));
        assert_eq!(
            MasterKey::parse(&("A".repeat(43) + "A")).unwrap_err(),
            MasterKeyError::InvalidBase64
        );
        assert_eq!(
            MasterKey::parse(&("*".repeat(43) + "=")).unwrap_err(),
            MasterKeyError::InvalidBase64
        );
        assert_eq!(
            MasterKey::parse(&"g".repeat(64)).unwrap_err(),
            MasterKeyError::InvalidHex
        );
        assert_eq!(
            MasterKey::parse("").unwrap_err(),
            MasterKeyError::InvalidLength { len: 0 }
        );
    }

    #[test]
    fn debug_redacts() {
        let k = MasterKey::parse(&"5a".repeat(32)).unwrap();
        let shown = format!("{k:?} {:?}", Sealer::new(Some(&k)));
        assert!(!shown.to_lowercase().contains("5a5a"), "{shown}");
    }

    #[test]
    fn seal_open_round_trip_and_row_binding() {
        let sealer = Sealer::new(Some(&key(1)));
        let row_a = row_binding("app-code", &["inst", "app", "a"]);
        let row_b = row_binding("app-code", &["inst", "app", "b"]);
        let sealed = sealer.seal(&row_a, b"secret value").unwrap();
        assert_ne!(&sealed.bytes.expose()[..], b"secret value");
        let nonce = sealed.nonce.unwrap();
        assert_eq!(
            &sealer
                .open(&row_a, Some(&nonce), sealed.bytes.expose())
                .unwrap()
                .expose()[..],
            b"secret value"
        );
        assert_eq!(
            sealer
                .open(&row_b, Some(&nonce), sealed.bytes.expose())
                .unwrap_err(),
            CipherError::Corrupt
        );
        let other = Sealer::new(Some(&key(2)));
        assert_eq!(
            other
                .open(&row_a, Some(&nonce), sealed.bytes.expose())
                .unwrap_err(),
            CipherError::Corrupt
        );
        assert_eq!(
            sealer
                .open(&row_a, None, sealed.bytes.expose())
                .unwrap_err(),
            CipherError::BadNonce
        );
        // Two seals of one value differ (fresh nonces).
        let again = sealer.seal(&row_a, b"secret value").unwrap();
        assert_ne!(again.nonce, sealed.nonce);
    }

    #[test]
    fn bindings_are_unambiguous() {
        assert_ne!(
            row_binding("k", &["ab", "c"]),
            row_binding("k", &["a", "bc"])
        );
    }

    #[test]
    fn plain_sealer_stores_clear_text_and_sha256() {
        let sealer = Sealer::new(None);
        let sealed = sealer.seal(b"row", b"v").unwrap();
        assert!(sealed.nonce.is_none());
        assert_eq!(&sealed.bytes.expose()[..], b"v");
        assert_eq!(sealer.digest(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(
            sealer.open(b"row", Some(&[0; 12]), b"v").unwrap_err(),
            CipherError::UnexpectedNonce
        );
    }

    #[test]
    fn digests_are_keyed() {
        let (a, b) = (Sealer::new(Some(&key(1))), Sealer::new(Some(&key(2))));
        assert_eq!(a.digest(b"v"), a.digest(b"v"));
        assert_ne!(a.digest(b"v"), b.digest(b"v"));
        assert_ne!(a.digest(b"v"), Sealer::new(None).digest(b"v"));
    }

    #[test]
    fn verify_covers_every_combination() {
        let keyed = Sealer::new(Some(&key(1)));
        let check = keyed.key_check().unwrap();
        assert_eq!(keyed.verify(true, Some(&check)), Ok(()));
        assert_eq!(
            Sealer::new(Some(&key(2))).verify(true, Some(&check)),
            Err(KeyMismatch::WrongKey)
        );
        assert_eq!(keyed.verify(true, None), Err(KeyMismatch::WrongKey));
        assert_eq!(keyed.verify(false, None), Err(KeyMismatch::UnexpectedKey));
        let plain = Sealer::new(None);
        assert_eq!(
            plain.verify(true, Some(&check)),
            Err(KeyMismatch::MissingKey)
        );
        assert_eq!(plain.verify(false, None), Ok(()));
        assert_eq!(plain.key_check(), None);
    }
}
