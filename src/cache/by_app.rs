//! A policy of the apps that have one (an ACL, a quota), by app ID.
//!
//! Apart from the codes' map, so that a code's slot stays as small as it is (most apps have no
//! policy, and an app's codes share its one), and so that a change to an app's policy is one
//! write whatever the number of its codes. A request of an app without one, while no app has
//! one, costs one atomic load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::journal::{Journal, Mutation};

/// Reads a journal entry as a change of one app's policy: `(app, Some(value))` sets,
/// `(app, None)` removes; `None` when the entry is not about this policy.
pub(super) type Replay<T> = fn(&Mutation) -> Option<(&str, Option<&Arc<T>>)>;

pub(super) struct ByApp<T> {
    map: DashMap<Box<str>, Arc<T>>,
    /// How many entries `map` holds, read without touching its shards.
    len: AtomicUsize,
}

impl<T> ByApp<T> {
    pub(super) fn set(&self, app_id: &str, value: Arc<T>) {
        if self.map.insert(app_id.into(), value).is_none() {
            self.len.fetch_add(1, Ordering::Release);
        }
    }

    pub(super) fn remove(&self, app_id: &str) -> bool {
        let removed = self.map.remove(app_id).is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::Release);
        }
        removed
    }

    /// Sets `app_id`'s value, or removes it when `None`: 1 if that changed anything.
    pub(super) fn apply(&self, app_id: &str, value: Option<&Arc<T>>) -> usize {
        match value {
            Some(value) => {
                self.set(app_id, Arc::clone(value));
                1
            }
            None => usize::from(self.remove(app_id)),
        }
    }

    /// Keeps the entries of the apps `keep` selects.
    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.map.retain(|app, _| {
            let kept = keep(app);
            if !kept {
                self.len.fetch_sub(1, Ordering::Release);
            }
            kept
        });
    }

    /// [`replace`](Self::replace) with the changes `journal` recorded since `since`: those `own`
    /// reads as this policy's, and apps removed. `false` (nothing applied) if the journal no
    /// longer reaches back to `since`.
    pub(super) fn replace_since(
        &self,
        list: &[(String, Arc<T>)],
        journal: &Journal,
        since: u64,
        own: Replay<T>,
    ) -> bool {
        let Some(replay) = journal.since(since) else {
            return false;
        };
        self.replace(
            list,
            replay.filter_map(|change| match change {
                Mutation::RemoveApp(app) => Some((&**app, None)),
                other => own(other),
            }),
        );
        true
    }

    /// Holds exactly `list` (a provider's), then replays on top of it the changes made while
    /// the list was in flight: `(app, Some(value))` sets, `(app, None)` removes.
    pub(super) fn replace<'a>(
        &self,
        list: &[(String, Arc<T>)],
        replay: impl Iterator<Item = (&'a str, Option<&'a Arc<T>>)>,
    ) where
        T: 'a,
    {
        let keep: HashSet<&str> = list.iter().map(|(app, _)| app.as_str()).collect();
        self.retain(|app| keep.contains(app));
        for (app, value) in list {
            self.set(app, Arc::clone(value));
        }
        for (app, value) in replay {
            match value {
                Some(value) => self.set(app, Arc::clone(value)),
                None => drop(self.remove(app)),
            }
        }
    }

    pub(super) fn get(&self, app_id: &str) -> Option<Arc<T>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.map.get(app_id).map(|e| Arc::clone(e.value()))
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

impl<T> Default for ByApp<T> {
    fn default() -> Self {
        Self {
            map: DashMap::new(),
            len: AtomicUsize::new(0),
        }
    }
}
