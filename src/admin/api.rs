//! [`AdminApi`] and its builder: the configuration behind the management router.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;

use super::auth::{AccessKeyCredential, Authenticator, Clock, TokenCredential, MIN_TOKEN_LEN};
use super::ids::is_plain_id;
use super::router;
use super::state::{Instance, Shared};
use crate::cache::AppCodeCache;
use crate::signature::DEFAULT_MAX_SKEW;
use crate::store::Store;

/// The default limit on a request body: 64 KiB. The largest valid body (an app with every
/// field at its maximum length) is under 2 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The management API of one or more gateway instances: apps and AppCodes over HTTP, stored
/// in a [`Store`] and applied to the gateways' [`AppCodeCache`]s as they change.
///
/// Cloning is cheap. Turn it into an axum [`Router`] (a tower `Service`) with
/// [`router`](Self::router).
///
/// ```
/// use std::sync::Arc;
/// use apig_appcode::admin::{AdminApi, Permissions, TokenCredential};
/// use apig_appcode::store::MemoryStore;
/// use apig_appcode::AppCodeCache;
/// use axum::body::Body;
/// use http::{Request, StatusCode};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = AppCodeCache::new(); // the cache of the gateway's AppCodeAuthLayer
/// let api = AdminApi::builder()
///     .store(Arc::new(MemoryStore::new()))
///     .instance("i1", cache.clone())
///     .token(TokenCredential::new("admin-token-0123456789", Permissions::read_write()))
///     .build()
///     .unwrap();
///
/// let res = api
///     .router()
///     .oneshot(
///         Request::post("/v2/p1/apigw/instances/i1/apps")
///             .header("x-auth-token", "admin-token-0123456789")
///             .header("content-type", "application/json")
///             .body(Body::from(r#"{"name":"shop_frontend"}"#))
///             .unwrap(),
///     )
///     .await
///     .unwrap();
/// assert_eq!(res.status(), StatusCode::CREATED);
/// assert!(res.headers().contains_key("x-request-id"));
/// # }
/// ```
#[derive(Clone)]
pub struct AdminApi {
    shared: Arc<Shared>,
}

impl fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminApi")
            .field(
                "instances",
                &self.shared.instances.keys().collect::<Vec<_>>(),
            )
            .field("auth", &self.shared.auth)
            .field("body_limit", &self.shared.body_limit)
            .finish_non_exhaustive()
    }
}

impl AdminApi {
    /// A builder; [`store`](AdminApiBuilder::store), at least one
    /// [`instance`](AdminApiBuilder::instance) and one credential are required.
    pub fn builder() -> AdminApiBuilder {
        AdminApiBuilder {
            store: None,
            instances: Vec::new(),
            tokens: Vec::new(),
            access_keys: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            max_skew: DEFAULT_MAX_SKEW,
            clock: None,
        }
    }

    /// The axum router serving the management API and `GET /openapi.json`. Serve it at the
    /// root (merge it, don't nest it): signatures cover the full path.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use apig_appcode::admin::{AdminApi, Permissions, TokenCredential};
    /// # use apig_appcode::{store::MemoryStore, AppCodeCache};
    /// let api = AdminApi::builder()
    ///     .store(Arc::new(MemoryStore::new()))
    ///     .instance("i1", AppCodeCache::new())
    ///     .token(TokenCredential::new("admin-token-0123456789", Permissions::read_write()))
    ///     .build()
    ///     .unwrap();
    /// let app: axum::Router = axum::Router::new().merge(api.router());
    /// ```
    pub fn router(&self) -> Router {
        router::build(Arc::clone(&self.shared))
    }
}

/// Configures an [`AdminApi`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use apig_appcode::admin::{AccessKeyCredential, AdminApi, Permissions};
/// use apig_appcode::{store::MemoryStore, AppCodeCache};
///
/// let api = AdminApi::builder()
///     .store(Arc::new(MemoryStore::new()))
///     .instance("i1", AppCodeCache::new())
///     .access_key(AccessKeyCredential::new("AK1", "SK1", Permissions::read_write()))
///     .body_limit(16 * 1024)
///     .max_clock_skew(Duration::from_secs(300))
///     .build();
/// assert!(api.is_ok());
/// ```
pub struct AdminApiBuilder {
    store: Option<Arc<dyn Store>>,
    instances: Vec<(String, AppCodeCache)>,
    tokens: Vec<TokenCredential>,
    access_keys: Vec<AccessKeyCredential>,
    body_limit: usize,
    max_skew: Duration,
    clock: Option<Clock>,
}

