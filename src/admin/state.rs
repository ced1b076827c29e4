//! [`Shared`]: the state every handler of the management router reads, behind one `Arc`, and
//! the [`Instance`]s it serves. [`AdminApi`](super::AdminApi) builds it; [`Call`](super::call::Call)
//! hands it to handlers.

use std::collections::HashMap;
use std::sync::Arc;

use super::auth::Authenticator;
use crate::cache::AppCodeCache;
use crate::store::Store;

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) instances: HashMap<String, Arc<Instance>>,
    pub(crate) auth: Authenticator,
    pub(crate) body_limit: usize,
}

/// One served gateway instance.
pub(crate) struct Instance {
    /// The cache of the gateway serving this instance.
    pub(crate) cache: AppCodeCache,
    /// Held across "change the store, then the cache", so the cache sees changes in the order
    /// the store made them (a create racing a delete of its app cannot leave a stale code).
    pub(crate) writes: tokio::sync::Mutex<()>,
}
