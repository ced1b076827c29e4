//! A short log of direct cache changes, so a snapshot loaded before a change cannot undo it.
//!
//! The refresher notes the journal's epoch before it asks the provider for a snapshot. When the
//! snapshot arrives, every change recorded since that epoch is replayed on top of it, under the
//! same lock, so a code deleted while the snapshot was in flight stays deleted.

use std::collections::VecDeque;
use std::sync::Arc;

use super::digest::Digest;
use super::entry::Entry;
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::quota::AppQuota;

/// How many changes the journal remembers. A snapshot whose load saw more changes than this is
/// discarded and loaded again.
const CAPACITY: usize = 4096;

/// One direct change to the cache.
#[derive(Clone)]
pub(super) enum Mutation {
    Upsert(Digest, Entry),
    Remove(Digest),
    RemoveApp(Box<str>),
    RemoveId(Box<str>),
    /// An app's ACL set (`Some`) or removed (`None`).
    Acl(Box<str>, Option<Arc<AppAcl>>),
    /// An app's quota set (`Some`) or removed (`None`).
    Quota(Box<str>, Option<Arc<AppQuota>>),
    /// An app's signing key set (`Some`) or removed (`None`).
    Key(Box<str>, Option<Arc<AppKey>>),
}

#[derive(Default)]
pub(super) struct Journal {
    next: u64,
    entries: VecDeque<(u64, Mutation)>,
}

impl Journal {
    /// The epoch the next change will get.
    pub(super) fn epoch(&self) -> u64 {
        self.next
    }

    pub(super) fn record(&mut self, change: Mutation) {
        if self.entries.len() == CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back((self.next, change));
        self.next += 1;
    }

    /// The changes recorded at or after `since`, oldest first, or `None` if some of them were
    /// already forgotten.
    pub(super) fn since(&self, since: u64) -> Option<impl Iterator<Item = &Mutation>> {
        let oldest = self.entries.front().map_or(self.next, |(epoch, _)| *epoch);
        (since >= oldest).then(|| {
            self.entries
                .iter()
                .filter(move |(epoch, _)| *epoch >= since)
                .map(|(_, m)| m)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_only_what_came_after_and_knows_when_it_forgot() {
        let mut j = Journal::default();
        j.record(Mutation::RemoveApp("a".into()));
        let since = j.epoch();
        j.record(Mutation::RemoveApp("b".into()));
        j.record(Mutation::RemoveId("c".into()));
        let names: Vec<String> = j
            .since(since)
            .unwrap()
            .map(|m| match m {
                Mutation::RemoveApp(s) | Mutation::RemoveId(s) => s.to_string(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(j.since(j.epoch()).unwrap().count(), 0);
        for _ in 0..CAPACITY {
            j.record(Mutation::RemoveApp("x".into()));
        }
        assert!(
            j.since(since).is_none(),
            "forgotten changes must be reported"
        );
    }
}
