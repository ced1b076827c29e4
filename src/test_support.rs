//! A scriptable provider for unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::provider::{
    AppAcls, AppCodeProvider, AppQuotas, BoxFuture, ChangeStream, Delta, ProviderError, Snapshot,
};
use crate::{AppCode, AppIdentity};

/// What the provider answers and how often it was asked.
#[derive(Default)]
pub(crate) struct Script {
    /// `None` makes `snapshot` fail: unavailable, or unusable when `snapshot_unusable`.
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) snapshot_unusable: bool,
    /// `Some` turns point lookups on; a value maps to an identity, absent means unknown.
    pub(crate) lookups: Option<HashMap<String, AppIdentity>>,
    pub(crate) lookup_fails: bool,
    pub(crate) lookup_delay: Duration,
    /// When set, each lookup answers only after taking a permit (read its answer at call time).
    pub(crate) lookup_gate: Option<Arc<Semaphore>>,
    /// When set, each snapshot answers only after taking a permit.
    pub(crate) snapshot_gate: Option<Arc<Semaphore>>,
    pub(crate) changes: Option<ChangeStream>,
    /// `Some` gives snapshots this revision and answers `changes_since` it with no change.
    pub(crate) revision: Option<u64>,
    /// What `app_acls` answers (`None`: a provider without ACLs).
    pub(crate) acls: Option<AppAcls>,
    /// What `app_quotas` answers (`None`: a provider without quotas).
    pub(crate) quotas: Option<AppQuotas>,
}

/// Waits for one permit of `gate`, if there is one, and uses it up.
async fn pass(gate: Option<Arc<Semaphore>>) {
    if let Some(gate) = gate {
        gate.acquire()
            .await
            .expect("gates are never closed")
            .forget();
    }
}

#[derive(Clone, Default)]
pub(crate) struct ScriptedProvider {
    pub(crate) script: Arc<Mutex<Script>>,
    pub(crate) snapshots: Arc<AtomicUsize>,
    pub(crate) lookups: Arc<AtomicUsize>,
}

impl ScriptedProvider {
    pub(crate) fn with_snapshot(snapshot: Snapshot) -> Self {
        let p = Self::default();
        p.script.lock().unwrap().snapshot = Some(snapshot);
        p
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap());
    }

    pub(crate) fn snapshot_calls(&self) -> usize {
        self.snapshots.load(Ordering::SeqCst)
    }

    pub(crate) fn lookup_calls(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl AppCodeProvider for ScriptedProvider {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
        self.snapshots.fetch_add(1, Ordering::SeqCst);
        let (result, unusable, gate) = {
            let s = self.script.lock().unwrap();
            (
                s.snapshot.clone(),
                s.snapshot_unusable,
                s.snapshot_gate.clone(),
            )
        };
        Box::pin(async move {
            pass(gate).await;
            result.ok_or_else(|| match unusable {
                true => ProviderError::Unusable("scripted corruption".into()),
                false => ProviderError::Unavailable("scripted failure".into()),
            })
        })
    }

    fn supports_lookup(&self) -> bool {
        self.script.lock().unwrap().lookups.is_some()
    }

    fn lookup<'a>(
        &'a self,
        code: &'a AppCode,
    ) -> BoxFuture<'a, Result<Option<AppIdentity>, ProviderError>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let (found, fails, delay, gate) = {
            let s = self.script.lock().unwrap();
            let found = s
                .lookups
                .as_ref()
                .and_then(|m| m.get(code.expose()).cloned());
            (found, s.lookup_fails, s.lookup_delay, s.lookup_gate.clone())
        };
        Box::pin(async move {
            pass(gate).await;
            tokio::time::sleep(delay).await;
            if fails {
                return Err(ProviderError::Unavailable("scripted lookup failure".into()));
            }
            Ok(found)
        })
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.script.lock().unwrap().changes.take()
    }

    fn revisioned_snapshot(&self) -> BoxFuture<'_, Result<(Snapshot, Option<u64>), ProviderError>> {
        let revision = self.script.lock().unwrap().revision;
        Box::pin(async move { Ok((self.snapshot().await?, revision)) })
    }

    fn app_acls(&self) -> BoxFuture<'_, Result<Option<AppAcls>, ProviderError>> {
        let acls = self.script.lock().unwrap().acls.clone();
        Box::pin(async move { Ok(acls) })
    }

    fn app_quotas(&self) -> BoxFuture<'_, Result<Option<AppQuotas>, ProviderError>> {
        let quotas = self.script.lock().unwrap().quotas.clone();
        Box::pin(async move { Ok(quotas) })
    }

    fn changes_since(&self, since: u64) -> BoxFuture<'_, Result<Option<Delta>, ProviderError>> {
        let revision = self.script.lock().unwrap().revision;
        Box::pin(async move {
            Ok((revision == Some(since)).then(|| Delta {
                revision: since,
                changes: Vec::new(),
            }))
        })
    }
}
