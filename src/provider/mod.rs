//! Where AppCodes come from: the [`AppCodeProvider`] trait and the providers shipped here.
//!
//! A provider hands the layer's refresher a full snapshot of every code it knows, may answer a
//! point lookup when a request carries a code the cache lacks, may push change events so that
//! creations and revocations take effect without waiting for the next refresh, and may answer
//! what changed since a revision, so that a refresh costs what changed rather than what exists.
//!
//! # Example
//!
//! ```
//! use apig_appcode::{AppCode, AppIdentity};
//! use apig_appcode::provider::{AppCodeProvider, StaticProvider};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let code = AppCode::generate();
//! let provider = StaticProvider::builder()
//!     .code(code.clone(), AppIdentity::new("app-1", "code-1"))
//!     .build();
//! let snapshot = provider.snapshot().await.unwrap();
//! assert_eq!(snapshot.len(), 1);
//! # }
//! ```

mod digest;
#[cfg(feature = "file")]
mod file;
mod static_provider;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::code::AppCode;
use crate::identity::AppIdentity;
use crate::quota::{AppQuota, QuotaCount, SharedCount};

pub use crate::boxed::{BoxError, BoxFuture};
pub use digest::{CodesDigest, RevisionDigest};
#[cfg(feature = "file")]
pub use file::FileProvider;
// The file parser, for the fuzz target only (`crate::__fuzz`).
#[cfg(feature = "fuzzing")]
pub(crate) use file::parse as parse_file;
pub use static_provider::{StaticProvider, StaticProviderBuilder};

/// Every code a provider knows, with the identity each stands for.
pub type Snapshot = Vec<(AppCode, AppIdentity)>;

/// The ACLs of a provider's apps: each app's ID and its ACL (see
/// [`AppCodeProvider::app_acls`]).
pub type AppAcls = Vec<(String, Arc<AppAcl>)>;

/// The quotas of a provider's apps: each app's ID and its quota (see
/// [`AppCodeProvider::app_quotas`]).
pub type AppQuotas = Vec<(String, Arc<AppQuota>)>;

/// The signing keys of a provider's apps: each app's ID and its key and secret (see
/// [`AppCodeProvider::app_keys`]).
pub type AppKeys = Vec<(String, Arc<AppKey>)>;

/// What changed in a provider's codes after a revision, and the revision that brings a reader to
/// (see [`AppCodeProvider::changes_since`]).
///
/// ```
/// use apig_appcode::provider::{Change, Delta};
///
/// let delta = Delta { revision: 12, changes: vec![Change::RemoveId("code-1".into())] };
/// assert_eq!(delta.changes.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Delta {
    /// The revision the changes bring a reader to.
    pub revision: u64,
    /// The changes, in the order they are to be applied. [`Change::Resync`] is ignored here.
    pub changes: Vec<Change>,
}

