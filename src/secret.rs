//! [`Secret`]: how the crate holds a secret, so that "never print a secret" is a rule of one type
//! instead of a promise every secret-holding type makes again by hand.
//!
//! A `Secret` shows as [`REDACTED`] in `Debug`, compares in constant time and is zeroed on drop.
//! The public secret types ([`AppCode`](crate::AppCode), `SecretKey`, `SecretString`,
//! `MasterKey`, ...) are newtypes over it that derive `Debug`, so they print as
//! `AppCode(<redacted>)`, and structs holding one print `token: <redacted>` beside their other
//! fields. Scratch buffers that never leave one function may use [`zeroize::Zeroizing`]
//! instead; anything kept in a struct or returned is a `Secret`.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// What `Debug` (and `Display`, where a secret type has one) shows instead of a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// A secret value: `Debug` shows [`REDACTED`], `==` runs in constant time in the content, and
/// the memory is zeroed on drop.
///
/// Reach the value through [`expose`](Self::expose) only where it must leave the process (a
/// header, a store, an HMAC key): every call is a place where it could leak.
pub(crate) struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps `value`, taking ownership so that no unzeroed copy stays behind with the caller.
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }

    /// The value.
    pub(crate) fn expose(&self) -> &T {
        &self.0
    }

    /// The value, to fill in place (a buffer read into, random bytes drawn into).
    pub(crate) fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Zeroize + AsRef<[u8]>> PartialEq for Secret<T> {
    /// Constant time in the content (only the lengths may short-cut).
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().ct_eq(other.0.as_ref()).into()
    }
}

impl<T: Zeroize + AsRef<[u8]>> Eq for Secret<T> {}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read by `Debug` only, which dead-code analysis does not count.
    #[allow(dead_code)]
    #[derive(Debug)]
    struct Holder {
        name: &'static str,
        token: Secret<String>,
    }

    #[allow(dead_code)]
    #[derive(Debug)]
    struct Key(Secret<[u8; 4]>);

    #[test]
    fn debug_never_shows_the_value() {
        let holder = Holder {
            name: "admin",
            token: Secret::new("s3cret-value".to_owned()),
        };
        assert_eq!(
            format!("{holder:?}"),
            r#"Holder { name: "admin", token: <redacted> }"#
        );
        assert_eq!(format!("{:#?}", holder.token), REDACTED);
        assert_eq!(
            format!("{:?}", Key(Secret::new(*b"k3y!"))),
            "Key(<redacted>)"
        );
    }

    #[test]
    fn equality_compares_the_content() {
        let a = Secret::new(b"same".to_vec());
        assert_eq!(a, Secret::new(b"same".to_vec()));
        assert_ne!(a, Secret::new(b"diff".to_vec()));
        assert_ne!(a, Secret::new(b"longer".to_vec()));
        assert_eq!(a.clone().expose(), a.expose());
    }

    #[test]
    fn zeroize_runs_on_the_held_value() {
        // What Drop calls, observed on a value that outlives the call.
        let mut secret = Secret::new(String::from("s3cret"));
        secret.expose_mut().zeroize();
        assert!(secret.expose().is_empty());
    }
}
