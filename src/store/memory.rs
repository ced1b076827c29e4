//! [`MemoryStore`]: everything in one mutex-guarded map, for tests and throwaway setups.

use std::sync::{Mutex, MutexGuard};

use super::{
    App, AppCodeRecord, AppFilter, Page, Scope, Store, StoreError, StoreResult,
    MAX_APP_CODES_PER_APP,
};
use crate::provider::BoxFuture;

/// A store that keeps everything in memory: nothing survives the process.
///
/// It holds the same rules as the persistent stores (the conformance tests run against it too),
/// each operation under one lock.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// In creation order.
    apps: Vec<App>,
    /// In creation order.
    codes: Vec<(Scope, AppCodeRecord)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every operation
        // validates first and mutates last.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn app(&self, scope: &Scope, app_id: &str) -> StoreResult<&App> {
        self.apps
            .iter()
            .find(|a| a.scope == *scope && a.id == app_id)
            .ok_or(StoreError::AppNotFound)
    }
}

fn page<T: Clone>(items: impl Iterator<Item = T>, offset: u64, limit: u64) -> Page<T> {
    let all: Vec<T> = items.collect();
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
    let end = start
        .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
        .min(all.len());
    Page {
        total: all.len() as u64,
        items: all[start..end].to_vec(),
    }
}

fn matches(app: &App, f: &AppFilter) -> bool {
    f.id.as_ref().is_none_or(|id| app.id == *id)
        && f.name.as_ref().is_none_or(|n| {
            if f.name_exact {
                app.name == *n
            } else {
                app.name.contains(n.as_str())
            }
        })
        && f.status.is_none_or(|s| app.status == s)
        && f.app_key.as_ref().is_none_or(|k| app.app_key == *k)
        && f.creator.as_ref().is_none_or(|c| app.creator == *c)
}

impl Store for MemoryStore {
    fn create_app(&self, app: App) -> BoxFuture<'_, StoreResult<App>> {
        Box::pin(async move {
            let mut s = self.lock();
            let same_scope = s.apps.iter().filter(|a| a.scope == app.scope);
            for other in same_scope {
                if other.name == app.name {
                    return Err(StoreError::AppNameExists);
                }
                if other.app_key == app.app_key {
                    return Err(StoreError::AppKeyExists);
                }
            }
            s.apps.push(app.clone());
            Ok(app)
        })
    }

    fn get_app<'a>(&'a self, scope: &'a Scope, app_id: &'a str) -> BoxFuture<'a, StoreResult<App>> {
        Box::pin(async move { self.lock().app(scope, app_id).cloned() })
    }

    fn list_apps<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AppFilter,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Page<App>>> {
        Box::pin(async move {
            let s = self.lock();
            let apps = s
                .apps
                .iter()
                .filter(|a| a.scope == *scope && matches(a, filter))
                .cloned();
            Ok(page(apps, offset, limit))
        })
    }

    fn count_app_codes<'a>(
        &'a self,
        scope: &'a Scope,
        app_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<u64>>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(app_ids
                .iter()
                .map(|id| {
                    s.codes
                        .iter()
                        .filter(|(at, r)| at == scope && r.app_id == *id)
                        .count() as u64
                })
                .collect())
        })
    }

    fn delete_app<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<AppCodeRecord>>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.app(scope, app_id)?;
            s.apps.retain(|a| !(a.scope == *scope && a.id == app_id));
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut s.codes)
                .into_iter()
                .partition(|(at, r)| at == scope && r.app_id == app_id);
            s.codes = kept;
            Ok(gone.into_iter().map(|(_, r)| r).collect())
        })
    }

    fn create_app_code<'a>(
        &'a self,
        scope: &'a Scope,
        record: AppCodeRecord,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.app(scope, &record.app_id)?;
            // Values are unique in the whole instance, whatever the project.
            let in_instance = s
                .codes
                .iter()
                .filter(|(at, _)| at.instance_id == scope.instance_id);
            let mut held = 0;
            for (at, other) in in_instance {
                if other.value == record.value {
                    return Err(StoreError::AppCodeExists);
                }
                held += usize::from(at == scope && other.app_id == record.app_id);
            }
            if held >= MAX_APP_CODES_PER_APP {
                return Err(StoreError::AppCodeQuotaExceeded);
            }
            s.codes.push((scope.clone(), record.clone()));
            Ok(record)
        })
    }

    fn get_app_code<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        app_code_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async move {
            let s = self.lock();
            s.app(scope, app_id)?;
            s.codes
                .iter()
                .find(|(at, r)| at == scope && r.app_id == app_id && r.id == app_code_id)
                .map(|(_, r)| r.clone())
                .ok_or(StoreError::AppCodeNotFound)
        })
    }

    fn list_app_codes<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Page<AppCodeRecord>>> {
        Box::pin(async move {
            let s = self.lock();
            s.app(scope, app_id)?;
            let codes = s
                .codes
                .iter()
                .filter(|(at, r)| at == scope && r.app_id == app_id)
                .map(|(_, r)| r.clone());
            Ok(page(codes, offset, limit))
        })
    }

    fn delete_app_code<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        app_code_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.app(scope, app_id)?;
            let at = s
                .codes
                .iter()
                .position(|(at, r)| at == scope && r.app_id == app_id && r.id == app_code_id)
                .ok_or(StoreError::AppCodeNotFound)?;
            Ok(s.codes.remove(at).1)
        })
    }

    fn instance_app_codes<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<AppCodeRecord>>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(s.codes
                .iter()
                .filter(|(at, _)| at.instance_id == instance_id)
                .map(|(_, r)| r.clone())
                .collect())
        })
    }
}
