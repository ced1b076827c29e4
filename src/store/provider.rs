//! [`StoreProvider`]: a store as the layer's AppCode provider.

use std::sync::Arc;

use super::Store;
use crate::identity::AppIdentity;
use crate::provider::{AppCodeProvider, BoxFuture, ChangeStream, ProviderError, Snapshot};

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
}

impl std::fmt::Debug for StoreProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreProvider")
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl StoreProvider {
    /// A provider of `store`'s codes for `instance_id`.
    pub fn new(store: Arc<dyn Store>, instance_id: impl Into<String>) -> Self {
        Self {
            store,
            instance_id: instance_id.into(),
        }
    }
}

impl AppCodeProvider for StoreProvider {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
        Box::pin(async move {
            let records = self
                .store
                .instance_app_codes(&self.instance_id)
                .await
                .map_err(|e| ProviderError::Unavailable(Box::new(e)))?;
            // Codes of one app share one allocation of the app ID.
            let mut last: Option<Arc<str>> = None;
            Ok(records
                .into_iter()
                .map(|r| {
                    let app_id = match &last {
                        Some(a) if **a == *r.app_id => Arc::clone(a),
                        _ => {
                            let a: Arc<str> = Arc::from(r.app_id.as_str());
                            last = Some(Arc::clone(&a));
                            a
                        }
                    };
                    let identity = AppIdentity::new(app_id, &r.id);
                    (r.value, identity)
                })
                .collect())
        })
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.store.changes(&self.instance_id)
    }
}
