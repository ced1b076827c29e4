//! App ACLs: set, read, replaced and removed, with their app and in their instance, and
//! their changes as revisions.

use std::sync::Arc;

use apig_appcode::acl::{AclType, AppAcl};
use apig_appcode::store::{Scope, Store, StoreError};

use super::{app, changes, id, revision, scope, two_apps_and_one_elsewhere};

pub(super) fn acl(kind: AclType, values: &[&str]) -> AppAcl {
    AppAcl::new(kind, values).unwrap()
}

pub(super) async fn app_acls_are_set_read_replaced_and_removed(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    assert_eq!(store.get_app_acl(&s, &id(1)).await.unwrap(), None);
    let permit = acl(
        AclType::Permit,
        &["192.0.2.1", "198.51.100.0/24", "2001:db8::1-2001:db8::ff"],
    );
    store.set_app_acl(&s, &id(1), permit.clone()).await.unwrap();
    // Read back exactly: type, values and their order.
    assert_eq!(store.get_app_acl(&s, &id(1)).await.unwrap(), Some(permit));
    let deny = acl(AclType::Deny, &["10.0.0.0/8"]);
    store.set_app_acl(&s, &id(1), deny.clone()).await.unwrap();
    assert_eq!(store.get_app_acl(&s, &id(1)).await.unwrap(), Some(deny));
    assert!(store.delete_app_acl(&s, &id(1)).await.unwrap());
    assert!(!store.delete_app_acl(&s, &id(1)).await.unwrap());
    assert_eq!(store.get_app_acl(&s, &id(1)).await.unwrap(), None);

    let any = acl(AclType::Deny, &["192.0.2.1"]);
    assert_err!(store.get_app_acl(&s, &id(9)).await, StoreError::AppNotFound);
    assert_err!(
        store.set_app_acl(&s, &id(9), any).await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.delete_app_acl(&s, &id(9)).await,
        StoreError::AppNotFound
    );
    // An app of another scope is not found through this one.
    let other = Scope::new("project-b", "instance-1");
    assert_err!(
        store.get_app_acl(&other, &id(1)).await,
        StoreError::AppNotFound
    );
}

pub(super) async fn app_acls_go_with_their_app_and_stay_in_their_instance(store: Arc<dyn Store>) {
    let s = scope();
    let other = two_apps_and_one_elsewhere(&*store).await;
    let one = acl(AclType::Permit, &["192.0.2.1"]);
    let two = acl(AclType::Deny, &["192.0.2.2"]);
    store.set_app_acl(&s, &id(1), one.clone()).await.unwrap();
    store.set_app_acl(&s, &id(2), two.clone()).await.unwrap();
    store
        .set_app_acl(&other, &id(3), acl(AclType::Deny, &["192.0.2.3"]))
        .await
        .unwrap();
    let mut listed = store.instance_app_acls("instance-1").await.unwrap();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, [(id(1), one), (id(2), two.clone())]);

    store.delete_app(&s, &id(1)).await.unwrap();
    assert_eq!(
        store.instance_app_acls("instance-1").await.unwrap(),
        [(id(2), two)]
    );
    // An app created again under the deleted one's ID starts without an ACL.
    store.create_app(app(1)).await.unwrap();
    assert_eq!(store.get_app_acl(&s, &id(1)).await.unwrap(), None);
}

pub(super) async fn acl_changes_are_revisions_named_once_with_their_acl_now(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    let start = revision(&*store, "instance-1").await;
    store
        .set_app_acl(&s, &id(1), acl(AclType::Permit, &["192.0.2.1"]))
        .await
        .unwrap();
    let after_set = changes(&*store, "instance-1", start).await;
    assert!(after_set.revision > start, "an ACL change takes a revision");
    assert_eq!(
        after_set.acls,
        [(id(1), Some(acl(AclType::Permit, &["192.0.2.1"])))]
    );
    assert!(after_set.created.is_empty() && after_set.deleted.is_empty());

    // Changed twice, then another app's: each app once, with the ACL it has now.
    let latest = acl(AclType::Deny, &["203.0.113.0/24"]);
    store.set_app_acl(&s, &id(1), latest.clone()).await.unwrap();
    store
        .set_app_acl(&s, &id(2), acl(AclType::Deny, &["192.0.2.9"]))
        .await
        .unwrap();
    store.delete_app_acl(&s, &id(2)).await.unwrap();
    let all = changes(&*store, "instance-1", start).await;
    assert_eq!(all.acls, [(id(1), Some(latest)), (id(2), None)]);

    // Removing nothing is no change; deleting an app with an ACL is one.
    let before = all.revision;
    assert!(!store.delete_app_acl(&s, &id(2)).await.unwrap());
    assert_eq!(revision(&*store, "instance-1").await, before);
    store.delete_app(&s, &id(1)).await.unwrap();
    let gone = changes(&*store, "instance-1", before).await;
    assert!(gone.revision > before);
    assert_eq!(gone.acls, [(id(1), None)]);
}
