//! [`StoreProvider`]: a store as the layer's AppCode provider.

use std::sync::Arc;

use super::{AppCodeRecord, Store, StoreError};
use crate::code::AppCode;
use crate::identity::AppIdentity;
use crate::provider::{
    AppAcls, AppCodeProvider, AppKeys, AppQuotas, BoxFuture, Change, ChangeStream, Delta,
    ProviderError, RevisionDigest, Snapshot,
};
use crate::quota::{QuotaCount, SharedCount};

/// Feeds the layer's cache with every AppCode of one gateway instance.
///
/// ```
/// use std::sync::Arc;
/// use apig_appcode::AppCodeAuthLayer;
/// use apig_appcode::store::{MemoryStore, StoreProvider};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = Arc::new(MemoryStore::new());
/// let layer = AppCodeAuthLayer::builder()
///     .provider(StoreProvider::new(store, "instance-1"))
///     .build();
/// layer.cache().loaded().await;
/// # }
/// ```
#[derive(Clone)]
pub struct StoreProvider {
    store: Arc<dyn Store>,
    instance_id: String,
    /// Whether the apps' signing keys are read (and their secrets opened) for the cache.
    keys: bool,
}

impl std::fmt::Debug for StoreProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreProvider")
            .field("instance_id", &self.instance_id)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl StoreProvider {
    /// A provider of `store`'s codes for `instance_id`.
    pub fn new(store: Arc<dyn Store>, instance_id: impl Into<String>) -> Self {
        Self {
            store,
            instance_id: instance_id.into(),
            keys: false,
        }
    }

    /// Also feeds the apps' signing keys and secrets, for a layer that accepts signatures
    /// ([`AppAuth`](crate::layer::AppAuth)); off by default, so that a layer of AppCodes only
    /// holds no app secret in memory. Pushed changes ([`Store::changes`]) carry keys either
    /// way.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use apig_appcode::store::{MemoryStore, StoreProvider};
    ///
    /// let provider = StoreProvider::new(Arc::new(MemoryStore::new()), "i1").signing_keys(true);
    /// # let _ = provider;
    /// ```
    pub fn signing_keys(mut self, on: bool) -> Self {
        self.keys = on;
        self
    }
}

impl StoreProvider {
    async fn read_snapshot(&self) -> Result<(Snapshot, Option<u64>), ProviderError> {
        let snapshot = self
            .store
            .instance_snapshot(&self.instance_id)
            .await
            .map_err(unavailable)?;
        Ok((identities(snapshot.codes), snapshot.revision))
    }
}

/// A store error as the refresher needs it: a store that did not answer may next time; one
/// that answered with an error (corrupt data, a key that does not fit) needs an operator.
fn unavailable(e: StoreError) -> ProviderError {
    if e.is_unavailable() {
        ProviderError::Unavailable(Box::new(e))
    } else {
        ProviderError::Unusable(Box::new(e))
    }
}

/// Each app's ACL, quota or key (or its absence) as the cache holds it: shared, since the cache
/// hands it to every request of the app.
fn shared<T>(per_app: Vec<(String, Option<T>)>) -> impl Iterator<Item = (String, Option<Arc<T>>)> {
    per_app
        .into_iter()
        .map(|(app_id, item)| (app_id, item.map(Arc::new)))
}

/// Every app's ACL, quota or key that `read` reads from the store, each shared as in [`shared`].
async fn all_shared<T>(
    read: impl std::future::Future<Output = Result<Vec<(String, T)>, StoreError>>,
) -> Result<Option<Vec<(String, Arc<T>)>>, ProviderError> {
    let per_app = read.await.map_err(unavailable)?;
    Ok(Some(
        per_app
            .into_iter()
            .map(|(app_id, item)| (app_id, Arc::new(item)))
            .collect(),
    ))
}

/// The records as cache entries; codes of one app share one allocation of the app ID.
fn identities(records: Vec<AppCodeRecord>) -> Snapshot {
    let mut entries = Entries::default();
    records.into_iter().map(|r| entries.of(r)).collect()
}

