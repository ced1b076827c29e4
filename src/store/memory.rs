//! [`MemoryStore`]: everything in one mutex-guarded map, for tests and throwaway setups.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::{
    App, AppChanges, AppCodeChanges, AppCodeRecord, AppFilter, AppQuotaRecord, DeletedAppCode,
    InstanceSnapshot, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, Store,
    StoreError, StoreResult, Timestamp, CHANGE_LOG_RETENTION, MAX_APP_CODES_PER_APP,
};
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::provider::{BoxFuture, CodesDigest, RevisionDigest};
use crate::quota::AppQuota;

/// A store that keeps everything in memory: nothing survives the process.
///
/// It holds the same rules as the persistent stores (the conformance tests run against it too),
/// each operation under one lock.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
struct State {
    /// How many revisions of each instance the change logs keep.
    retention: u64,
    /// In creation order.
    apps: Vec<App>,
    /// In creation order.
    codes: Vec<(Scope, AppCodeRecord)>,
    /// The apps that have an ACL.
    acls: HashMap<(Scope, String), AppAcl>,
    /// In creation order.
    quotas: Vec<(Scope, AppQuotaRecord)>,
    /// In binding order.
    bindings: Vec<(Scope, QuotaBinding)>,
    /// The calls of each app in its quota's current window, by instance and app.
    counts: HashMap<(String, String), SharedCount>,
    /// Each instance's revision and change log.
    logs: HashMap<String, ChangeLog>,
}

/// One instance's revision and its last [`CHANGE_LOG_RETENTION`] revisions of changes.
#[derive(Debug, Default)]
struct ChangeLog {
    revision: u64,
    /// The newest revision dropped from `entries`: a reader behind it missed changes.
    pruned_through: u64,
    entries: VecDeque<(u64, Logged)>,
}

#[derive(Debug)]
enum Logged {
    /// A code was created: its ID.
    Created(String),
    Deleted(DeletedAppCode),
    /// An app's key, ACL or quota was set or removed, or the app created or deleted: its ID.
    Policy(String),
}

impl ChangeLog {
    /// Takes the next revision for one write, logs what it did, and drops what falls out of
    /// the last `retention` revisions.
    fn write(&mut self, retention: u64, changes: impl IntoIterator<Item = Logged>) {
        self.revision += 1;
        self.entries
            .extend(changes.into_iter().map(|c| (self.revision, c)));
        while let Some(&(oldest, _)) = self.entries.front() {
            if oldest + retention > self.revision {
                break;
            }
            self.pruned_through = oldest;
            self.entries.pop_front();
        }
    }
}

impl MemoryStore {
    /// An empty store whose change logs keep [`CHANGE_LOG_RETENTION`] revisions.
    pub fn new() -> Self {
        Self::with_change_log_retention(CHANGE_LOG_RETENTION)
    }

