//! The change log: what happened after a revision, an ID created again, a reader left
//! behind the retained log.

use std::sync::Arc;

use apig_appcode::store::{AppCodeRecord, DeletedAppCode, Store};

use super::{app, changes, code_of, id, revision, scope, two_apps_and_one_elsewhere, RETENTION};

pub(super) fn deleted(records: &[&AppCodeRecord]) -> Vec<DeletedAppCode> {
    records
        .iter()
        .map(|r| DeletedAppCode {
            app_id: r.app_id.clone(),
            id: r.id.clone(),
        })
        .collect()
}

pub(super) async fn changes_after_a_revision_are_exactly_what_happened(store: Arc<dyn Store>) {
    let s = scope();
    let other = two_apps_and_one_elsewhere(&*store).await;
    let start = revision(&*store, "instance-1").await;
    let empty = changes(&*store, "instance-1", start).await;
    assert!(empty.is_empty());
    assert_eq!(empty.revision, start);

    let a = code_of(1, 1, "rev");
    let b = code_of(1, 2, "rev");
    let c = code_of(2, 3, "rev");
    for r in [&a, &b, &c] {
        store.create_app_code(&s, r.clone()).await.unwrap();
    }
    // Another instance's writes are not this one's changes.
    store
        .create_app_code(&other, code_of(3, 4, "rev"))
        .await
        .unwrap();
    let created = changes(&*store, "instance-1", start).await;
    assert_eq!(created.created, [a.clone(), b.clone(), c.clone()]);
    assert!(created.deleted.is_empty());
    let after_creates = created.revision;
    assert!(after_creates > start);
    // A snapshot says which revision it reflects: the same one.
    let snapshot = store.instance_snapshot("instance-1").await.unwrap();
    assert_eq!(snapshot.revision, Some(after_creates));
    assert_eq!(snapshot.codes.len(), 3);
    // Read in a stream, the same codes (in an order of the store's), at the same revision.
    let mut streamed = Vec::new();
    let streamed_revision = store
        .instance_snapshot_into("instance-1", &mut |c| streamed.push(c))
        .await
        .unwrap();
    assert_eq!(streamed_revision, snapshot.revision);
    let by_id = |mut codes: Vec<AppCodeRecord>| {
        codes.sort_by(|a, b| a.id.cmp(&b.id));
        codes
    };
    assert_eq!(by_id(streamed), by_id(snapshot.codes.clone()));

    store.delete_app_code(&s, &id(1), &a.id).await.unwrap();
    let one_delete = changes(&*store, "instance-1", after_creates).await;
    assert!(one_delete.created.is_empty());
    assert_eq!(one_delete.deleted, deleted(&[&a]));
    assert!(one_delete.revision > after_creates);

    // From the start: a code created and deleted since is only a deletion.
    let all = changes(&*store, "instance-1", start).await;
    assert_eq!(all.created, [b.clone(), c.clone()]);
    assert_eq!(all.deleted, deleted(&[&a]));

    // Deleting an app deletes its codes: each is a change.
    let before_app = one_delete.revision;
    store.delete_app(&s, &id(1)).await.unwrap();
    let app_gone = changes(&*store, "instance-1", before_app).await;
    assert_eq!(app_gone.deleted, deleted(&[&b]));
    assert!(app_gone.created.is_empty());

    // Up to date: nothing, at the same revision. Ahead of the store: cannot tell.
    let now = app_gone.revision;
    assert!(changes(&*store, "instance-1", now).await.is_empty());
    assert_eq!(changes(&*store, "instance-1", now).await.revision, now);
    assert!(store
        .app_code_changes("instance-1", now + 1)
        .await
        .unwrap()
        .is_none());
    // An instance nobody wrote to is at its first revision.
    let untouched = revision(&*store, "instance-9").await;
    assert!(changes(&*store, "instance-9", untouched).await.is_empty());
}

pub(super) async fn an_id_deleted_and_created_again_is_created_once(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    let start = revision(&*store, "instance-1").await;
    let first = code_of(1, 1, "again");
    let other = code_of(1, 2, "again");
    store.create_app_code(&s, first.clone()).await.unwrap();
    let after_first = revision(&*store, "instance-1").await;
    store.create_app_code(&s, other.clone()).await.unwrap();
    store.delete_app_code(&s, &id(1), &first.id).await.unwrap();
    let after_delete = revision(&*store, "instance-1").await;
    // IDs are unique among existing codes only: the same ID again, another value.
    let again = AppCodeRecord {
        id: first.id.clone(),
        ..code_of(1, 3, "again")
    };
    store.create_app_code(&s, again.clone()).await.unwrap();

    // Each ID once, as it exists now, where it was last created; the deletion is there too.
    let all = changes(&*store, "instance-1", start).await;
    assert_eq!(all.created, [other.clone(), again.clone()]);
    assert_eq!(all.deleted, deleted(&[&first]));
    // A reader that held the first code removes, then adds, and holds what the store holds.
    let since_first = changes(&*store, "instance-1", after_first).await;
    assert_eq!(since_first.deleted, deleted(&[&first]));
    let mut held = vec![first.clone()];
    held.retain(|r| !since_first.deleted.iter().any(|gone| gone.id == r.id));
    held.extend(since_first.created);
    let now = store.instance_snapshot("instance-1").await.unwrap();
    assert_eq!(held, now.codes);
    assert_eq!(now.codes, [other, again.clone()]);
    // After the deletion, only the creation.
    let last = changes(&*store, "instance-1", after_delete).await;
    assert_eq!(last.created, [again]);
    assert!(last.deleted.is_empty());
}

pub(super) async fn a_reader_behind_the_retained_log_is_told_to_reload(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    let start = revision(&*store, "instance-1").await;
    let mut revisions = vec![start];
    // Create and delete one code over and over: two writes a round.
    let r = code_of(1, 1, "ret");
    for _ in 0..RETENTION {
        store.create_app_code(&s, r.clone()).await.unwrap();
        store.delete_app_code(&s, &id(1), &r.id).await.unwrap();
        revisions.push(revision(&*store, "instance-1").await);
    }
    let now = *revisions.last().unwrap();
    assert!(
        store
            .app_code_changes("instance-1", start)
            .await
            .unwrap()
            .is_none(),
        "a reader {} revisions behind was not told to reload",
        now - start
    );
    // Within the retained revisions, the changes are still there.
    let recent = revisions[revisions.len() - 2];
    let last_round = changes(&*store, "instance-1", recent).await;
    assert_eq!(last_round.deleted, deleted(&[&r]));
    assert_eq!(last_round.revision, now);
}