/// A source of AppCodes for the layer's cache.
///
/// Only [`snapshot`](Self::snapshot) is required. A database-backed provider typically also
/// implements [`changes`](Self::changes); a provider that cannot list its codes (a remote
/// validation service) implements [`lookup`](Self::lookup) and returns an empty snapshot.
///
/// ```
/// use apig_appcode::provider::{AppCodeProvider, BoxFuture, ProviderError, Snapshot};
///
/// struct Empty;
///
/// impl AppCodeProvider for Empty {
///     fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
///         Box::pin(async { Ok(Vec::new()) })
///     }
/// }
/// ```
pub trait AppCodeProvider: Send + Sync + 'static {
    /// Every code the provider knows. The refresher calls it at start, on every refresh interval
    /// and after a [`Change::Resync`]; the result replaces the cache's content.
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>>;

    /// Whether [`lookup`](Self::lookup) is implemented. When `false` (the default) a cache miss
    /// is simply a rejection and the provider is never asked.
    fn supports_lookup(&self) -> bool {
        false
    }

    /// Looks one code up after a cache miss: `Ok(None)` if the code is unknown. Called only when
    /// [`supports_lookup`](Self::supports_lookup) is `true`, at most once per distinct unknown code
    /// per negative-cache TTL, with concurrent misses of one code coalesced into one call whose
    /// outcome (found, unknown, failed or timed out) they all share. The call runs as a tokio
    /// task of its own: requests dropped while it runs do not cancel it, and it is bounded by
    /// the layer's lookup timeout. An answer that a revocation overtook while the call ran is
    /// not cached.
    fn lookup<'a>(
        &'a self,
        code: &'a AppCode,
    ) -> BoxFuture<'a, Result<Option<AppIdentity>, ProviderError>> {
        let _ = code;
        Box::pin(async { Ok(None) })
    }

    /// Looks an app's signing key up after a cache miss (see [`app_keys`](Self::app_keys)):
    /// `Ok(None)` if no app has the key, else the app's ID and its key and secret. Called only
    /// when [`supports_lookup`](Self::supports_lookup) is `true`, under the same rules as
    /// [`lookup`](Self::lookup): once per unknown key per negative-cache TTL, concurrent misses
    /// of one key sharing one call, bounded by the layer's lookup timeout. The default knows no
    /// key.
    fn lookup_app_key<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, AppKey)>, ProviderError>> {
        let _ = key;
        Box::pin(async { Ok(None) })
    }

    /// A stream of change events, or `None` (the default) if the provider has none. Called once,
    /// when the refresher starts.
    fn changes(&self) -> Option<ChangeStream> {
        None
    }

    /// A snapshot and the revision it reflects, for a provider that can also answer
    /// [`changes_since`](Self::changes_since) that revision. The default is
    /// [`snapshot`](Self::snapshot) with no revision: the refresher then reloads the full
    /// snapshot on every refresh.
    fn revisioned_snapshot(&self) -> BoxFuture<'_, Result<(Snapshot, Option<u64>), ProviderError>> {
        Box::pin(async move { Ok((self.snapshot().await?, None)) })
    }

    /// [`revisioned_snapshot`](Self::revisioned_snapshot), each code handed to `sink` as it is
    /// read rather than all at once, so that a large set is never held twice (the provider's
    /// answer beside the cache). The refresher loads snapshots through this method and bounds
    /// it by progress: it fails when no code arrives within the load timeout, however long
    /// the whole takes. The default hands over
    /// [`revisioned_snapshot`](Self::revisioned_snapshot)'s codes.
    fn snapshot_into<'a>(
        &'a self,
        sink: &'a mut (dyn FnMut(AppCode, AppIdentity) + Send),
    ) -> BoxFuture<'a, Result<Option<u64>, ProviderError>> {
        Box::pin(async move {
            let (snapshot, revision) = self.revisioned_snapshot().await?;
            for (code, identity) in snapshot {
                sink(code, identity);
            }
            Ok(revision)
        })
    }

    /// What changed after `revision` (one this provider returned), or `None` when the provider
    /// cannot tell (it no longer holds changes that old): the refresher then loads a full
    /// snapshot. A refresh of a provider that implements this costs what changed, not what
    /// exists. The default is `None`.
    ///
    /// ```
    /// use apig_appcode::provider::{AppCodeProvider, BoxFuture, Delta, ProviderError, Snapshot};
    ///
    /// /// A provider whose codes never change after the first load.
    /// struct Frozen(Snapshot);
    ///
    /// impl AppCodeProvider for Frozen {
    ///     fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
    ///         Box::pin(async { Ok(self.0.clone()) })
    ///     }
    ///     fn revisioned_snapshot(&self) -> BoxFuture<'_, Result<(Snapshot, Option<u64>), ProviderError>> {
    ///         Box::pin(async { Ok((self.0.clone(), Some(1))) })
    ///     }
    ///     fn changes_since(&self, revision: u64) -> BoxFuture<'_, Result<Option<Delta>, ProviderError>> {
    ///         Box::pin(async move { Ok((revision == 1).then(|| Delta { revision: 1, changes: Vec::new() })) })
    ///     }
    /// }
    /// ```
    fn changes_since(&self, revision: u64) -> BoxFuture<'_, Result<Option<Delta>, ProviderError>> {
        let _ = revision;
        Box::pin(async { Ok(None) })
    }

    /// A digest of the codes the provider holds, with the revision it reflects: what the
    /// refresher's anti-entropy check compares with the cache's own digest, reloading the
    /// snapshot when they differ at the same revision. Read it from what the provider holds
    /// (a store's tables), not from what it logged, so that a change that bypassed the log is
    /// seen. `None`, the default: the cache is never checked.
    fn digest(&self) -> BoxFuture<'_, Result<Option<RevisionDigest>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// The ACL of every app that has one (see [`acl`](crate::acl)), read with each snapshot;
    /// the cache then holds exactly these. `None`, the default, means the provider keeps no
    /// ACLs: the cache's ACLs (set with
    /// [`AppCodeCache::set_app_acl`](crate::AppCodeCache::set_app_acl)) are left alone. Changes
    /// to them arrive as [`Change::AppAcl`].
    fn app_acls(&self) -> BoxFuture<'_, Result<Option<AppAcls>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// The quota of every app bound to one (see [`quota`](crate::quota)), read with each
    /// snapshot like [`app_acls`](Self::app_acls): `None`, the default, leaves the cache's own
    /// quotas alone. Changes to them arrive as [`Change::AppQuota`].
    fn app_quotas(&self) -> BoxFuture<'_, Result<Option<AppQuotas>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// The signing key and secret of every app (see [`AppAuth`](crate::layer::AppAuth)), read
    /// with each snapshot like [`app_acls`](Self::app_acls): `None`, the default, leaves the
    /// cache's own keys alone. Changes arrive as [`Change::AppKey`]; [`Change::RemoveApp`]
    /// removes the app's key too. Only a layer that accepts signatures reads them.
    fn app_keys(&self) -> BoxFuture<'_, Result<Option<AppKeys>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// Whether quota counts are shared between the nodes using this provider
    /// ([`add_quota_counts`](Self::add_quota_counts)). When `false` (the default) each node
    /// counts its own calls. Nodes count the same windows only if they agree on each quota's
    /// anchor: give the quotas of such a provider a reset time ([`AppQuota::reset_time`]), as
    /// [`StoreProvider`](crate::store::StoreProvider) does with the binding time. Without one
    /// each node anchors at the first call it sees, and the first node to add a count sets the
    /// anchor the others adopt.
    fn shares_quota_counts(&self) -> bool {
        false
    }

    /// Adds a node's calls to the shared quota counts (see
    /// [`SharedCount::add`](crate::quota::SharedCount::add) for the rule) and returns each
    /// app's shared count after the addition, in the same order. Called only when
    /// [`shares_quota_counts`](Self::shares_quota_counts) is `true`: at most once a second
    /// while calls are counted, never while none are.
    fn add_quota_counts(
        &self,
        counts: Vec<QuotaCount>,
    ) -> BoxFuture<'_, Result<Vec<SharedCount>, ProviderError>> {
        let _ = counts;
        Box::pin(async {
            Err(ProviderError::Unavailable(
                "this provider shares no quota counts".into(),
            ))
        })
    }
}

