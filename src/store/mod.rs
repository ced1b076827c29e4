//! Persistent apps and AppCodes: the [`Store`] trait behind the management API, and the stores.
//!
//! A store keeps apps and their AppCodes per *scope* (a project and a gateway instance). Every
//! rule that must hold across concurrent writers is the store's job, inside one transaction:
//! at most [`MAX_APP_CODES_PER_APP`] codes per app, an AppCode value unique within its instance,
//! app names and app keys unique within their scope, and deleting an app deletes its codes.
//!
//! [`StoreProvider`] turns a store into an [`AppCodeProvider`](crate::provider::AppCodeProvider)
//! for the layer's cache.
//!
//! # Example
//!
//! ```
//! use apig_appcode::store::{MemoryStore, Scope, Store};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = MemoryStore::new();
//! let scope = Scope::new("project-1", "instance-1");
//! let page = store.list_apps(&scope, &Default::default(), 0, 20).await.unwrap();
//! assert_eq!(page.total, 0);
//! # }
//! ```

mod app_quotas;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod cipher;
mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod policy;
#[cfg(feature = "postgres")]
mod postgres;
mod provider;
mod revision;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sealed;
#[cfg(feature = "sqlite")]
mod sqlite;
mod time;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod version;

use std::fmt;

pub use crate::quota::{QuotaCount, SharedCount};
pub(crate) use app_quotas::anchored_at_binding;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use app_quotas::QuotaAppsWanted;
pub use app_quotas::{AppQuotaRecord, QuotaApp, QuotaBinding, MAX_APPS_PER_BINDING};
/// The attribute that writes [`Store`]'s `async fn`s as boxed futures: put it on an
/// `impl Store for ...` block (re-exported so that implementing the trait needs no dependency
/// of its own).
pub use async_trait::async_trait;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use cipher::{KeyMismatch, MasterKey, MasterKeyError};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use provider::StoreProvider;
pub use revision::{AppCodeChanges, DeletedAppCode, InstanceSnapshot, CHANGE_LOG_RETENTION};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteFileError, SqliteOptions, SqliteStore};
#[cfg(feature = "admin")]
pub(crate) use time::{format_date_time, parse_date_time};
pub use time::{Timestamp, TimestampError};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use version::SchemaTooNew;

use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::code::AppCode;
use crate::identity::AppIdentity;
use crate::provider::{BoxError, ChangeStream, RevisionDigest};
use crate::quota::AppQuota;
use crate::secret::Secret;

/// The most AppCodes one app may hold (APIG's quota).
pub const MAX_APP_CODES_PER_APP: usize = 5;

/// A project and a gateway instance: the namespace of apps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The project ID (path segment `{project_id}`).
    pub project_id: String,
    /// The gateway instance ID (path segment `{instance_id}`).
    pub instance_id: String,
}

impl Scope {
    /// A scope.
    pub fn new(project_id: impl Into<String>, instance_id: impl Into<String>) -> Self {
        Self {
            project_id: project_id.into(),
            instance_id: instance_id.into(),
        }
    }
}

/// A secret string (an app secret) whose `Debug` does not show it; it compares in constant time
/// and is zeroed on drop.
///
/// ```
/// use apig_appcode::store::SecretString;
///
/// let secret = SecretString::new("app-s3cret");
/// assert_eq!(format!("{secret:?}"), "SecretString(<redacted>)");
/// assert_eq!(secret.expose(), "app-s3cret");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SecretString(Secret<String>);

impl SecretString {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Secret::new(value.into()))
    }

    /// The value.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// An app, as APIG's management API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// 32 lowercase hex characters.
    pub id: String,
    /// Where the app lives.
    pub scope: Scope,
    /// 3 to 64 characters, unique in its scope.
    pub name: String,
    /// Up to 255 characters.
    pub remark: String,
    /// Always `USER` for apps created through the API.
    pub creator: String,
    /// Unique in its scope.
    pub app_key: String,
    /// The app secret.
    pub app_secret: SecretString,
    /// When the app was created.
    pub register_time: Timestamp,
    /// When the app last changed.
    pub update_time: Timestamp,
    /// 1 = valid.
    pub status: i32,
}

/// What an update changes in an app: each `Some` field replaces the app's, each `None` keeps
/// it. `update_time` is always set, by the caller like an app's times on creation, so every
/// store records the same instant and tests can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChanges {
    /// A new name, unique in the scope.
    pub name: Option<String>,
    /// A new remark.
    pub remark: Option<String>,
    /// A new app key, unique in the scope.
    pub app_key: Option<String>,
    /// A new app secret (APIG's reset-secret, or an update that names one).
    pub app_secret: Option<SecretString>,
    /// The app's new `update_time`.
    pub update_time: Timestamp,
}

