//! Each instance's revision and change log in a [`MemoryStore`](super::MemoryStore), and the
//! changes a reader behind a revision is sent.

use std::collections::{HashSet, VecDeque};

use super::state::State;
use crate::store::{App, AppCodeChanges, AppCodeRecord, DeletedAppCode};

/// One instance's revision and its last [`CHANGE_LOG_RETENTION`](crate::store::CHANGE_LOG_RETENTION)
/// revisions of changes.
#[derive(Debug, Default)]
pub(super) struct ChangeLog {
    pub(super) revision: u64,
    /// The newest revision dropped from `entries`: a reader behind it missed changes.
    pruned_through: u64,
    entries: VecDeque<(u64, Logged)>,
}

#[derive(Debug)]
pub(super) enum Logged {
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

pub(super) fn deleted(record: &AppCodeRecord) -> Logged {
    Logged::Deleted(DeletedAppCode {
        app_id: record.app_id.clone(),
        id: record.id.clone(),
    })
}

impl State {
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

    /// What changed in `instance_id` after `revision`, or `None` when the log no longer (or
    /// never) reaches back to it.
    pub(super) fn changes_since(&self, instance_id: &str, revision: u64) -> Option<AppCodeChanges> {
        let Some(log) = self.logs.get(instance_id) else {
            // No write yet: only revision 0 exists.
            return (revision == 0).then(AppCodeChanges::default);
        };
        if revision < log.pruned_through || revision > log.revision {
            return None;
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
                    let acl = self
                        .acls
                        .iter()
                        .find(|((at, app), _)| at.instance_id == instance_id && app == app_id)
                        .map(|(_, acl)| acl.clone());
                    changes.acls.push((app_id.clone(), acl));
                    changes
                        .quotas
                        .push((app_id.clone(), self.app_quota(instance_id, app_id)));
                    changes.keys.retain(|(seen, _)| seen != app_id);
                    let key = self
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
                self.codes
                    .iter()
                    .find(|(at, r)| at.instance_id == instance_id && r.id == *id)
                    .map(|(_, r)| r.clone())
            })
            .collect();
        Some(changes)
    }
}
