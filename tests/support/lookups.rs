//! A provider for the tests of what happens on a cache miss: it knows no code, and answers
//! every lookup with the future its function makes.

#![allow(dead_code, unreachable_pub)]

use apig_appcode::provider::{AppCodeProvider, BoxFuture, ProviderError, Snapshot};
use apig_appcode::{AppCode, AppIdentity};

/// The answer of one lookup.
pub(crate) type Answer = BoxFuture<'static, Result<Option<AppIdentity>, ProviderError>>;

/// Knows no code; looks every code up with `F`.
pub(crate) struct LookupsOnly<F>(pub(crate) F);

impl<F> AppCodeProvider for LookupsOnly<F>
where
    F: Fn() -> Answer + Send + Sync + 'static,
{
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn supports_lookup(&self) -> bool {
        true
    }

    fn lookup<'a>(&'a self, _: &'a AppCode) -> Answer {
        (self.0)()
    }
}
