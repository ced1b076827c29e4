//! [`MemoryStore`] and its [`Store`] operations, each under one lock.

use std::sync::{Mutex, MutexGuard};

use super::log::{deleted, Logged};
use super::quotas;
use super::state::{matches, page, State};
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::provider::{CodesDigest, RevisionDigest};
use crate::quota::AppQuota;
use crate::store::{
    async_trait, App, AppChanges, AppCodeChanges, AppCodeRecord, AppFilter, AppQuotaRecord,
    InstanceSnapshot, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, Store,
    StoreError, StoreResult, Timestamp, CHANGE_LOG_RETENTION, MAX_APP_CODES_PER_APP,
};

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
            state: Mutex::new(State::new(revisions)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every operation
        // validates first and mutates last.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_app(&self, app: App) -> StoreResult<App> {
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
    }

    async fn get_app(&self, scope: &Scope, app_id: &str) -> StoreResult<App> {
        self.lock().app(scope, app_id).cloned()
    }

    async fn list_apps(
        &self,
        scope: &Scope,
        filter: &AppFilter,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<App>> {
        let s = self.lock();
        let apps = s
            .apps
            .iter()
            .filter(|a| a.scope == *scope && matches(a, filter))
            .cloned();
        Ok(page(apps, offset, limit))
    }

    async fn update_app(
        &self,
        scope: &Scope,
        app_id: &str,
        changes: AppChanges,
    ) -> StoreResult<App> {
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
    }

    async fn delete_app(&self, scope: &Scope, app_id: &str) -> StoreResult<Vec<AppCodeRecord>> {
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
    }

    async fn create_app_code(
        &self,
        scope: &Scope,
        record: AppCodeRecord,
    ) -> StoreResult<AppCodeRecord> {
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
    }

    async fn get_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord> {
        let s = self.lock();
        s.app(scope, app_id)?;
        s.codes
            .iter()
            .find(|(at, r)| at == scope && r.app_id == app_id && r.id == app_code_id)
            .map(|(_, r)| r.clone())
            .ok_or(StoreError::AppCodeNotFound)
    }

    async fn list_app_codes(
        &self,
        scope: &Scope,
        app_id: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppCodeRecord>> {
        let s = self.lock();
        s.app(scope, app_id)?;
        let codes = s
            .codes
            .iter()
            .filter(|(at, r)| at == scope && r.app_id == app_id)
            .map(|(_, r)| r.clone());
        Ok(page(codes, offset, limit))
    }

    async fn delete_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord> {
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
    }

    async fn get_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<Option<AppAcl>> {
        let s = self.lock();
        s.app(scope, app_id)?;
        Ok(s.acls.get(&(scope.clone(), app_id.to_owned())).cloned())
    }

    async fn set_app_acl(&self, scope: &Scope, app_id: &str, acl: AppAcl) -> StoreResult<()> {
        let mut s = self.lock();
        s.app(scope, app_id)?;
        s.acls.insert((scope.clone(), app_id.to_owned()), acl);
        s.log(&scope.instance_id, [Logged::Policy(app_id.to_owned())]);
        Ok(())
    }

    async fn delete_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<bool> {
        let mut s = self.lock();
        s.app(scope, app_id)?;
        let had = s.acls.remove(&(scope.clone(), app_id.to_owned())).is_some();
        if had {
            s.log(&scope.instance_id, [Logged::Policy(app_id.to_owned())]);
        }
        Ok(had)
    }

    async fn instance_app_acls(&self, instance_id: &str) -> StoreResult<Vec<(String, AppAcl)>> {
        let s = self.lock();
        Ok(s.acls
            .iter()
            .filter(|((at, _), _)| at.instance_id == instance_id)
            .map(|((_, app), acl)| (app.clone(), acl.clone()))
            .collect())
    }

    async fn create_app_quota(
        &self,
        scope: &Scope,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord> {
        quotas::create(&mut self.lock(), scope, record)
    }

    async fn get_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<AppQuotaRecord> {
        quotas::get(&self.lock(), scope, quota_id)
    }

    async fn list_app_quotas(
        &self,
        scope: &Scope,
        name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppQuotaRecord>> {
        quotas::list(&self.lock(), scope, name, offset, limit)
    }

    async fn update_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord> {
        quotas::update(&mut self.lock(), scope, quota_id, record)
    }

    async fn delete_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<()> {
        quotas::delete(&mut self.lock(), scope, quota_id)
    }

    async fn bind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_ids: &[String],
        bound_time: Timestamp,
    ) -> StoreResult<Vec<QuotaBinding>> {
        quotas::bind(&mut self.lock(), scope, quota_id, app_ids, bound_time)
    }

    async fn quota_apps(
        &self,
        scope: &Scope,
        quota_id: &str,
        bound: bool,
        app_name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<QuotaApp>> {
        let apps = quotas::apps(&self.lock(), scope, quota_id, bound, app_name)?;
        Ok(page(apps.into_iter(), offset, limit))
    }

    async fn unbind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_id: &str,
    ) -> StoreResult<()> {
        quotas::unbind(&mut self.lock(), scope, quota_id, app_id)
    }

    async fn app_bound_quota(
        &self,
        scope: &Scope,
        app_id: &str,
    ) -> StoreResult<Option<AppQuotaRecord>> {
        quotas::app_bound(&self.lock(), scope, app_id)
    }

    async fn instance_app_quotas(&self, instance_id: &str) -> StoreResult<Vec<(String, AppQuota)>> {
        quotas::instance_quotas(&self.lock(), instance_id)
    }

    async fn add_quota_counts(
        &self,
        instance_id: &str,
        counts: &[QuotaCount],
    ) -> StoreResult<Vec<SharedCount>> {
        quotas::add_counts(&mut self.lock(), instance_id, counts)
    }

    async fn instance_app_keys(&self, instance_id: &str) -> StoreResult<Vec<(String, AppKey)>> {
        let s = self.lock();
        Ok(s.apps
            .iter()
            .filter(|a| a.scope.instance_id == instance_id)
            .map(|a| (a.id.clone(), a.signing_key()))
            .collect())
    }

    async fn instance_app_codes(&self, instance_id: &str) -> StoreResult<Vec<AppCodeRecord>> {
        Ok(self.lock().instance_codes(instance_id))
    }

    async fn instance_snapshot(&self, instance_id: &str) -> StoreResult<InstanceSnapshot> {
        let s = self.lock();
        Ok(InstanceSnapshot {
            codes: s.instance_codes(instance_id),
            revision: Some(s.revision(instance_id)),
        })
    }

    async fn instance_digest(&self, instance_id: &str) -> StoreResult<Option<RevisionDigest>> {
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
            revision: s.revision(instance_id),
            codes,
        }))
    }

    async fn app_code_changes(
        &self,
        instance_id: &str,
        revision: u64,
    ) -> StoreResult<Option<AppCodeChanges>> {
        Ok(self.lock().changes_since(instance_id, revision))
    }
}
