//! The cache's signing keys: app key -> (app, secret), for the layer's signature check.
//!
//! Held beside the codes and changed through the same journal, so that a key set or removed
//! directly (a pushed change: a secret reset, an app deleted) is not undone by a snapshot or
//! delta that was in flight. An app has one key; setting another replaces it, and the old key
//! stops verifying for the next request.

use std::collections::HashSet;
use std::sync::Arc;

use dashmap::DashMap;

use super::digest::Digest;
use super::flight::Outcome;
use super::journal::Mutation;
use super::AppCodeCache;
use crate::app_key::AppKey;
use crate::identity::AppIdentity;
use crate::provider::AppKeys;

/// Keys by their value and by their app.
#[derive(Default)]
pub(super) struct KeyIndex {
    /// The app key -> who signs with it and the secret.
    by_key: DashMap<Box<str>, (AppIdentity, Arc<AppKey>)>,
    /// The app ID -> its key, to replace or remove an app's key without a scan.
    by_app: DashMap<Box<str>, Box<str>>,
}

impl KeyIndex {
    fn set(&self, app_id: &str, key: Arc<AppKey>) {
        if let Some(old) = self.by_app.insert(app_id.into(), key.key().into()) {
            if *old != *key.key() {
                self.by_key
                    .remove_if(&*old, |_, (who, _)| who.app_id() == app_id);
            }
        }
        // Two apps of one instance (in two projects) may share a key value: the last one set
        // answers for it, and the other's signatures fail until its own change comes.
        if let Some((other, _)) = self.by_key.insert(
            key.key().into(),
            (AppIdentity::new(app_id, ""), Arc::clone(&key)),
        ) {
            if other.app_id() != app_id {
                self.by_app.remove(other.app_id());
            }
        }
    }

    fn remove(&self, app_id: &str) -> bool {
        match self.by_app.remove(app_id) {
            Some((_, key)) => {
                self.by_key
                    .remove_if(&*key, |_, (who, _)| who.app_id() == app_id);
                true
            }
            None => false,
        }
    }

    fn get(&self, key: &str) -> Option<(AppIdentity, Arc<AppKey>)> {
        self.by_key
            .get(key)
            .map(|e| (e.value().0.clone(), Arc::clone(&e.value().1)))
    }

    fn len(&self) -> usize {
        self.by_key.len()
    }
}

impl AppCodeCache {
    /// Sets the signing key and secret of the app `app_id`, replacing any it had: its old key
    /// stops verifying for the next request.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use apig_appcode::{AppCodeCache, AppKey};
    ///
    /// let cache = AppCodeCache::new();
    /// cache.set_app_key("app-1", Arc::new(AppKey::new("key-1", "secret-1")));
    /// assert_eq!(cache.app_key("key-1").unwrap().0.app_id(), "app-1");
    /// cache.set_app_key("app-1", Arc::new(AppKey::new("key-2", "secret-2")));
    /// assert!(cache.app_key("key-1").is_none());
    /// assert!(cache.remove_app_key("app-1"));
    /// assert!(cache.app_key("key-2").is_none());
    /// ```
    pub fn set_app_key(&self, app_id: &str, key: Arc<AppKey>) {
        self.record_and_apply(Mutation::Key(app_id.into(), Some(key)));
    }

    /// Removes the signing key of the app `app_id`; `true` if it had one.
    pub fn remove_app_key(&self, app_id: &str) -> bool {
        self.record_and_apply(Mutation::Key(app_id.into(), None)) > 0
    }

    /// Who signs with the app key `key` (an identity whose
    /// [`app_code_id`](AppIdentity::app_code_id) is empty) and the key with its secret.
    pub fn app_key(&self, key: &str) -> Option<(AppIdentity, Arc<AppKey>)> {
        self.inner.keys.get(key)
    }

    /// How many signing keys the cache holds.
    pub fn app_keys(&self) -> usize {
        self.inner.keys.len()
    }

    /// The digest of the app key `key`, for the negative cache and the flights.
    pub(crate) fn key_digest(&self, key: &str) -> Digest {
        self.inner.key.key_digest(key)
    }

    /// Sets or removes one app's key; returns 1 if that changed anything.
    pub(super) fn apply_key(&self, app_id: &str, key: Option<&Arc<AppKey>>) -> usize {
        match key {
            Some(key) => {
                // A key the provider did not know a moment ago is known now.
                self.inner.negative.remove(&self.key_digest(key.key()));
                self.inner.keys.set(app_id, Arc::clone(key));
                1
            }
            None => usize::from(self.inner.keys.remove(app_id)),
        }
    }

    /// Writes what a provider lookup of the app key `key` (whose digest is `digest`) begun at
    /// epoch `since` found (`None`: unknown), and returns what the waiting requests get. As for
    /// codes, a direct change recorded since then that touches the key or its app is newer than
    /// the answer: the cache holds the truth, and the answer is dropped.
    pub(super) fn settle_key(
        &self,
        digest: Digest,
        key: &str,
        found: Option<(String, AppKey)>,
        since: u64,
    ) -> Outcome {
        let mut journal = self.journal();
        let Some(mut changes) = journal.since(since) else {
            return Outcome::Failed;
        };
        let app = found.as_ref().map(|(app, _)| app.as_str());
        let overtaken = changes.any(|change| match change {
            Mutation::Key(changed, now) => {
                Some(&**changed) == app || now.as_ref().is_some_and(|k| k.key() == key)
            }
            Mutation::RemoveApp(gone) => Some(&**gone) == app,
            _ => false,
        });
        drop(changes);
        if overtaken {
            return self
                .app_key(key)
                .map_or(Outcome::Unknown, |(identity, _)| Outcome::Found(identity));
        }
        match found {
            Some((app, found)) if found.key() == key => {
                let change = Mutation::Key(app.into(), Some(Arc::new(found)));
                self.apply(&change);
                journal.record(change);
                drop(journal);
                self.app_key(key)
                    .map_or(Outcome::Unknown, |(identity, _)| Outcome::Found(identity))
            }
            // Not found, or a provider that answered for another key.
            _ => {
                self.remember_unknown(digest);
                Outcome::Unknown
            }
        }
    }

    /// Replaces every app's key with `keys` (a provider's, whose load started at `since`), then
    /// replays the key changes made since, so that a secret reset or an app deleted while the
    /// list was in flight keeps its newer state. `false` (nothing applied) if the journal no
    /// longer reaches back to `since`.
    pub(crate) fn replace_app_keys_since(&self, keys: AppKeys, since: u64) -> bool {
        let journal = self.journal();
        let Some(replay) = journal.since(since) else {
            return false;
        };
        let index = &self.inner.keys;
        let keep: HashSet<&str> = keys.iter().map(|(app, _)| app.as_str()).collect();
        let gone: Vec<Box<str>> = index
            .by_app
            .iter()
            .filter(|e| !keep.contains(&**e.key()))
            .map(|e| e.key().clone())
            .collect();
        for app in gone {
            index.remove(&app);
        }
        for (app, key) in &keys {
            index.set(app, Arc::clone(key));
        }
        for change in replay {
            match change {
                Mutation::Key(app, key) => drop(self.apply_key(app, key.as_ref())),
                Mutation::RemoveApp(app) => drop(index.remove(app)),
                _ => {}
            }
        }
        true
    }
}
