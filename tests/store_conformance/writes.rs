//! The cases of what one write records: one revision however many rows it changed, none when it
//! changed nothing, and a digest of the codes that follows every write.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use apig_appcode::acl::AclType;
use apig_appcode::provider::CodesDigest;
use apig_appcode::quota::{AppQuota, TimeUnit};
use apig_appcode::store::{AppQuotaRecord, Store, Timestamp};

use super::acls::acl;
use super::revisions::deleted;
use super::{app, changes, code_of, id, revision, scope};

fn hourly(n: u64) -> AppQuotaRecord {
    AppQuotaRecord {
        id: format!("w{n:031x}"),
        name: format!("hourly {n}"),
        quota: AppQuota::new(100, TimeUnit::Hour, 1)
            .unwrap()
            .reset_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        remark: String::new(),
        create_time: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
        bound_app_num: 0,
    }
}

pub(super) async fn a_write_takes_one_revision_however_many_rows_it_changes(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    let a = code_of(1, 1, "one");
    let b = code_of(1, 2, "one");
    for r in [&a, &b] {
        store.create_app_code(&s, r.clone()).await.unwrap();
    }
    store
        .set_app_acl(&s, &id(1), acl(AclType::Permit, &["192.0.2.1"]))
        .await
        .unwrap();
    store.create_app_quota(&s, hourly(1)).await.unwrap();
    store
        .bind_app_quota(
            &s,
            &hourly(1).id,
            &[id(1), id(2)],
            Timestamp::from_unix_nanos(0),
        )
        .await
        .unwrap();
    let before = revision(&*store, "instance-1").await;

    // Two codes, an ACL and a quota binding: one write, one revision.
    store.delete_app(&s, &id(1)).await.unwrap();
    let gone = changes(&*store, "instance-1", before).await;
    assert_eq!(gone.revision, before + 1);
    assert_eq!(gone.deleted, deleted(&[&a, &b]));
    assert_eq!(gone.acls, [(id(1), None)]);
    assert_eq!(gone.quotas, [(id(1), None)]);

    // A quota changed under one bound app is one revision too.
    let mut bigger = hourly(1);
    bigger.quota = AppQuota::new(200, TimeUnit::Hour, 1).unwrap();
    store
        .update_app_quota(&s, &hourly(1).id, bigger)
        .await
        .unwrap();
    assert_eq!(revision(&*store, "instance-1").await, before + 2);

    // An app's creation and deletion each change what gateways enforce (its signing key), one
    // revision each; changing nothing takes none: an ACL that was not there removed.
    store.create_app(app(3)).await.unwrap();
    store.delete_app(&s, &id(3)).await.unwrap();
    assert_eq!(revision(&*store, "instance-1").await, before + 4);
    assert!(!store.delete_app_acl(&s, &id(2)).await.unwrap());
    assert_eq!(revision(&*store, "instance-1").await, before + 4);
}

pub(super) async fn the_digest_is_of_the_codes_held_at_its_revision(store: Arc<dyn Store>) {
    let s = scope();
    let Some(empty) = store.instance_digest("instance-1").await.unwrap() else {
        panic!("this store gives digests");
    };
    assert_eq!(empty.codes, CodesDigest::default());
    store.create_app(app(1)).await.unwrap();
    let a = code_of(1, 1, "dig");
    let b = code_of(1, 2, "dig");
    for r in [&a, &b] {
        store.create_app_code(&s, r.clone()).await.unwrap();
    }
    store.delete_app_code(&s, &id(1), &a.id).await.unwrap();
    let digest = store.instance_digest("instance-1").await.unwrap().unwrap();
    let snapshot = store.instance_snapshot("instance-1").await.unwrap();
    assert_eq!(Some(digest.revision), snapshot.revision);
    let mut expected = CodesDigest::default();
    for r in &snapshot.codes {
        expected.add(&r.app_id, &r.id);
    }
    assert_eq!(digest.codes, expected);
    let mut only_b = CodesDigest::default();
    only_b.add(&b.app_id, &b.id);
    assert_eq!(digest.codes, only_b);
    // Another instance's codes are not in it.
    let other = store.instance_digest("instance-2").await.unwrap().unwrap();
    assert_eq!(other.codes, CodesDigest::default());
}