    /// An empty store whose change logs keep the last `revisions` revisions of each instance
    /// (at least 1).
    ///
    /// ```
    /// use apig_appcode::store::MemoryStore;
    ///
    /// let store = MemoryStore::with_change_log_retention(100);
    /// # let _ = store;
    /// ```
    pub fn with_change_log_retention(revisions: u64) -> Self {
        Self {
            state: Mutex::new(State {
                retention: revisions.max(1),
                apps: Vec::new(),
                codes: Vec::new(),
                acls: HashMap::new(),
                quotas: Vec::new(),
                bindings: Vec::new(),
                counts: HashMap::new(),
                logs: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every operation
        // validates first and mutates last.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn deleted(record: &AppCodeRecord) -> Logged {
    Logged::Deleted(DeletedAppCode {
        app_id: record.app_id.clone(),
        id: record.id.clone(),
    })
}

impl State {
    /// Logs one write to `instance_id` under its next revision.
    fn log(&mut self, instance_id: &str, changes: impl IntoIterator<Item = Logged>) {
        let retention = self.retention;
        self.logs
            .entry(instance_id.to_owned())
            .or_default()
            .write(retention, changes);
    }

    fn instance_codes(&self, instance_id: &str) -> Vec<AppCodeRecord> {
        self.codes
            .iter()
            .filter(|(at, _)| at.instance_id == instance_id)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<&AppQuotaRecord> {
        self.quotas
            .iter()
            .find(|(at, q)| at == scope && q.id == quota_id)
            .map(|(_, q)| q)
            .ok_or(StoreError::QuotaNotFound)
    }

    /// `record` with the number of apps bound to it.
    fn counted(&self, scope: &Scope, record: &AppQuotaRecord) -> AppQuotaRecord {
        let bound = self
            .bindings
            .iter()
            .filter(|(at, b)| at == scope && b.app_quota_id == record.id)
            .count();
        AppQuotaRecord {
            bound_app_num: bound as u64,
            ..record.clone()
        }
    }

    /// The apps of `scope` bound to the quota `quota_id`.
    fn bound_apps(&self, scope: &Scope, quota_id: &str) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|(at, b)| at == scope && b.app_quota_id == quota_id)
            .map(|(_, b)| b.app_id.clone())
            .collect()
    }

    /// The quota of the app `app_id` of `instance_id`, if it is bound to one, anchored at its
    /// binding when the quota has no reset time (see [`Store::instance_app_quotas`]).
    fn app_quota(&self, instance_id: &str, app_id: &str) -> Option<AppQuota> {
        let (scope, binding) = self
            .bindings
            .iter()
            .find(|(at, b)| at.instance_id == instance_id && b.app_id == app_id)?;
        let quota = &self.quota(scope, &binding.app_quota_id).ok()?.quota;
        Some(super::anchored_at_binding(quota, binding.bound_time))
    }

    fn quota_name_taken(&self, scope: &Scope, name: &str, except: Option<&str>) -> bool {
        self.quotas.iter().any(|(at, q)| {
            at.instance_id == scope.instance_id && q.name == name && Some(q.id.as_str()) != except
        })
    }

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
            s.log(&app.scope.instance_id, [Logged::Policy(app.id.clone())]);
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

    fn update_app<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        changes: AppChanges,
    ) -> BoxFuture<'a, StoreResult<App>> {
        Box::pin(async move {
            let mut s = self.lock();
            let touches_key = changes.touches_key();
            let updated = changes.apply_to(s.app(scope, app_id)?.clone());
            let others = || {
                s.apps
                    .iter()
                    .filter(|a| a.scope == *scope && a.id != app_id)
            };
            // The name first, over all apps, as the SQL stores check it.
            if others().any(|a| a.name == updated.name) {
                return Err(StoreError::AppNameExists);
            }
            if others().any(|a| a.app_key == updated.app_key) {
                return Err(StoreError::AppKeyExists);
            }
            let slot = s
                .apps
                .iter_mut()
                .find(|a| a.scope == *scope && a.id == app_id)
                .ok_or(StoreError::AppNotFound)?;
            *slot = updated.clone();
            if touches_key {
                s.log(&scope.instance_id, [Logged::Policy(app_id.to_owned())]);
            }
            Ok(updated)
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
            let gone: Vec<AppCodeRecord> = gone.into_iter().map(|(_, r)| r).collect();
            s.acls.remove(&(scope.clone(), app_id.to_owned()));
            s.bindings
                .retain(|(at, b)| !(at == scope && b.app_id == app_id));
            s.counts
                .remove(&(scope.instance_id.clone(), app_id.to_owned()));
            // Its key, and any ACL and quota, go with it: always a change.
            let policy = Logged::Policy(app_id.to_owned());
            s.log(&scope.instance_id, gone.iter().map(deleted).chain([policy]));
            Ok(gone)
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
            s.log(&scope.instance_id, [Logged::Created(record.id.clone())]);
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
            let gone = s.codes.remove(at).1;
            s.log(&scope.instance_id, [deleted(&gone)]);
            Ok(gone)
        })
    }

    fn get_app_acl<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AppAcl>>> {
        Box::pin(async move {
            let s = self.lock();
            s.app(scope, app_id)?;
            Ok(s.acls.get(&(scope.clone(), app_id.to_owned())).cloned())
        })
    }

    fn set_app_acl<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        acl: AppAcl,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.app(scope, app_id)?;
            s.acls.insert((scope.clone(), app_id.to_owned()), acl);
            s.log(&scope.instance_id, [Logged::Policy(app_id.to_owned())]);
            Ok(())
        })
    }

    fn delete_app_acl<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.app(scope, app_id)?;
            let had = s.acls.remove(&(scope.clone(), app_id.to_owned())).is_some();
            if had {
                s.log(&scope.instance_id, [Logged::Policy(app_id.to_owned())]);
            }
            Ok(had)
        })
    }

    fn instance_app_acls<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, AppAcl)>>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(s.acls
                .iter()
                .filter(|((at, _), _)| at.instance_id == instance_id)
                .map(|((_, app), acl)| (app.clone(), acl.clone()))
                .collect())
        })
    }

    fn create_app_quota<'a>(
        &'a self,
        scope: &'a Scope,
        record: AppQuotaRecord,
    ) -> BoxFuture<'a, StoreResult<AppQuotaRecord>> {
        Box::pin(async move {
            let mut s = self.lock();
            if s.quota_name_taken(scope, &record.name, None) {
                return Err(StoreError::QuotaNameExists);
            }
            let record = AppQuotaRecord {
                bound_app_num: 0,
                ..record
            };
            s.quotas.push((scope.clone(), record.clone()));
            Ok(record)
        })
    }

    fn get_app_quota<'a>(
        &'a self,
        scope: &'a Scope,
        quota_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<AppQuotaRecord>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(s.counted(scope, s.quota(scope, quota_id)?))
        })
    }

    fn list_app_quotas<'a>(
        &'a self,
        scope: &'a Scope,
        name: Option<&'a str>,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Page<AppQuotaRecord>>> {
        Box::pin(async move {
            let s = self.lock();
            let quotas = s
                .quotas
                .iter()
                .filter(|(at, q)| at == scope && name.is_none_or(|n| q.name.contains(n)))
                .map(|(_, q)| s.counted(scope, q));
            Ok(page(quotas, offset, limit))
        })
    }

    fn update_app_quota<'a>(
        &'a self,
        scope: &'a Scope,
        quota_id: &'a str,
        record: AppQuotaRecord,
    ) -> BoxFuture<'a, StoreResult<AppQuotaRecord>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.quota(scope, quota_id)?;
            if s.quota_name_taken(scope, &record.name, Some(quota_id)) {
                return Err(StoreError::QuotaNameExists);
            }
            let slot = s
                .quotas
                .iter_mut()
                .find(|(at, q)| at == scope && q.id == quota_id)
                .map(|(_, q)| q)
                .ok_or(StoreError::QuotaNotFound)?;
            slot.name = record.name;
            slot.quota = record.quota;
            slot.remark = record.remark;
            let updated = slot.clone();
            let bound = s.bound_apps(scope, quota_id);
            if !bound.is_empty() {
                s.log(&scope.instance_id, bound.into_iter().map(Logged::Policy));
            }
            Ok(s.counted(scope, &updated))
        })
    }

    fn delete_app_quota<'a>(
        &'a self,
        scope: &'a Scope,
        quota_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.quota(scope, quota_id)?;
            let bound = s.bound_apps(scope, quota_id);
            s.quotas
                .retain(|(at, q)| !(at == scope && q.id == quota_id));
            s.bindings
                .retain(|(at, b)| !(at == scope && b.app_quota_id == quota_id));
            for app in &bound {
                s.counts.remove(&(scope.instance_id.clone(), app.clone()));
            }
            if !bound.is_empty() {
                s.log(&scope.instance_id, bound.into_iter().map(Logged::Policy));
            }
            Ok(())
        })
    }

    fn bind_app_quota<'a>(
        &'a self,
        scope: &'a Scope,
        quota_id: &'a str,
        app_ids: &'a [String],
        bound_time: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<QuotaBinding>>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.quota(scope, quota_id)?;
            let mut bindings = Vec::with_capacity(app_ids.len());
            let mut new = Vec::new();
            for app_id in app_ids {
                s.app(scope, app_id)?;
                let held = s
                    .bindings
                    .iter()
                    .find(|(at, b)| at == scope && b.app_id == *app_id)
                    .map(|(_, b)| b.clone());
                match held {
                    Some(b) if b.app_quota_id == quota_id => bindings.push(b),
                    Some(_) => return Err(StoreError::AppHasQuota),
                    None if new.contains(app_id) => {}
                    None => {
                        new.push(app_id.clone());
                        bindings.push(QuotaBinding {
                            app_quota_id: quota_id.to_owned(),
                            app_id: app_id.clone(),
                            bound_time,
                        });
                    }
                }
            }
            for b in bindings.iter().filter(|b| new.contains(&b.app_id)) {
                s.bindings.push((scope.clone(), b.clone()));
            }
            if !new.is_empty() {
                s.log(&scope.instance_id, new.into_iter().map(Logged::Policy));
            }
            Ok(bindings)
        })
    }

    fn quota_apps<'a>(
        &'a self,
        scope: &'a Scope,
        quota_id: &'a str,
        bound: bool,
        app_name: Option<&'a str>,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Page<QuotaApp>>> {
        Box::pin(async move {
            let s = self.lock();
            s.quota(scope, quota_id)?;
            let apps = s
                .apps
                .iter()
                .filter(|a| a.scope == *scope && app_name.is_none_or(|n| a.name.contains(n)))
                .filter_map(|a| {
                    let binding = s
                        .bindings
                        .iter()
                        .find(|(at, b)| at == scope && b.app_id == a.id)
                        .map(|(_, b)| b);
                    let listed = match binding {
                        Some(b) => bound && b.app_quota_id == quota_id,
                        None => !bound,
                    };
                    listed.then(|| QuotaApp {
                        app: a.clone(),
                        bound_time: binding.map(|b| b.bound_time),
                    })
                });
            Ok(page(apps, offset, limit))
        })
    }

    fn unbind_app_quota<'a>(
        &'a self,
        scope: &'a Scope,
        quota_id: &'a str,
        app_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.quota(scope, quota_id)?;
            let at = s
                .bindings
                .iter()
                .position(|(at, b)| at == scope && b.app_quota_id == quota_id && b.app_id == app_id)
                .ok_or(StoreError::AppNotFound)?;
            s.bindings.remove(at);
            s.counts
                .remove(&(scope.instance_id.clone(), app_id.to_owned()));
            s.log(&scope.instance_id, [Logged::Policy(app_id.to_owned())]);
            Ok(())
        })
    }

    fn app_bound_quota<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AppQuotaRecord>>> {
        Box::pin(async move {
            let s = self.lock();
            s.app(scope, app_id)?;
            let Some((_, binding)) = s
                .bindings
                .iter()
                .find(|(at, b)| at == scope && b.app_id == app_id)
            else {
                return Ok(None);
            };
            Ok(Some(
                s.counted(scope, s.quota(scope, &binding.app_quota_id)?),
            ))
        })
    }

    fn instance_app_quotas<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, AppQuota)>>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(s.bindings
                .iter()
                .filter(|(at, _)| at.instance_id == instance_id)
                .filter_map(|(_, b)| {
                    let quota = s.app_quota(instance_id, &b.app_id)?;
                    Some((b.app_id.clone(), quota))
                })
                .collect())
        })
    }

    fn add_quota_counts<'a>(
        &'a self,
        instance_id: &'a str,
        counts: &'a [QuotaCount],
    ) -> BoxFuture<'a, StoreResult<Vec<SharedCount>>> {
        Box::pin(async move {
            let mut s = self.lock();
            Ok(counts
                .iter()
                .map(|count| {
                    let key = (instance_id.to_owned(), count.app_id.clone());
                    let shared = SharedCount::add(s.counts.get(&key).copied(), count);
                    s.counts.insert(key, shared);
                    shared
                })
                .collect())
        })
    }

    fn instance_app_keys<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, AppKey)>>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(s.apps
                .iter()
                .filter(|a| a.scope.instance_id == instance_id)
                .map(|a| (a.id.clone(), a.signing_key()))
                .collect())
        })
    }

    fn instance_app_codes<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<AppCodeRecord>>> {
        Box::pin(async move { Ok(self.lock().instance_codes(instance_id)) })
    }

    fn instance_snapshot<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<InstanceSnapshot>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(InstanceSnapshot {
                codes: s.instance_codes(instance_id),
                revision: Some(s.logs.get(instance_id).map_or(0, |log| log.revision)),
            })
        })
    }

    fn instance_digest<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<RevisionDigest>>> {
        Box::pin(async move {
            let s = self.lock();
            let mut codes = CodesDigest::default();
            for (_, r) in s
                .codes
                .iter()
                .filter(|(at, _)| at.instance_id == instance_id)
            {
                codes.add(&r.app_id, &r.id);
            }
            Ok(Some(RevisionDigest {
                revision: s.logs.get(instance_id).map_or(0, |log| log.revision),
                codes,
            }))
        })
    }

    fn app_code_changes<'a>(
        &'a self,
        instance_id: &'a str,
        revision: u64,
    ) -> BoxFuture<'a, StoreResult<Option<AppCodeChanges>>> {
        Box::pin(async move {
            let s = self.lock();
            let Some(log) = s.logs.get(instance_id) else {
                // No write yet: only revision 0 exists.
                return Ok((revision == 0).then(AppCodeChanges::default));
            };
            if revision < log.pruned_through || revision > log.revision {
                return Ok(None);
            }
            let mut changes = AppCodeChanges {
                revision: log.revision,
                ..AppCodeChanges::default()
            };
            let mut created = Vec::new();
            for (_, logged) in log.entries.iter().filter(|(at, _)| *at > revision) {
                match logged {
                    Logged::Created(id) => created.push(id.as_str()),
                    Logged::Deleted(gone) => changes.deleted.push(gone.clone()),
                    Logged::Policy(app_id) => {
                        changes.acls.retain(|(seen, _)| seen != app_id);
                        changes.quotas.retain(|(seen, _)| seen != app_id);
                        let acl = s
                            .acls
                            .iter()
                            .find(|((at, app), _)| at.instance_id == instance_id && app == app_id)
                            .map(|(_, acl)| acl.clone());
                        changes.acls.push((app_id.clone(), acl));
                        changes
                            .quotas
                            .push((app_id.clone(), s.app_quota(instance_id, app_id)));
                        changes.keys.retain(|(seen, _)| seen != app_id);
                        let key = s
                            .apps
                            .iter()
                            .find(|a| a.scope.instance_id == instance_id && a.id == *app_id)
                            .map(App::signing_key);
                        changes.keys.push((app_id.clone(), key));
                    }
                }
            }
            // Each ID once, where it was last created: an ID deleted and created again (IDs
            // are unique per instance only among existing codes) is the code that exists now.
            let mut seen = HashSet::new();
            created.reverse();
            created.retain(|id| seen.insert(*id));
            changes.created = created
                .iter()
                .rev()
                .filter_map(|id| {
                    s.codes
                        .iter()
                        .find(|(at, r)| at.instance_id == instance_id && r.id == *id)
                        .map(|(_, r)| r.clone())
                })
                .collect();
            Ok(Some(changes))
        })
    }
}
