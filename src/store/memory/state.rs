//! What a [`MemoryStore`](super::MemoryStore) holds, and the lookups its operations share.

use std::collections::HashMap;

use super::log::{ChangeLog, Logged};
use crate::acl::AppAcl;
use crate::store::{
    App, AppCodeRecord, AppFilter, AppQuotaRecord, Page, QuotaBinding, Scope, SharedCount,
    StoreError, StoreResult,
};

#[derive(Debug)]
pub(super) struct State {
    /// How many revisions of each instance the change logs keep.
    pub(super) retention: u64,
    /// In creation order.
    pub(super) apps: Vec<App>,
    /// In creation order.
    pub(super) codes: Vec<(Scope, AppCodeRecord)>,
    /// The apps that have an ACL.
    pub(super) acls: HashMap<(Scope, String), AppAcl>,
    /// In creation order.
    pub(super) quotas: Vec<(Scope, AppQuotaRecord)>,
    /// In binding order.
    pub(super) bindings: Vec<(Scope, QuotaBinding)>,
    /// The calls of each app in its quota's current window, by instance and app.
    pub(super) counts: HashMap<(String, String), SharedCount>,
    /// Each instance's revision and change log.
    pub(super) logs: HashMap<String, ChangeLog>,
}

impl State {
    /// An empty state whose change logs keep the last `retention` revisions (at least 1).
    pub(super) fn new(retention: u64) -> Self {
        Self {
            retention: retention.max(1),
            apps: Vec::new(),
            codes: Vec::new(),
            acls: HashMap::new(),
            quotas: Vec::new(),
            bindings: Vec::new(),
            counts: HashMap::new(),
            logs: HashMap::new(),
        }
    }

    pub(super) fn instance_codes(&self, instance_id: &str) -> Vec<AppCodeRecord> {
        self.codes
            .iter()
            .filter(|(at, _)| at.instance_id == instance_id)
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub(super) fn app(&self, scope: &Scope, app_id: &str) -> StoreResult<&App> {
        self.apps
            .iter()
            .find(|a| a.scope == *scope && a.id == app_id)
            .ok_or(StoreError::AppNotFound)
    }

    /// Logs one write to `instance_id` under its next revision.
    pub(super) fn log(&mut self, instance_id: &str, changes: impl IntoIterator<Item = Logged>) {
        let retention = self.retention;
        self.logs
            .entry(instance_id.to_owned())
            .or_default()
            .write(retention, changes);
    }

    /// `instance_id`'s revision: 0 before its first write.
    pub(super) fn revision(&self, instance_id: &str) -> u64 {
        self.logs.get(instance_id).map_or(0, |log| log.revision)
    }
}

pub(super) fn page<T: Clone>(items: impl Iterator<Item = T>, offset: u64, limit: u64) -> Page<T> {
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

pub(super) fn matches(app: &App, f: &AppFilter) -> bool {
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
