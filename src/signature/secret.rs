//! [`SecretKey`]: the SK, kept out of `Debug` output and zeroed on drop.

use crate::secret::Secret;

/// A secret key (SK). Its bytes never appear in `Debug` output and are zeroed on drop.
///
/// Build it from the final owned buffer (`String` or `Vec<u8>`): the conversion moves the
/// buffer without copying, so no stray copy of the secret is left behind.
///
/// ```
/// use apig_appcode::signature::SecretKey;
///
/// let sk = SecretKey::from(String::from("my-secret-key"));
/// assert_eq!(format!("{sk:?}"), "SecretKey(<redacted>)");
/// ```
/// `==` compares in constant time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey(Secret<Vec<u8>>);

impl SecretKey {
    /// Wraps the SK's bytes. The SDK uses the UTF-8 encoding of the SK string as HMAC key.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Secret::new(bytes.into()))
    }

    pub(crate) fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

impl From<String> for SecretKey {
    fn from(value: String) -> Self {
        Self::new(value.into_bytes())
    }
}

impl From<&str> for SecretKey {
    fn from(value: &str) -> Self {
        Self::new(value.as_bytes())
    }
}

impl From<Vec<u8>> for SecretKey {
    fn from(value: Vec<u8>) -> Self {
        Self::new(value)
    }
}
