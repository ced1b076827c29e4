//! What a reader of a [`MemoryStore`](super::MemoryStore) behind a revision is sent: the
//! codes created and deleted since, and the keys, ACLs and quotas of the apps whose policy
//! changed, as they are now.

use std::collections::HashSet;

use super::log::Logged;
use super::state::State;
use crate::store::{App, AppCodeChanges};

impl State {
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