impl fmt::Debug for AdminApiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminApiBuilder")
            .field("store", &self.store.as_ref().map(|_| "dyn Store"))
            .field(
                "instances",
                &self.instances.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("tokens", &self.tokens)
            .field("access_keys", &self.access_keys)
            .field("body_limit", &self.body_limit)
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

impl AdminApiBuilder {
    /// Where apps and AppCodes live.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves gateway instance `instance_id` (in every project a credential may access), whose
    /// gateway verifies against `cache`: creations are upserted into it and deletions removed
    /// from it before the API answers. Call once per instance.
    pub fn instance(mut self, instance_id: impl Into<String>, cache: AppCodeCache) -> Self {
        self.instances.push((instance_id.into(), cache));
        self
    }

    /// Accepts `X-Auth-Token: <token>`.
    pub fn token(mut self, token: TokenCredential) -> Self {
        self.tokens.push(token);
        self
    }

    /// Accepts `SDK-HMAC-SHA256` signatures made with this AK/SK (what the official SDKs send).
    pub fn access_key(mut self, key: AccessKeyCredential) -> Self {
        self.access_keys.push(key);
        self
    }

    /// The largest request body in bytes (default [`DEFAULT_BODY_LIMIT`]); larger ones get
    /// `413 APIG.0201` before any authentication work.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How far `X-Sdk-Date` may be from the server's clock, either way (default 15 minutes).
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// Where the current time comes from when checking `X-Sdk-Date` (default
    /// [`SystemTime::now`]); for tests replaying recorded requests.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the configuration and builds the API.
    pub fn build(self) -> Result<AdminApi, BuildError> {
        let store = self.store.ok_or(BuildError::MissingStore)?;
        if self.instances.is_empty() {
            return Err(BuildError::NoInstance);
        }
        let mut instances = HashMap::new();
        for (id, cache) in self.instances {
            if !is_plain_id(&id) {
                return Err(BuildError::InvalidInstanceId(id));
            }
            let instance = Arc::new(Instance {
                cache,
                writes: tokio::sync::Mutex::new(()),
            });
            if instances.insert(id.clone(), instance).is_some() {
                return Err(BuildError::DuplicateInstance(id));
            }
        }
        if self.tokens.is_empty() && self.access_keys.is_empty() {
            return Err(BuildError::NoCredentials);
        }
        let mut digests = HashSet::new();
        for token in &self.tokens {
            if token.len() < MIN_TOKEN_LEN {
                return Err(BuildError::TokenTooShort);
            }
            if !digests.insert(token.digest()) {
                return Err(BuildError::DuplicateToken);
            }
        }
        let mut keys = HashSet::new();
        for key in &self.access_keys {
            let ak = key.access_key();
            let valid = !ak.is_empty()
                && ak.len() <= 128
                && ak.bytes().all(|b| b.is_ascii_graphic() && b != b',');
            if !valid {
                return Err(BuildError::InvalidAccessKey(ak.to_owned()));
            }
            if key.secret_is_empty() {
                return Err(BuildError::EmptySecretKey(ak.to_owned()));
            }
            if !keys.insert(ak.to_owned()) {
                return Err(BuildError::DuplicateAccessKey(ak.to_owned()));
            }
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemTime::now));
        Ok(AdminApi {
            shared: Arc::new(Shared {
                store,
                instances,
                auth: Authenticator::new(self.tokens, self.access_keys, self.max_skew, clock),
                body_limit: self.body_limit,
            }),
        })
    }
}

/// Why an [`AdminApiBuilder`] refused its configuration. Never shows a token or secret key.
///
/// ```
/// use apig_appcode::admin::{AdminApi, BuildError};
///
/// assert!(matches!(AdminApi::builder().build(), Err(BuildError::MissingStore)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No [`store`](AdminApiBuilder::store).
    MissingStore,
    /// No [`instance`](AdminApiBuilder::instance).
    NoInstance,
    /// An instance ID that is not 1 to 64 ASCII letters, digits, `-` or `_`.
    InvalidInstanceId(String),
    /// The same instance twice.
    DuplicateInstance(String),
    /// Neither a token nor an access key: nobody could call the API.
    NoCredentials,
    /// A token shorter than [`MIN_TOKEN_LEN`] bytes.
    TokenTooShort,
    /// The same token twice (with possibly different permissions).
    DuplicateToken,
    /// An access key that is empty, longer than 128 bytes, or not visible ASCII without `,`.
    InvalidAccessKey(String),
    /// An access key with an empty secret key.
    EmptySecretKey(String),
    /// The same access key twice.
    DuplicateAccessKey(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingStore => f.write_str("no store configured"),
            Self::NoInstance => f.write_str("no gateway instance configured"),
            Self::InvalidInstanceId(id) => write!(
                f,
                "instance ID {id:?} must be 1 to 64 ASCII letters, digits, '-' or '_'"
            ),
            Self::DuplicateInstance(id) => write!(f, "instance {id:?} configured twice"),
            Self::NoCredentials => f.write_str("no token and no access key configured"),
            Self::TokenTooShort => {
                write!(f, "a token must be at least {MIN_TOKEN_LEN} bytes long")
            }
            Self::DuplicateToken => f.write_str("the same token is configured twice"),
            Self::InvalidAccessKey(ak) => write!(
                f,
                "access key {ak:?} must be 1 to 128 visible ASCII characters without ','"
            ),
            Self::EmptySecretKey(ak) => write!(f, "access key {ak:?} has an empty secret key"),
            Self::DuplicateAccessKey(ak) => write!(f, "access key {ak:?} configured twice"),
        }
    }
}

impl std::error::Error for BuildError {}