/// One change pushed by a provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Change {
    /// A code was created or its identity changed.
    Upsert {
        /// The code.
        code: AppCode,
        /// Who it stands for.
        identity: AppIdentity,
    },
    /// A code was deleted; its value is known.
    Remove(AppCode),
    /// A code was deleted; only its ID is known (the cache is scanned).
    RemoveId(String),
    /// An app was deleted with all its codes (the cache is scanned), its ACL, its quota and its
    /// signing key.
    RemoveApp(String),
    /// An app's signing key or secret was set or changed (`Some`: the old key stops verifying
    /// at once) or removed (`None`).
    AppKey {
        /// The app.
        app_id: String,
        /// Its key and secret now.
        key: Option<Arc<AppKey>>,
    },
    /// An app's ACL was set (`Some`) or removed (`None`).
    AppAcl {
        /// The app.
        app_id: String,
        /// Its ACL now.
        acl: Option<Arc<AppAcl>>,
    },
    /// An app's quota was bound or changed (`Some`) or removed (`None`).
    AppQuota {
        /// The app.
        app_id: String,
        /// Its quota now.
        quota: Option<Arc<AppQuota>>,
    },
    /// Events may have been lost: catch up now, with the changes since the last revision
    /// where the provider has [revisions](AppCodeProvider::changes_since), else with a full
    /// snapshot.
    Resync,
    /// Some change may be missing from the provider's [revisions](AppCodeProvider::changes_since)
    /// (a writer that keeps none, such as an older version sharing the database): load a full
    /// snapshot now. The same as [`Resync`](Self::Resync) for a provider without revisions.
    Reload,
}

