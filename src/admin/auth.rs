//! Who may call the management API: `X-Auth-Token` secrets and AK/SK pairs, each bound to a
//! role and a set of projects.
//!
//! # Example
//!
//! ```
//! use apig_appcode::admin::{AccessKeyCredential, Permissions, Role, TokenCredential};
//!
//! let ops = TokenCredential::new("ops-token-0123456789abcdef", Permissions::read_write());
//! let auditor = AccessKeyCredential::new(
//!     "AUDITORAK",
//!     "auditor-secret-key",
//!     Permissions::read_only().projects(["p1", "p2"]),
//! );
//! assert!(ops.permissions().allows("any-project", Role::ReadWrite));
//! assert!(auditor.permissions().allows("p2", Role::ReadOnly));
//! assert!(!auditor.permissions().allows("p2", Role::ReadWrite));
//! let shown = format!("{ops:?} {auditor:?}");
//! assert!(!shown.contains("auditor-secret-key") && !shown.contains("ops-token"));
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::request::Parts;
use http::HeaderName;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::AdminError;
use crate::secret::Secret;
use crate::signature::{self, PayloadAuth, SecretKey, SignatureError};

/// `X-Auth-Token`.
pub(crate) const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");

/// The shortest token accepted in configuration: a guessable token is no secret.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a credential may do.
///
/// ```
/// use apig_appcode::admin::Role;
///
/// assert!(Role::ReadWrite.covers(Role::ReadOnly));
/// assert!(!Role::ReadOnly.covers(Role::ReadWrite));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `GET` (and `HEAD`) only: show and list.
    ReadOnly,
    /// Every method: create and delete too.
    ReadWrite,
}

impl Role {
    /// Whether a holder of `self` may do what `needed` allows.
    pub fn covers(self, needed: Role) -> bool {
        self >= needed
    }
}

/// A role and the projects it applies to (every project unless restricted).
///
/// ```
/// use apig_appcode::admin::{Permissions, Role};
///
/// let p = Permissions::read_write().projects(["p1"]);
/// assert!(p.allows("p1", Role::ReadWrite));
/// assert!(!p.allows("p2", Role::ReadOnly));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    role: Role,
    /// `None`: every project.
    projects: Option<BTreeSet<String>>,
}

impl Permissions {
    /// `role` on every project.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            projects: None,
        }
    }

    /// Read-only on every project.
    pub fn read_only() -> Self {
        Self::new(Role::ReadOnly)
    }

    /// Read-write on every project.
    pub fn read_write() -> Self {
        Self::new(Role::ReadWrite)
    }

    /// Restricts the permissions to these projects (adding to any earlier restriction).
    pub fn projects<I, P>(mut self, projects: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.projects
            .get_or_insert_with(BTreeSet::new)
            .extend(projects.into_iter().map(Into::into));
        self
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether `needed` is allowed on `project_id`.
    pub fn allows(&self, project_id: &str, needed: Role) -> bool {
        self.role.covers(needed)
            && self
                .projects
                .as_ref()
                .is_none_or(|p| p.contains(project_id))
    }
}

/// An `X-Auth-Token` secret and what it may do. `Debug` does not show the token; it is zeroed
/// on drop, and the API keeps only its SHA-256 digest.
///
/// ```
/// use apig_appcode::admin::{Permissions, TokenCredential};
///
/// let t = TokenCredential::new("0123456789abcdef-token", Permissions::read_only());
/// assert_eq!(
///     format!("{t:?}"),
///     "TokenCredential { token: <redacted>, permissions: Permissions { role: ReadOnly, projects: None } }"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct TokenCredential {
    token: Secret<String>,
    permissions: Permissions,
}

impl TokenCredential {
    /// A token with `permissions`. The builder refuses tokens shorter than
    /// [`MIN_TOKEN_LEN`] bytes.
    pub fn new(token: impl Into<String>, permissions: Permissions) -> Self {
        Self {
            token: Secret::new(token.into()),
            permissions,
        }
    }

    /// What the token may do.
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    pub(crate) fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.token.expose().as_bytes()).into()
    }

    pub(crate) fn len(&self) -> usize {
        self.token.expose().len()
    }
}

/// An access key (AK), its secret key (SK) and what the pair may do. `Debug` shows the AK but
/// not the SK.
///
/// ```
/// use apig_appcode::admin::{AccessKeyCredential, Permissions};
///
/// let k = AccessKeyCredential::new("MYAK", "my-secret-key", Permissions::read_write());
/// assert_eq!(k.access_key(), "MYAK");
/// assert!(!format!("{k:?}").contains("my-secret-key"));
/// ```
#[derive(Debug)]
pub struct AccessKeyCredential {
    access_key: String,
    secret_key: SecretKey,
    permissions: Permissions,
}

impl AccessKeyCredential {
    /// An AK/SK pair with `permissions`. The SK is used as the SDK uses it: its UTF-8 bytes are
    /// the HMAC key.
    pub fn new(
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
        permissions: Permissions,
    ) -> Self {
        Self {
            access_key: access_key.into(),
            secret_key: SecretKey::from(secret_key.into()),
            permissions,
        }
    }

    /// The access key.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// What the pair may do.
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    pub(crate) fn secret_is_empty(&self) -> bool {
        self.secret_key.expose().is_empty()
    }
}

/// Where "now" comes from when checking `X-Sdk-Date`.
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// An authenticated caller, for permission checks and logs.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `token` or the access key: what logs may name (never a secret).
    pub(crate) name: String,
    pub(crate) permissions: Permissions,
}

