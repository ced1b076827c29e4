//! Each instance's revision and change log in a [`MemoryStore`](super::MemoryStore).

use std::collections::VecDeque;

use crate::store::{AppCodeRecord, DeletedAppCode};

/// One instance's revision and its last [`CHANGE_LOG_RETENTION`](crate::store::CHANGE_LOG_RETENTION)
/// revisions of changes.
#[derive(Debug, Default)]
pub(super) struct ChangeLog {
    pub(super) revision: u64,
    /// The newest revision dropped from `entries`: a reader behind it missed changes.
    pub(super) pruned_through: u64,
    pub(super) entries: VecDeque<(u64, Logged)>,
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
    pub(super) fn write(&mut self, retention: u64, changes: impl IntoIterator<Item = Logged>) {
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