/// The receiving end of a provider's change events. Create one with [`ChangeStream::channel`].
#[derive(Debug)]
pub struct ChangeStream(mpsc::Receiver<Change>);

/// The sending end of a [`ChangeStream`].
#[derive(Debug, Clone)]
pub struct ChangeSender(mpsc::Sender<Change>);

impl ChangeStream {
    /// A bounded channel of change events; a full channel makes [`ChangeSender::send`] wait.
    ///
    /// ```
    /// use apig_appcode::provider::{Change, ChangeStream};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (tx, mut rx) = ChangeStream::channel(16);
    /// tx.send(Change::Resync).await.unwrap();
    /// assert!(matches!(rx.next().await, Some(Change::Resync)));
    /// # }
    /// ```
    pub fn channel(capacity: usize) -> (ChangeSender, ChangeStream) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (ChangeSender(tx), ChangeStream(rx))
    }

    /// The next event, or `None` once every sender is gone.
    pub async fn next(&mut self) -> Option<Change> {
        self.0.recv().await
    }
}

impl ChangeSender {
    /// Sends one event; fails only when the stream was dropped (the refresher stopped).
    pub async fn send(&self, change: Change) -> Result<(), Closed> {
        self.0.send(change).await.map_err(|_| Closed)
    }

    /// Whether the receiving side is gone.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// The change stream's receiver was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the change stream was closed")
    }
}

impl StdError for Closed {}

/// Why a provider could not answer. Messages never contain AppCode values.
///
/// The refresher retries a [transient](Self::is_transient) error soon (100 ms, doubling up to
/// the refresh interval), and any other only once per refresh interval, logged as an error:
/// retrying sooner cannot fix what an operator has to.
///
/// ```
/// use apig_appcode::provider::ProviderError;
///
/// assert!(ProviderError::Unavailable("connection refused".into()).is_transient());
/// assert!(!ProviderError::Invalid("line 3: not an AppCode".into()).is_transient());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ProviderError {
    /// The backend could not be reached or did not answer in time (network, a busy or frozen
    /// database): it may answer if asked again.
    Unavailable(BoxError),
    /// The backend answered with data that is not a valid set of codes.
    Invalid(String),
    /// The backend answered, but cannot serve codes until an operator acts: a corrupt store, a
    /// master key that does not open it, a schema written by a newer version.
    Unusable(BoxError),
}

impl ProviderError {
    /// Whether asking again soon may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "provider unavailable: {e}"),
            Self::Invalid(why) => write!(f, "provider data invalid: {why}"),
            Self::Unusable(e) => write!(f, "provider unusable: {e}"),
        }
    }
}

impl StdError for ProviderError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Unavailable(e) | Self::Unusable(e) => Some(&**e),
            Self::Invalid(_) => None,
        }
    }
}
