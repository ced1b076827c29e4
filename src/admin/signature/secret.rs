//! [`SecretKey`]: the SK, kept out of `Debug` output and zeroed on drop.

use std::fmt;

use zeroize::Zeroize;

/// A secret key (SK). Its bytes never appear in `Debug` output and are zeroed on drop.
///
/// Build it from the final owned buffer (`String` or `Vec<u8>`): the conversion moves the
/// buffer without copying, so no stray copy of the secret is left behind.
///
/// ```
/// use apig_appcode::admin::signature::SecretKey;
///
/// let sk = SecretKey::from(String::from("my-secret-key"));
/// assert_eq!(format!("{sk:?}"), "SecretKey(<redacted>)");
/// ```
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// Wraps the SK's bytes. The SDK uses the UTF-8 encoding of the SK string as HMAC key.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<String> for SecretKey {
    fn from(value: String) -> Self {
        Self(value.into_bytes())
    }
}

impl From<&str> for SecretKey {
    fn from(value: &str) -> Self {
        Self(value.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for SecretKey {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
