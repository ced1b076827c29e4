//! The quotas of a [`MemoryStore`](super::MemoryStore): their records, their bindings to apps
//! and the calls counted against them.

use super::log::Logged;
use super::state::{page, State};
use crate::quota::AppQuota;
use crate::store::{
    AppQuotaRecord, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, StoreError,
    StoreResult, Timestamp,
};

impl State {
    pub(super) fn quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<&AppQuotaRecord> {
        self.quotas
            .iter()
            .find(|(at, q)| at == scope && q.id == quota_id)
            .map(|(_, q)| q)
            .ok_or(StoreError::QuotaNotFound)
    }

    /// `record` with the number of apps bound to it.
    pub(super) fn counted(&self, scope: &Scope, record: &AppQuotaRecord) -> AppQuotaRecord {
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
    pub(super) fn bound_apps(&self, scope: &Scope, quota_id: &str) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|(at, b)| at == scope && b.app_quota_id == quota_id)
            .map(|(_, b)| b.app_id.clone())
            .collect()
    }

    /// The quota of the app `app_id` of `instance_id`, if it is bound to one, anchored at its
    /// binding when the quota has no reset time (see [`Store::instance_app_quotas`](crate::store::Store::instance_app_quotas)).
    pub(super) fn app_quota(&self, instance_id: &str, app_id: &str) -> Option<AppQuota> {
        let (scope, binding) = self
            .bindings
            .iter()
            .find(|(at, b)| at.instance_id == instance_id && b.app_id == app_id)?;
        let quota = &self.quota(scope, &binding.app_quota_id).ok()?.quota;
        Some(crate::store::anchored_at_binding(quota, binding.bound_time))
    }

    /// The binding of the app `app_id` of `scope`, if it is bound to a quota (one at most).
    fn binding(&self, scope: &Scope, app_id: &str) -> Option<&QuotaBinding> {
        self.bindings
            .iter()
            .find(|(at, b)| at == scope && b.app_id == app_id)
            .map(|(_, b)| b)
    }

    pub(super) fn quota_name_taken(&self, scope: &Scope, name: &str, except: Option<&str>) -> bool {
        self.quotas.iter().any(|(at, q)| {
            at.instance_id == scope.instance_id && q.name == name && Some(q.id.as_str()) != except
        })
    }
}

pub(super) fn create(
    s: &mut State,
    scope: &Scope,
    record: AppQuotaRecord,
) -> StoreResult<AppQuotaRecord> {
    if s.quota_name_taken(scope, &record.name, None) {
        return Err(StoreError::QuotaNameExists);
    }
    let record = AppQuotaRecord {
        bound_app_num: 0,
        ..record
    };
    s.quotas.push((scope.clone(), record.clone()));
    Ok(record)
}

pub(super) fn get(s: &State, scope: &Scope, quota_id: &str) -> StoreResult<AppQuotaRecord> {
    Ok(s.counted(scope, s.quota(scope, quota_id)?))
}

pub(super) fn list(
    s: &State,
    scope: &Scope,
    name: Option<&str>,
    offset: u64,
    limit: u64,
) -> StoreResult<Page<AppQuotaRecord>> {
    let quotas = s
        .quotas
        .iter()
        .filter(|(at, q)| at == scope && name.is_none_or(|n| q.name.contains(n)))
        .map(|(_, q)| s.counted(scope, q));
    Ok(page(quotas, offset, limit))
}

pub(super) fn update(
    s: &mut State,
    scope: &Scope,
    quota_id: &str,
    record: AppQuotaRecord,
) -> StoreResult<AppQuotaRecord> {
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
}

pub(super) fn delete(s: &mut State, scope: &Scope, quota_id: &str) -> StoreResult<()> {
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
}

pub(super) fn bind(
    s: &mut State,
    scope: &Scope,
    quota_id: &str,
    app_ids: &[String],
    bound_time: Timestamp,
) -> StoreResult<Vec<QuotaBinding>> {
    s.quota(scope, quota_id)?;
    let mut bindings = Vec::with_capacity(app_ids.len());
    let mut new = Vec::new();
    for app_id in app_ids {
        s.app(scope, app_id)?;
        let held = s.binding(scope, app_id).cloned();
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
}

/// The apps of `scope` bound to the quota `quota_id` (`bound`), or to no quota, whose names
/// hold `app_name`; the store pages them.
pub(super) fn apps(
    s: &State,
    scope: &Scope,
    quota_id: &str,
    bound: bool,
    app_name: Option<&str>,
) -> StoreResult<Vec<QuotaApp>> {
    s.quota(scope, quota_id)?;
    let apps = s
        .apps
        .iter()
        .filter(|a| a.scope == *scope && app_name.is_none_or(|n| a.name.contains(n)))
        .filter_map(|a| {
            let binding = s.binding(scope, &a.id);
            let listed = match binding {
                Some(b) => bound && b.app_quota_id == quota_id,
                None => !bound,
            };
            listed.then(|| QuotaApp {
                app: a.clone(),
                bound_time: binding.map(|b| b.bound_time),
            })
        });
    Ok(apps.collect())
}

pub(super) fn unbind(
    s: &mut State,
    scope: &Scope,
    quota_id: &str,
    app_id: &str,
) -> StoreResult<()> {
    s.quota(scope, quota_id)?;
    if s.binding(scope, app_id)
        .is_none_or(|b| b.app_quota_id != quota_id)
    {
        return Err(StoreError::AppNotFound);
    }
    s.bindings
        .retain(|(at, b)| !(at == scope && b.app_id == app_id));
    s.counts
        .remove(&(scope.instance_id.clone(), app_id.to_owned()));
    s.log(&scope.instance_id, [Logged::Policy(app_id.to_owned())]);
    Ok(())
}

pub(super) fn app_bound(
    s: &State,
    scope: &Scope,
    app_id: &str,
) -> StoreResult<Option<AppQuotaRecord>> {
    s.app(scope, app_id)?;
    let Some(binding) = s.binding(scope, app_id) else {
        return Ok(None);
    };
    Ok(Some(
        s.counted(scope, s.quota(scope, &binding.app_quota_id)?),
    ))
}

pub(super) fn instance_quotas(
    s: &State,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppQuota)>> {
    Ok(s.bindings
        .iter()
        .filter(|(at, _)| at.instance_id == instance_id)
        .filter_map(|(_, b)| {
            let quota = s.app_quota(instance_id, &b.app_id)?;
            Some((b.app_id.clone(), quota))
        })
        .collect())
}

pub(super) fn add_counts(
    s: &mut State,
    instance_id: &str,
    counts: &[QuotaCount],
) -> StoreResult<Vec<SharedCount>> {
    Ok(counts
        .iter()
        .map(|count| {
            let key = (instance_id.to_owned(), count.app_id.clone());
            let shared = SharedCount::add(s.counts.get(&key).copied(), count);
            s.counts.insert(key, shared);
            shared
        })
        .collect())
}
