//! [`AppKey`]: an app's signing credentials, its `app_key` and `app_secret`, as the layer
//! verifies `SDK-HMAC-SHA256` signatures with them.
//!
//! # Example
//!
//! ```
//! use apig_appcode::AppKey;
//!
//! let key = AppKey::new("my-app-key", "my-app-secret");
//! assert_eq!(key.key(), "my-app-key");
//! assert_eq!(format!("{key:?}"), r#"AppKey { key: "my-app-key", secret: SecretKey(<redacted>) }"#);
//! ```

use crate::signature::SecretKey;

/// An app's key (sent in clear as `Access=`) and secret (the HMAC key, never sent). The secret is
/// held as a [`SecretKey`]: redacted in `Debug`, zeroed on drop, compared in constant time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppKey {
    key: Box<str>,
    secret: SecretKey,
}

impl AppKey {
    /// The app key `key` and its secret. Build the secret from the final owned `String` (as
    /// [`SecretKey::from`] takes it) so that no unzeroed copy stays behind.
    pub fn new(key: impl Into<Box<str>>, secret: impl Into<SecretKey>) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// The app key.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.secret
    }
}
