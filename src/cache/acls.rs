//! The ACLs of the apps that have one, by app ID.
//!
//! Apart from the codes' map, so that a code's slot stays as small as it is (most apps have no
//! ACL, and an app's codes share its one), and so that a change to an app's ACL is one write
//! whatever the number of its codes. A request of an app without an ACL, while no app has one,
//! costs one atomic load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::acl::AppAcl;

#[derive(Default)]
pub(super) struct AclsByApp {
    map: DashMap<Box<str>, Arc<AppAcl>>,
    /// How many entries `map` holds, read without touching its shards.
    len: AtomicUsize,
}

impl AclsByApp {
    pub(super) fn set(&self, app_id: &str, acl: Arc<AppAcl>) {
        if self.map.insert(app_id.into(), acl).is_none() {
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

    /// Keeps the ACLs of the apps `keep` selects.
    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.map.retain(|app, _| {
            let kept = keep(app);
            if !kept {
                self.len.fetch_sub(1, Ordering::Release);
            }
            kept
        });
    }

    pub(super) fn get(&self, app_id: &str) -> Option<Arc<AppAcl>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.map.get(app_id).map(|e| Arc::clone(e.value()))
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}
