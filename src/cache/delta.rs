//! Applying what changed since a revision: the refresher's cheap alternative to a snapshot.

use std::collections::HashSet;

use super::entry::{Entry, StoredId};
use super::journal::Mutation;
use super::AppCodeCache;
use crate::metrics::Counters;
use crate::provider::Change;

impl AppCodeCache {
    /// Applies `changes` (a provider's delta, fetched after the journal stood at `since`), then
    /// replays every direct change recorded since `since` on top: a revocation pushed while the
    /// delta was in flight is newer than the delta and stays. `false` (nothing applied) if the
    /// journal no longer reaches back to `since`: load a snapshot instead.
    ///
    /// A removal by ID goes through the index by ID; consecutive removals of apps are applied
    /// in one pass over the cache, so a delta deleting many apps costs one scan, not one each.
    pub(crate) fn apply_delta_since(&self, changes: Vec<Change>, since: u64) -> bool {
        let mutations: Vec<Mutation> = changes
            .into_iter()
            .filter_map(|change| self.mutation(change))
            .collect();
        let mut journal = self.journal();
        let Some(replay) = journal.since(since) else {
            return false;
        };
        let replay: Vec<Mutation> = replay.cloned().collect();
        let mut apps = AppRemovals::default();
        for change in mutations {
            match change {
                Mutation::RemoveApp(ref app) => {
                    self.inner.acls.remove(app);
                    self.forget_quota(app);
                    self.apply_key(app, None);
                    apps.0.insert(StoredId::of(app))
                }
                _ => {
                    apps.apply(self);
                    self.apply(&change);
                    journal.record(change);
                    continue;
                }
            };
            journal.record(change);
        }
        apps.apply(self);
        // Recorded again, so the journal's order stays the order of effect.
        for change in replay {
            self.apply(&change);
            journal.record(change);
        }
        drop(journal);
        Counters::add(&self.counters().deltas_applied);
        self.mark_synced();
        true
    }

    fn mutation(&self, change: Change) -> Option<Mutation> {
        Some(match change {
            Change::Upsert { code, identity } => {
                Mutation::Upsert(self.digest(&code), Entry::new(&identity))
            }
            Change::Remove(code) => Mutation::Remove(self.digest(&code)),
            Change::RemoveId(id) => Mutation::RemoveId(id.into()),
            Change::RemoveApp(app) => Mutation::RemoveApp(app.into()),
            Change::AppAcl { app_id, acl } => Mutation::Acl(app_id.into(), acl),
            Change::AppQuota { app_id, quota } => Mutation::Quota(app_id.into(), quota),
            Change::AppKey { app_id, key } => Mutation::Key(app_id.into(), key),
            Change::Resync | Change::Reload => return None,
        })
    }
}

/// Removals of apps waiting to be applied together.
#[derive(Default)]
struct AppRemovals(HashSet<StoredId>);

impl AppRemovals {
    fn apply(&mut self, cache: &AppCodeCache) {
        if self.0.is_empty() {
            return;
        }
        cache.remove_where(|_, entry| entry.app_id_in(&self.0));
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppCode, AppIdentity};

    fn entry(app: &str, id: &str) -> (AppCode, AppIdentity) {
        (AppCode::generate(), AppIdentity::new(app, id))
    }

    fn upsert((code, identity): &(AppCode, AppIdentity)) -> Change {
        Change::Upsert {
            code: code.clone(),
            identity: identity.clone(),
        }
    }

    #[test]
    fn a_delta_applies_in_order_and_marks_the_cache_caught_up() {
        let cache = AppCodeCache::new();
        let (a, b, c) = (entry("app1", "a"), entry("app1", "b"), entry("app2", "c"));
        cache.replace_all([a.clone(), b.clone()]);
        let since = cache.write_epoch();
        let delta = vec![
            Change::RemoveId("a".into()),
            upsert(&c),
            Change::RemoveApp("app2".into()),
            upsert(&entry("app2", "d")),
            Change::Resync,
        ];
        assert!(cache.apply_delta_since(delta, since));
        assert!(cache.verify(&a.0).is_none());
        assert!(cache.verify(&b.0).is_some());
        assert!(cache.verify(&c.0).is_none(), "a later removal of its app");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.metrics().deltas_applied, 1);
        assert_eq!(cache.metrics().snapshots_loaded, 1);
    }

    #[test]
    fn a_change_pushed_while_the_delta_loaded_is_not_undone() {
        let cache = AppCodeCache::new();
        let (a, b) = (entry("app", "a"), entry("app", "b"));
        cache.replace_all([]);
        // The refresher notes the epoch and asks for the changes; the provider reads `a` and `b`
        // as created...
        let since = cache.write_epoch();
        let stale = vec![upsert(&a), upsert(&b)];
        // ...while a pushed event revokes `a`...
        cache.remove_by_id("a");
        // ...and then the delta arrives.
        assert!(cache.apply_delta_since(stale, since));
        assert!(
            cache.verify(&a.0).is_none(),
            "the delta brought a revoked code back"
        );
        assert!(cache.verify(&b.0).is_some());
    }

    #[test]
    fn a_delta_older_than_the_journal_is_refused() {
        let cache = AppCodeCache::new();
        cache.replace_all([]);
        let since = cache.write_epoch();
        for i in 0..5000 {
            cache.remove_by_id(&i.to_string());
        }
        let a = entry("app", "a");
        assert!(!cache.apply_delta_since(vec![upsert(&a)], since));
        assert!(cache.verify(&a.0).is_none(), "a refused delta was applied");
        assert_eq!(cache.metrics().deltas_applied, 0);
    }
}
