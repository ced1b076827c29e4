//! A fixed set of codes held in memory.

use std::sync::Arc;

use super::{AppCodeProvider, AppKeys, BoxFuture, ProviderError, Snapshot};
use crate::app_key::AppKey;
use crate::code::AppCode;
use crate::identity::AppIdentity;

/// A provider with a fixed set of codes, for tests, examples and configuration known at start.
///
/// ```
/// use apig_appcode::{AppCode, AppIdentity};
/// use apig_appcode::provider::StaticProvider;
///
/// let provider = StaticProvider::builder()
///     .code(AppCode::generate(), AppIdentity::new("app-1", "code-1"))
///     .code(AppCode::generate(), AppIdentity::new("app-1", "code-2"))
///     .build();
/// assert_eq!(provider.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct StaticProvider {
    entries: Arc<Snapshot>,
    keys: Arc<AppKeys>,
}

impl StaticProvider {
    /// A builder with no codes.
    pub fn builder() -> StaticProviderBuilder {
        StaticProviderBuilder::default()
    }

    /// How many codes the provider holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the provider holds no code.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl AppCodeProvider for StaticProvider {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
        let entries = Arc::clone(&self.entries);
        Box::pin(async move { Ok((*entries).clone()) })
    }

    fn app_keys(&self) -> BoxFuture<'_, Result<Option<AppKeys>, ProviderError>> {
        let keys = Arc::clone(&self.keys);
        // No keys given: the cache's own (set by hand) are left alone, as without the method.
        Box::pin(async move { Ok((!keys.is_empty()).then(|| (*keys).clone())) })
    }
}

/// Builds a [`StaticProvider`].
#[derive(Debug, Default)]
pub struct StaticProviderBuilder {
    entries: Snapshot,
    keys: AppKeys,
}

impl StaticProviderBuilder {
    /// Adds a code and the identity it stands for.
    pub fn code(mut self, code: AppCode, identity: AppIdentity) -> Self {
        self.entries.push((code, identity));
        self
    }

    /// Adds a code of app `app_id` with ID `app_code_id`.
    pub fn app_code(mut self, app_id: &str, app_code_id: &str, code: AppCode) -> Self {
        self.entries
            .push((code, AppIdentity::new(app_id, app_code_id)));
        self
    }

    /// Gives app `app_id` the signing key `key` and secret `secret` (see
    /// [`AppAuth`](crate::layer::AppAuth)).
    ///
    /// ```
    /// use apig_appcode::provider::StaticProvider;
    ///
    /// let provider = StaticProvider::builder().app_key("app-1", "key-1", "secret-1").build();
    /// # let _ = provider;
    /// ```
    pub fn app_key(mut self, app_id: &str, key: &str, secret: &str) -> Self {
        self.keys
            .push((app_id.to_owned(), Arc::new(AppKey::new(key, secret))));
        self
    }

    /// Builds the provider.
    pub fn build(self) -> StaticProvider {
        StaticProvider {
            entries: Arc::new(self.entries),
            keys: Arc::new(self.keys),
        }
    }
}
