//! The apps' signing keys as a gateway reads them: all of an instance's, and each change to
//! one (an app created, its key or secret changed, the app deleted) as a revision.

use std::sync::Arc;

use apig_appcode::store::{AppChanges, Scope, SecretString, Store, Timestamp};
use apig_appcode::AppKey;

use super::{app, app_in, changes, id, revision, scope};

fn key_of(n: u64, secret: &str) -> AppKey {
    AppKey::new(format!("key_{n:028}"), secret)
}

fn first_secret(n: u64) -> String {
    format!("Secret{n:026}")
}

pub(super) async fn instance_app_keys_hold_every_app_of_the_instance(store: Arc<dyn Store>) {
    let other_project = Scope::new("project-b", "instance-1");
    let other_instance = Scope::new("project-a", "instance-2");
    store.create_app(app(1)).await.unwrap();
    store
        .create_app(app_in(&other_project, 2, "two"))
        .await
        .unwrap();
    store
        .create_app(app_in(&other_instance, 3, "three"))
        .await
        .unwrap();
    let keys = store.instance_app_keys("instance-1").await.unwrap();
    assert_eq!(
        keys,
        [
            (id(1), key_of(1, &first_secret(1))),
            (id(2), key_of(2, &first_secret(2))),
        ]
    );
    assert!(store
        .instance_app_keys("instance-9")
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn key_changes_are_revisions_named_once_with_their_key_now(store: Arc<dyn Store>) {
    let s = scope();
    let start = revision(&*store, "instance-1").await;
    store.create_app(app(1)).await.unwrap();
    let created = changes(&*store, "instance-1", start).await;
    assert!(created.revision > start, "a new app takes a revision");
    assert_eq!(created.keys, [(id(1), Some(key_of(1, &first_secret(1))))]);

    // A secret reset, then a new key: the app once, with what it has now.
    let after_create = created.revision;
    let mut reset = AppChanges::at(Timestamp::from_unix_nanos(1));
    reset.app_secret = Some(SecretString::new("ResetSecret00000000000000000000"));
    store.update_app(&s, &id(1), reset).await.unwrap();
    let mut rekey = AppChanges::at(Timestamp::from_unix_nanos(2));
    rekey.app_key = Some("key_renamed".into());
    store.update_app(&s, &id(1), rekey).await.unwrap();
    let changed = changes(&*store, "instance-1", after_create).await;
    assert_eq!(
        changed.keys,
        [(
            id(1),
            Some(AppKey::new(
                "key_renamed",
                "ResetSecret00000000000000000000"
            ))
        )]
    );

    // A rename alone touches no key: no revision.
    let before_rename = changed.revision;
    let mut rename = AppChanges::at(Timestamp::from_unix_nanos(3));
    rename.name = Some("renamed".into());
    store.update_app(&s, &id(1), rename).await.unwrap();
    assert_eq!(revision(&*store, "instance-1").await, before_rename);

    // Deleted, even without codes, ACL or quota: a change, with no key.
    store.delete_app(&s, &id(1)).await.unwrap();
    let gone = changes(&*store, "instance-1", before_rename).await;
    assert!(gone.revision > before_rename);
    assert_eq!(gone.keys, [(id(1), None)]);
}