impl App {
    /// The app's signing key and secret, as a gateway verifies its signatures.
    pub fn signing_key(&self) -> AppKey {
        AppKey::new(self.app_key.as_str(), self.app_secret.expose())
    }
}

impl AppChanges {
    /// Whether the app's signing key or secret changes: gateways must hear of it.
    pub(crate) fn touches_key(&self) -> bool {
        self.app_key.is_some() || self.app_secret.is_some()
    }

    /// No change but the `update_time`.
    pub fn at(update_time: Timestamp) -> Self {
        Self {
            name: None,
            remark: None,
            app_key: None,
            app_secret: None,
            update_time,
        }
    }

    /// `app` with the changes applied: the one definition of an update for every store, which
    /// then checks the result's name and key against the scope's other apps.
    pub(crate) fn apply_to(self, mut app: App) -> App {
        if let Some(name) = self.name {
            app.name = name;
        }
        if let Some(remark) = self.remark {
            app.remark = remark;
        }
        if let Some(app_key) = self.app_key {
            app.app_key = app_key;
        }
        if let Some(secret) = self.app_secret {
            app.app_secret = secret;
        }
        app.update_time = self.update_time;
        app
    }
}

/// One AppCode of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCodeRecord {
    /// The AppCode's ID, 32 lowercase hex characters.
    pub id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// The secret value.
    pub value: AppCode,
    /// When it was created.
    pub create_time: Timestamp,
}

impl AppCodeRecord {
    /// The identity this code stands for at the gateway.
    pub fn identity(&self) -> AppIdentity {
        AppIdentity::new(self.app_id.as_str(), &self.id)
    }
}

/// Filters of the app list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppFilter {
    /// Exactly this app ID.
    pub id: Option<String>,
    /// Name containing this text, or equal to it when `name_exact`.
    pub name: Option<String>,
    /// Match `name` exactly (APIG's `precise_search=name`).
    pub name_exact: bool,
    /// Exactly this status.
    pub status: Option<i32>,
    /// Exactly this app key.
    pub app_key: Option<String>,
    /// Exactly this creator.
    pub creator: Option<String>,
}

/// One page of a list, and how many items match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// All matching items, over every page.
    pub total: u64,
    /// The items of this page, oldest first.
    pub items: Vec<T>,
}

/// Why a store operation failed. Messages never contain AppCode values or secrets.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// No such app in this scope.
    AppNotFound,
    /// No such AppCode under this app.
    AppCodeNotFound,
    /// An app of this name exists in the scope.
    AppNameExists,
    /// An app with this app key exists in the scope.
    AppKeyExists,
    /// An AppCode with this value exists in the instance.
    AppCodeExists,
    /// The app holds [`MAX_APP_CODES_PER_APP`] codes already.
    AppCodeQuotaExceeded,
    /// No app quota with that ID in the scope.
    QuotaNotFound,
    /// Another app quota of the instance has that name.
    QuotaNameExists,
    /// The app is bound to another app quota (an app has at most one).
    AppHasQuota,
    /// The backend failed (I/O, database, corrupt data). The detail is for logs only.
    Backend(BoxError),
    /// The backend did not answer in time or could not be reached (a frozen or partitioned
    /// database, a pool whose connections all stayed busy): the call may succeed if retried
    /// later. The management API answers `503`. The detail names what timed out or failed, for
    /// logs only.
    ///
    /// ```
    /// use apig_appcode::store::StoreError;
    ///
    /// let e = StoreError::Unavailable("PostgreSQL: read app: no answer within 5s".into());
    /// assert!(e.is_unavailable());
    /// assert!(e.to_string().contains("read app"));
    /// ```
    Unavailable(BoxError),
}