/// Every configured credential, ready to check requests against.
pub(crate) struct Authenticator {
    /// SHA-256 of each token, in configuration order.
    tokens: Vec<([u8; 32], Permissions)>,
    access_keys: HashMap<String, AccessKeyCredential>,
    max_skew: Duration,
    clock: Clock,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("access_keys", &self.access_keys.keys().collect::<Vec<_>>())
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Credentials must have been checked for duplicates and weak values already.
    pub(crate) fn new(
        tokens: Vec<TokenCredential>,
        access_keys: Vec<AccessKeyCredential>,
        max_skew: Duration,
        clock: Clock,
    ) -> Self {
        Self {
            tokens: tokens
                .iter()
                .map(|t| (t.digest(), t.permissions.clone()))
                .collect(),
            access_keys: access_keys
                .into_iter()
                .map(|k| (k.access_key.clone(), k))
                .collect(),
            max_skew,
            clock,
        }
    }

    /// Authenticates a request whose body is `body`: by `X-Auth-Token` when that header is
    /// present, else by an `SDK-HMAC-SHA256` `Authorization` header.
    pub(crate) fn authenticate(&self, parts: &Parts, body: &[u8]) -> Result<Caller, AdminError> {
        let mut tokens = parts.headers.get_all(&X_AUTH_TOKEN).iter();
        if let Some(token) = tokens.next() {
            if tokens.next().is_some() {
                return Err(AdminError::BadCredentials(
                    "X-Auth-Token appears more than once",
                ));
            }
            return self.by_token(token.as_bytes());
        }
        if !parts.headers.contains_key(http::header::AUTHORIZATION) {
            return Err(AdminError::MissingCredentials);
        }
        self.by_signature(parts, body)
    }

    /// Compares the token's digest with every configured digest, all of them every time, so
    /// the time taken does not depend on which token (if any) matched.
    fn by_token(&self, token: &[u8]) -> Result<Caller, AdminError> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found = 0u64; // 1 + index of the match, 0 for none
        for (i, (known, _)) in self.tokens.iter().enumerate() {
            let index = u64::try_from(i).unwrap_or(u64::MAX - 1) + 1;
            found.conditional_assign(&index, digest.ct_eq(known));
        }
        let at = usize::try_from(found).unwrap_or(0);
        match at.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some((_, permissions)) => Ok(Caller {
                name: "token".to_owned(),
                permissions: permissions.clone(),
            }),
            None => Err(AdminError::BadCredentials("unknown token")),
        }
    }

    fn by_signature(&self, parts: &Parts, body: &[u8]) -> Result<Caller, AdminError> {
        let lookup = |ak: &str| {
            self.access_keys
                .get(ak)
                .map(|k| SecretKey::new(k.secret_key.expose().to_vec()))
        };
        let verified = signature::verify(parts, body, lookup, (self.clock)(), self.max_skew)
            .map_err(|e| {
                tracing::info!(reason = %e, "management API signature rejected");
                signature_error(&e)
            })?;
        if verified.payload == PayloadAuth::Unsigned {
            return Err(AdminError::BadCredentials("the body must be signed"));
        }
        let key = self
            .access_keys
            .get(&verified.access_key)
            .ok_or(AdminError::BadCredentials("incorrect token or signature"))?;
        Ok(Caller {
            name: verified.access_key,
            permissions: key.permissions.clone(),
        })
    }
}

/// What a client learns about a rejected signature: the cause when it is about the request's
/// shape or clock, one fixed answer for an unknown key and a wrong signature alike.
fn signature_error(e: &SignatureError) -> AdminError {
    if e.is_unsigned() {
        return AdminError::MissingCredentials;
    }
    AdminError::BadCredentials(match e {
        SignatureError::UnsupportedAlgorithm => "unsupported Authorization scheme",
        SignatureError::MalformedAuthorization(_) => "malformed Authorization header",
        SignatureError::DateMalformed => "X-Sdk-Date is not a valid YYYYMMDDTHHMMSSZ time",
        SignatureError::DateOutOfWindow => "X-Sdk-Date is outside the allowed clock skew",
        SignatureError::UnsignedRequiredHeader(_) => "host and x-sdk-date must be signed",
        SignatureError::SignedHeaderAbsent(_) => "a signed header is absent",
        _ => "incorrect token or signature",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get("/v2/p/apigw/instances/i/apps");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn auth() -> Authenticator {
        Authenticator::new(
            vec![
                TokenCredential::new("first-token-0123456789", Permissions::read_only()),
                TokenCredential::new("second-token-0123456789", Permissions::read_write()),
            ],
            vec![],
            Duration::from_secs(900),
            Arc::new(SystemTime::now),
        )
    }

    #[test]
    fn each_token_gets_its_own_permissions() {
        let a = auth();
        let first = a
            .authenticate(&parts(&[("x-auth-token", "first-token-0123456789")]), b"")
            .unwrap();
        assert_eq!(first.permissions.role(), Role::ReadOnly);
        let second = a
            .authenticate(&parts(&[("x-auth-token", "second-token-0123456789")]), b"")
            .unwrap();
        assert_eq!(second.permissions.role(), Role::ReadWrite);
        for bad in ["first-token-012345678", "", "second-token-0123456789 "] {
            assert!(matches!(
                a.authenticate(&parts(&[("x-auth-token", bad)]), b""),
                Err(AdminError::BadCredentials(_))
            ));
        }
        assert!(matches!(
            a.authenticate(&parts(&[]), b""),
            Err(AdminError::MissingCredentials)
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        let a = auth();
        let shown = format!("{a:?}");
        assert!(!shown.contains("first-token"), "{shown}");
    }
}