/// Turns records into cache entries one by one, the codes of one app (read one after another)
/// sharing one allocation of its ID.
#[derive(Default)]
struct Entries {
    last_app: Option<Arc<str>>,
}

impl Entries {
    fn of(&mut self, record: AppCodeRecord) -> (AppCode, AppIdentity) {
        let app_id = match &self.last_app {
            Some(a) if **a == *record.app_id => Arc::clone(a),
            _ => {
                let a: Arc<str> = Arc::from(record.app_id.as_str());
                self.last_app = Some(Arc::clone(&a));
                a
            }
        };
        let identity = AppIdentity::new(app_id, &record.id);
        (record.value, identity)
    }
}

impl AppCodeProvider for StoreProvider {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
        Box::pin(async move { Ok(self.read_snapshot().await?.0) })
    }

    fn revisioned_snapshot(&self) -> BoxFuture<'_, Result<(Snapshot, Option<u64>), ProviderError>> {
        Box::pin(self.read_snapshot())
    }

    fn snapshot_into<'a>(
        &'a self,
        sink: &'a mut (dyn FnMut(AppCode, AppIdentity) + Send),
    ) -> BoxFuture<'a, Result<Option<u64>, ProviderError>> {
        Box::pin(async move {
            let mut entries = Entries::default();
            let mut each = |record| {
                let (code, identity) = entries.of(record);
                sink(code, identity);
            };
            self.store
                .instance_snapshot_into(&self.instance_id, &mut each)
                .await
                .map_err(unavailable)
        })
    }

    fn changes_since(&self, revision: u64) -> BoxFuture<'_, Result<Option<Delta>, ProviderError>> {
        Box::pin(async move {
            let Some(changes) = self
                .store
                .app_code_changes(&self.instance_id, revision)
                .await
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            // Removals first: an ID deleted and created again after `revision` is in both
            // lists, and the code that exists now is the one in `created`.
            let removals = changes
                .deleted
                .into_iter()
                .map(|gone| Change::RemoveId(gone.id));
            let creations = identities(changes.created)
                .into_iter()
                .map(|(code, identity)| Change::Upsert { code, identity });
            let acls = shared(changes.acls).map(|(app_id, acl)| Change::AppAcl { app_id, acl });
            let quotas =
                shared(changes.quotas).map(|(app_id, quota)| Change::AppQuota { app_id, quota });
            let keys = if self.keys { changes.keys } else { Vec::new() };
            let keys = shared(keys).map(|(app_id, key)| Change::AppKey { app_id, key });
            Ok(Some(Delta {
                revision: changes.revision,
                changes: removals
                    .chain(creations)
                    .chain(acls)
                    .chain(quotas)
                    .chain(keys)
                    .collect(),
            }))
        })
    }

    fn digest(&self) -> BoxFuture<'_, Result<Option<RevisionDigest>, ProviderError>> {
        Box::pin(async move {
            self.store
                .instance_digest(&self.instance_id)
                .await
                .map_err(unavailable)
        })
    }

    fn app_acls(&self) -> BoxFuture<'_, Result<Option<AppAcls>, ProviderError>> {
        Box::pin(all_shared(self.store.instance_app_acls(&self.instance_id)))
    }

    fn app_quotas(&self) -> BoxFuture<'_, Result<Option<AppQuotas>, ProviderError>> {
        Box::pin(all_shared(
            self.store.instance_app_quotas(&self.instance_id),
        ))
    }

    fn app_keys(&self) -> BoxFuture<'_, Result<Option<AppKeys>, ProviderError>> {
        Box::pin(async move {
            if !self.keys {
                return Ok(None);
            }
            all_shared(self.store.instance_app_keys(&self.instance_id)).await
        })
    }

    fn shares_quota_counts(&self) -> bool {
        true
    }

    fn add_quota_counts(
        &self,
        counts: Vec<QuotaCount>,
    ) -> BoxFuture<'_, Result<Vec<SharedCount>, ProviderError>> {
        Box::pin(async move {
            self.store
                .add_quota_counts(&self.instance_id, &counts)
                .await
                .map_err(unavailable)
        })
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.store.changes(&self.instance_id)
    }
}