impl StoreError {
    /// Whether the backend was unreachable or too slow (see [`StoreError::Unavailable`]), as
    /// opposed to refusing the call or failing for good.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AppNotFound => f.write_str("app not found"),
            Self::AppCodeNotFound => f.write_str("AppCode not found"),
            Self::AppNameExists => f.write_str("app name already exists"),
            Self::AppKeyExists => f.write_str("app key already exists"),
            Self::AppCodeExists => f.write_str("AppCode already exists"),
            Self::AppCodeQuotaExceeded => {
                write!(
                    f,
                    "an app may hold at most {MAX_APP_CODES_PER_APP} AppCodes"
                )
            }
            Self::QuotaNotFound => f.write_str("app quota not found"),
            Self::QuotaNameExists => f.write_str("app quota name already exists"),
            Self::AppHasQuota => f.write_str("the app is bound to another app quota"),
            Self::Backend(e) => write!(f, "store backend failed: {e}"),
            Self::Unavailable(e) => write!(f, "store backend unavailable: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Backend(e) | Self::Unavailable(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where apps and AppCodes live. Every method is one transaction; a method that returns `Ok` has
/// made its change durable (it survives a crash of the process).
///
/// Its methods are `async fn`s that [`async_trait`](macro@async_trait) turns into boxed futures, so that the trait
/// can be used as `dyn Store`: an implementation puts `#[async_trait]` on its `impl Store` block
/// too.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds `app`. Fails with [`StoreError::AppNameExists`] or [`StoreError::AppKeyExists`]
    /// (the name is checked first). App IDs are generated at random by the caller; a repeated
    /// ID is a [`StoreError::Backend`] error, never a silent overwrite.
    async fn create_app(&self, app: App) -> StoreResult<App>;

    /// One app.
    async fn get_app(&self, scope: &Scope, app_id: &str) -> StoreResult<App>;

    /// A page of the scope's apps matching `filter`, oldest first.
    async fn list_apps(
        &self,
        scope: &Scope,
        filter: &AppFilter,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<App>>;

    /// Applies `changes` to an app and returns it as it is now. Fails with
    /// [`StoreError::AppNotFound`], or [`StoreError::AppNameExists`] /
    /// [`StoreError::AppKeyExists`] when *another* app of the scope holds the new name or key
    /// (the name is checked first); an app keeps its own name and key without conflict. A new
    /// secret is sealed like on creation. The app's AppCodes are untouched: they belong to its
    /// ID, which never changes.
    async fn update_app(
        &self,
        scope: &Scope,
        app_id: &str,
        changes: AppChanges,
    ) -> StoreResult<App>;

    /// Deletes an app and all its AppCodes; returns the deleted codes, so callers can revoke
    /// them from caches.
    async fn delete_app(&self, scope: &Scope, app_id: &str) -> StoreResult<Vec<AppCodeRecord>>;

    /// Adds an AppCode to an app, enforcing the quota and the value's uniqueness in the
    /// instance atomically: of any number of concurrent calls, never more than
    /// [`MAX_APP_CODES_PER_APP`] succeed for one app, and never two with one value.
    async fn create_app_code(
        &self,
        scope: &Scope,
        record: AppCodeRecord,
    ) -> StoreResult<AppCodeRecord>;

    /// One AppCode of an app.
    async fn get_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord>;

    /// A page of an app's AppCodes, oldest first. [`StoreError::AppNotFound`] if the app does
    /// not exist.
    async fn list_app_codes(
        &self,
        scope: &Scope,
        app_id: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppCodeRecord>>;

    /// Deletes one AppCode and returns it.
    async fn delete_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord>;

    /// The app's ACL, or `None` when it has none. [`StoreError::AppNotFound`] if the app does
    /// not exist.
    async fn get_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<Option<AppAcl>>;

    /// Sets the app's ACL, replacing any it had. [`StoreError::AppNotFound`] if the app does
    /// not exist. Like a change of its codes, it takes the instance's next revision, so every
    /// gateway serving the instance hears of it ([`AppCodeChanges::acls`]).
    async fn set_app_acl(&self, scope: &Scope, app_id: &str, acl: AppAcl) -> StoreResult<()>;

    /// Removes the app's ACL; `true` if it had one. [`StoreError::AppNotFound`] if the app
    /// does not exist. Deleting an app removes its ACL too.
    async fn delete_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<bool>;

    /// The ACL of every app of the instance that has one: what a gateway serving it enforces.
    async fn instance_app_acls(&self, instance_id: &str) -> StoreResult<Vec<(String, AppAcl)>>;

    /// Creates an app quota. Its name must be unused in the instance.
    async fn create_app_quota(
        &self,
        scope: &Scope,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord>;

    /// One app quota, with how many apps are bound to it.
    async fn get_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<AppQuotaRecord>;

    /// The scope's app quotas in creation order, those whose name contains `name` when given.
    async fn list_app_quotas(
        &self,
        scope: &Scope,
        name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppQuotaRecord>>;

    /// Replaces an app quota's name, limit and remark with `record`'s (its ID and creation time
    /// stay); every bound app is logged as changed.
    async fn update_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord>;

    /// Deletes an app quota and its bindings; every app it was bound to is logged as changed.
    async fn delete_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<()>;

    /// Binds apps to an app quota, all or none: every app must exist in the scope and have no
    /// other quota ([`StoreError::AppHasQuota`]). An app already bound to this quota keeps its
    /// binding. Returns each app's binding, in the order given.
    async fn bind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_ids: &[String],
        bound_time: Timestamp,
    ) -> StoreResult<Vec<QuotaBinding>>;

    /// The apps bound to an app quota (`bound`), or those that could be (`!bound`: apps without
    /// any quota), in the apps' creation order, those whose name contains `app_name` when given.
    async fn quota_apps(
        &self,
        scope: &Scope,
        quota_id: &str,
        bound: bool,
        app_name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<QuotaApp>>;

    /// Unbinds an app from an app quota: [`StoreError::AppNotFound`] when it is not bound to it.
    async fn unbind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_id: &str,
    ) -> StoreResult<()>;

    /// The quota an app is bound to, if any ([`StoreError::AppNotFound`] for an unknown app).
    async fn app_bound_quota(
        &self,
        scope: &Scope,
        app_id: &str,
    ) -> StoreResult<Option<AppQuotaRecord>>;

    /// The quota of every app of an instance that is bound to one. A quota without a reset time
    /// comes anchored at the app's binding (whole seconds), so that every node sharing the store
    /// counts the same windows; [`AppCodeChanges::quotas`] carries them the same way.
    async fn instance_app_quotas(&self, instance_id: &str) -> StoreResult<Vec<(String, AppQuota)>>;

    /// Adds a node's calls to the counts every node shares, in one transaction, and returns each
    /// app's count after the addition, in order. A count for a newer window than the one held
    /// replaces it; for the same window it adds to it; for an older one it is dropped (that
    /// window has ended). The first `first_call` reported for an app is kept.
    async fn add_quota_counts(
        &self,
        instance_id: &str,
        counts: &[QuotaCount],
    ) -> StoreResult<Vec<SharedCount>>;

    /// The signing key and secret of every app of the instance: what a gateway accepting
    /// signatures verifies them with.
    async fn instance_app_keys(&self, instance_id: &str) -> StoreResult<Vec<(String, AppKey)>>;

    /// Every AppCode of the instance: what a gateway serving it must accept.
    async fn instance_app_codes(&self, instance_id: &str) -> StoreResult<Vec<AppCodeRecord>>;

    /// Every AppCode of the instance and the revision they reflect (see [`InstanceSnapshot`]), read in one
    /// transaction. The default reads [`instance_app_codes`](Self::instance_app_codes) with no
    /// revision: a store that keeps none is reloaded in full on every refresh.
    async fn instance_snapshot(&self, instance_id: &str) -> StoreResult<InstanceSnapshot> {
        Ok(InstanceSnapshot {
            codes: self.instance_app_codes(instance_id).await?,
            revision: None,
        })
    }

    /// [`instance_snapshot`](Self::instance_snapshot), each AppCode handed to `sink` as it is
    /// read rather than all at once, in an order of the store's choosing: a store that reads in
    /// a stream (PostgreSQL, app by app) never holds the whole instance, so that loading
    /// millions of codes costs the cache's memory and little more. Returns the revision. The
    /// default reads [`instance_snapshot`](Self::instance_snapshot) and hands its codes over.
    async fn instance_snapshot_into(
        &self,
        instance_id: &str,
        sink: &mut (dyn FnMut(AppCodeRecord) + Send),
    ) -> StoreResult<Option<u64>> {
        let snapshot = self.instance_snapshot(instance_id).await?;
        snapshot.codes.into_iter().for_each(sink);
        Ok(snapshot.revision)
    }

    /// What changed in the instance's AppCodes after `revision`, or `None` when the store cannot
    /// tell: its log no longer reaches back that far, `revision` is ahead of the store (another
    /// database, or one restored from a backup), or it keeps no revisions (the default). `None`
    /// means: load a full snapshot.
    async fn app_code_changes(
        &self,
        instance_id: &str,
        revision: u64,
    ) -> StoreResult<Option<AppCodeChanges>> {
        let _ = (instance_id, revision);
        Ok(None)
    }

    /// A digest of the instance's AppCodes as its tables hold them, with the revision it
    /// reflects (one transaction), for the gateways' anti-entropy check
    /// ([`CodesDigest`](crate::provider::CodesDigest)). `None` by default: a store without it
    /// is not checked.
    async fn instance_digest(&self, instance_id: &str) -> StoreResult<Option<RevisionDigest>> {
        let _ = instance_id;
        Ok(None)
    }

    /// Changes made by *other* processes sharing this store, if the store can push them
    /// (PostgreSQL can; it may repeat this process's own deletions too, which is harmless).
    /// `None` by default: other processes' changes arrive with the next refresh.
    fn changes(&self, instance_id: &str) -> Option<ChangeStream> {
        let _ = instance_id;
        None
    }
}
