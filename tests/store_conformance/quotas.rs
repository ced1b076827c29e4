//! The app quota cases: quotas, their bindings to apps, their changes and shared counts.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use apig_appcode::quota::{AppQuota, TimeUnit};
use apig_appcode::store::{
    AppQuotaRecord, QuotaCount, Scope, SharedCount, Store, StoreError, Timestamp,
};
use tokio::task::JoinSet;

use super::{app, app_in, changes, id, revision, scope};

fn quota_id(n: u64) -> String {
    format!("q{n:031x}")
}

fn limit(calls: u64) -> AppQuota {
    AppQuota::new(calls, TimeUnit::Hour, 2)
        .unwrap()
        .reset_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// How many apps quota `n` of `scope` is bound to, as the store says.
async fn bound_app_num(store: &dyn Store, scope: &Scope, n: u64) -> u64 {
    let quota = store.get_app_quota(scope, &quota_id(n)).await.unwrap();
    quota.bound_app_num
}

/// Creates `quota` in `scope` and binds the apps `app_ids` to it at `at`.
async fn create_bound(
    store: &dyn Store,
    scope: &Scope,
    quota: AppQuotaRecord,
    app_ids: &[String],
    at: Timestamp,
) {
    let quota_id = quota.id.clone();
    store.create_app_quota(scope, quota).await.unwrap();
    store
        .bind_app_quota(scope, &quota_id, app_ids, at)
        .await
        .unwrap();
}

fn quota(n: u64, name: &str, calls: u64) -> AppQuotaRecord {
    AppQuotaRecord {
        id: quota_id(n),
        name: name.to_owned(),
        quota: limit(calls),
        remark: format!("remark {n}"),
        create_time: Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + n as i64),
        bound_app_num: 0,
    }
}

fn names(page: &[AppQuotaRecord]) -> Vec<&str> {
    page.iter().map(|q| q.name.as_str()).collect()
}

pub(super) async fn app_quotas_are_created_read_listed_updated_and_deleted(store: Arc<dyn Store>) {
    let s = scope();
    let first = store
        .create_app_quota(&s, quota(1, "daily_1", 10))
        .await
        .unwrap();
    assert_eq!(first, quota(1, "daily_1", 10));
    // A quota without a reset time round-trips too.
    let mut plain = quota(2, "daily_2", 20);
    plain.quota = AppQuota::new(20, TimeUnit::Day, 1).unwrap();
    store.create_app_quota(&s, plain.clone()).await.unwrap();
    store
        .create_app_quota(&s, quota(3, "weekly", 30))
        .await
        .unwrap();
    assert_eq!(store.get_app_quota(&s, &quota_id(2)).await.unwrap(), plain);

    // Names are unique in the instance, whatever the project.
    assert_err!(
        store.create_app_quota(&s, quota(4, "daily_1", 1)).await,
        StoreError::QuotaNameExists
    );
    let other_project = Scope::new("project-b", "instance-1");
    assert_err!(
        store
            .create_app_quota(&other_project, quota(5, "weekly", 1))
            .await,
        StoreError::QuotaNameExists
    );
    let other_instance = Scope::new("project-a", "instance-2");
    store
        .create_app_quota(&other_instance, quota(6, "weekly", 1))
        .await
        .unwrap();

    // Listed in creation order, paged, filtered by a part of the name; only the scope's.
    let all = store.list_app_quotas(&s, None, 0, 100).await.unwrap();
    assert_eq!(all.total, 3);
    assert_eq!(names(&all.items), ["daily_1", "daily_2", "weekly"]);
    let second = store.list_app_quotas(&s, None, 1, 1).await.unwrap();
    assert_eq!((second.total, names(&second.items)), (3, vec!["daily_2"]));
    let daily = store
        .list_app_quotas(&s, Some("aily"), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        (daily.total, names(&daily.items)),
        (2, vec!["daily_1", "daily_2"])
    );

    // An update replaces name, limit and remark; the ID and creation time stay.
    let mut changed = quota(99, "hourly", 77);
    changed.remark = "changed".into();
    changed.create_time = Timestamp::from_unix_nanos(1);
    let updated = store
        .update_app_quota(&s, &quota_id(1), changed)
        .await
        .unwrap();
    assert_eq!(updated.id, quota_id(1));
    assert_eq!(updated.create_time, quota(1, "daily_1", 10).create_time);
    assert_eq!(
        (updated.name.as_str(), updated.remark.as_str()),
        ("hourly", "changed")
    );
    assert_eq!(updated.quota, limit(77));
    assert_eq!(
        store.get_app_quota(&s, &quota_id(1)).await.unwrap(),
        updated
    );
    // Keeping its own name is no clash; taking another's is.
    store
        .update_app_quota(&s, &quota_id(1), quota(1, "hourly", 5))
        .await
        .unwrap();
    assert_err!(
        store
            .update_app_quota(&s, &quota_id(1), quota(1, "weekly", 5))
            .await,
        StoreError::QuotaNameExists
    );

    store.delete_app_quota(&s, &quota_id(1)).await.unwrap();
    assert_err!(
        store.get_app_quota(&s, &quota_id(1)).await,
        StoreError::QuotaNotFound
    );
    assert_err!(
        store.delete_app_quota(&s, &quota_id(1)).await,
        StoreError::QuotaNotFound
    );
    assert_err!(
        store
            .update_app_quota(&s, &quota_id(1), quota(1, "x_quota", 1))
            .await,
        StoreError::QuotaNotFound
    );
    // Another scope's quota is not found through this one.
    assert_err!(
        store.get_app_quota(&other_project, &quota_id(2)).await,
        StoreError::QuotaNotFound
    );
    // A deleted quota's name is free again.
    store
        .create_app_quota(&s, quota(7, "hourly", 1))
        .await
        .unwrap();
}

pub(super) async fn an_app_is_bound_to_one_quota_and_leaves_with_it(store: Arc<dyn Store>) {
    let s = scope();
    for n in 1..=4 {
        store.create_app(app(n)).await.unwrap();
    }
    store
        .create_app_quota(&s, quota(1, "gold", 100))
        .await
        .unwrap();
    store
        .create_app_quota(&s, quota(2, "silver", 10))
        .await
        .unwrap();
    let at = Timestamp::from_unix_nanos(1_750_000_000_000_000_000);

    let bound = store
        .bind_app_quota(&s, &quota_id(1), &[id(2), id(1)], at)
        .await
        .unwrap();
    assert_eq!(
        bound
            .iter()
            .map(|b| (b.app_quota_id.as_str(), b.app_id.as_str(), b.bound_time))
            .collect::<Vec<_>>(),
        [
            (quota_id(1).as_str(), id(2).as_str(), at),
            (quota_id(1).as_str(), id(1).as_str(), at)
        ]
    );
    assert_eq!(bound_app_num(&*store, &s, 1).await, 2);
    // Binding again to the same quota keeps the first binding.
    let later = Timestamp::from_unix_nanos(at.unix_nanos() + 5);
    let again = store
        .bind_app_quota(&s, &quota_id(1), &[id(1)], later)
        .await
        .unwrap();
    assert_eq!(again[0].bound_time, at);
    // One quota per app, and all or nothing: app 3 stays unbound.
    assert_err!(
        store
            .bind_app_quota(&s, &quota_id(2), &[id(3), id(1)], at)
            .await,
        StoreError::AppHasQuota
    );
    assert_err!(
        store
            .bind_app_quota(&s, &quota_id(2), &[id(3), id(9)], at)
            .await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.bind_app_quota(&s, &quota_id(9), &[id(3)], at).await,
        StoreError::QuotaNotFound
    );
    assert_eq!(store.app_bound_quota(&s, &id(3)).await.unwrap(), None);

    // Bound apps of the quota, and bindable ones (without any quota), in the apps' order.
    let listed = |bound: bool, name: Option<&'static str>| {
        let store = Arc::clone(&store);
        let s = s.clone();
        async move {
            let page = store
                .quota_apps(&s, &quota_id(1), bound, name, 0, 100)
                .await
                .unwrap();
            assert_eq!(page.total as usize, page.items.len());
            page.items
                .into_iter()
                .map(|a| (a.app.id, a.bound_time))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(true, None).await,
        [(id(1), Some(at)), (id(2), Some(at))]
    );
    assert_eq!(listed(false, None).await, [(id(3), None), (id(4), None)]);
    assert_eq!(listed(false, Some("p_4")).await, [(id(4), None)]);
    assert_eq!(listed(true, Some("p_2")).await, [(id(2), Some(at))]);
    let paged = store
        .quota_apps(&s, &quota_id(1), true, None, 1, 1)
        .await
        .unwrap();
    assert_eq!((paged.total, paged.items[0].app.id.clone()), (2, id(2)));
    assert_err!(
        store.quota_apps(&s, &quota_id(9), true, None, 0, 10).await,
        StoreError::QuotaNotFound
    );

    let mut theirs = store.app_bound_quota(&s, &id(1)).await.unwrap().unwrap();
    assert_eq!(
        (theirs.id.as_str(), theirs.bound_app_num),
        (quota_id(1).as_str(), 2)
    );
    theirs.bound_app_num = 0;
    assert_eq!(theirs, quota(1, "gold", 100));
    assert_err!(
        store.app_bound_quota(&s, &id(9)).await,
        StoreError::AppNotFound
    );

    let mut quotas = store.instance_app_quotas("instance-1").await.unwrap();
    quotas.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(quotas, [(id(1), limit(100)), (id(2), limit(100))]);

    // Unbinding: only a bound app; then it is bindable, and may take another quota.
    store
        .unbind_app_quota(&s, &quota_id(1), &id(2))
        .await
        .unwrap();
    assert_err!(
        store.unbind_app_quota(&s, &quota_id(1), &id(2)).await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.unbind_app_quota(&s, &quota_id(9), &id(1)).await,
        StoreError::QuotaNotFound
    );
    store
        .bind_app_quota(&s, &quota_id(2), &[id(2)], at)
        .await
        .unwrap();
    assert_eq!(
        store.app_bound_quota(&s, &id(2)).await.unwrap().unwrap().id,
        quota_id(2)
    );

    // A deleted app leaves its quota; a deleted quota leaves its apps.
    store.delete_app(&s, &id(1)).await.unwrap();
    assert_eq!(bound_app_num(&*store, &s, 1).await, 0);
    store.delete_app_quota(&s, &quota_id(2)).await.unwrap();
    assert_eq!(store.app_bound_quota(&s, &id(2)).await.unwrap(), None);
    assert_eq!(store.instance_app_quotas("instance-1").await.unwrap(), []);
    // An app created again under a deleted one's ID starts without a quota.
    store.create_app(app(1)).await.unwrap();
    assert_eq!(store.app_bound_quota(&s, &id(1)).await.unwrap(), None);

    // A quota without a reset time reaches gateways anchored at the app's binding, in whole
    // seconds, so that every node counts the same windows; shown as it was created.
    let mut plain = quota(4, "plain", 3);
    plain.quota = AppQuota::new(3, TimeUnit::Minute, 1).unwrap();
    store.create_app_quota(&s, plain.clone()).await.unwrap();
    let bound_at = Timestamp::from_unix_nanos(1_760_000_000_900_000_000);
    store
        .bind_app_quota(&s, &quota_id(4), &[id(1)], bound_at)
        .await
        .unwrap();
    let anchored = plain
        .quota
        .clone()
        .reset_time(UNIX_EPOCH + Duration::from_secs(1_760_000_000));
    assert_eq!(
        store.instance_app_quotas("instance-1").await.unwrap(),
        [(id(1), anchored)]
    );
    assert_eq!(
        store.get_app_quota(&s, &quota_id(4)).await.unwrap().quota,
        plain.quota
    );
    store.delete_app_quota(&s, &quota_id(4)).await.unwrap();

    // Another instance's bindings are its own.
    let other = Scope::new("project-b", "instance-2");
    store
        .create_app(app_in(&other, 5, "elsewhere"))
        .await
        .unwrap();
    create_bound(&*store, &other, quota(3, "gold", 1), &[id(5)], at).await;
    assert_eq!(store.instance_app_quotas("instance-1").await.unwrap(), []);
    assert_eq!(
        store.instance_app_quotas("instance-2").await.unwrap(),
        [(id(5), limit(1))]
    );
}

pub(super) async fn quota_changes_are_revisions_named_once_with_their_quota_now(
    store: Arc<dyn Store>,
) {
    let s = scope();
    for n in 1..=3 {
        store.create_app(app(n)).await.unwrap();
    }
    let at = Timestamp::from_unix_nanos(1_750_000_000_000_000_000);
    let start = revision(&*store, "instance-1").await;
    // Creating a quota changes no app.
    store
        .create_app_quota(&s, quota(1, "gold", 100))
        .await
        .unwrap();
    assert_eq!(revision(&*store, "instance-1").await, start);

    store
        .bind_app_quota(&s, &quota_id(1), &[id(1), id(2)], at)
        .await
        .unwrap();
    let bound = changes(&*store, "instance-1", start).await;
    assert!(bound.revision > start);
    assert_eq!(
        bound.quotas,
        [(id(1), Some(limit(100))), (id(2), Some(limit(100)))]
    );
    assert!(bound.created.is_empty() && bound.deleted.is_empty());

    // An update reaches every bound app with the new limit.
    store
        .update_app_quota(&s, &quota_id(1), quota(1, "gold", 50))
        .await
        .unwrap();
    let updated = changes(&*store, "instance-1", bound.revision).await;
    assert_eq!(
        updated.quotas,
        [(id(1), Some(limit(50))), (id(2), Some(limit(50)))]
    );

    // Unbinding one, then deleting the quota: each app once, as it is now.
    store
        .unbind_app_quota(&s, &quota_id(1), &id(2))
        .await
        .unwrap();
    store.delete_app_quota(&s, &quota_id(1)).await.unwrap();
    let gone = changes(&*store, "instance-1", updated.revision).await;
    let mut quotas = gone.quotas.clone();
    quotas.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(quotas, [(id(1), None), (id(2), None)]);

    // Deleting an app bound to a quota is a change of its quota.
    create_bound(&*store, &s, quota(2, "silver", 5), &[id(3)], at).await;
    let before = revision(&*store, "instance-1").await;
    store.delete_app(&s, &id(3)).await.unwrap();
    assert_eq!(
        changes(&*store, "instance-1", before).await.quotas,
        [(id(3), None)]
    );
}

pub(super) async fn shared_quota_counts_add_up_per_window(store: Arc<dyn Store>) {
    let count = |app: u64, first_call: i64, window_start: i64, calls: u64| QuotaCount {
        app_id: id(app),
        first_call,
        window_start,
        window_end: window_start + 60,
        calls,
    };
    let shared = |first_call, window_start, calls| SharedCount {
        first_call,
        window_start,
        calls,
    };
    let add = async |instance: &str, counts: &[QuotaCount]| {
        store.add_quota_counts(instance, counts).await.unwrap()
    };
    let added = add("instance-1", &[count(1, 100, 100, 3), count(2, 50, 50, 1)]).await;
    assert_eq!(added, [shared(100, 100, 3), shared(50, 50, 1)]);
    // The same window adds up; the first call reported first stays.
    let added = add("instance-1", &[count(1, 90, 100, 4)]).await;
    assert_eq!(added, [shared(100, 100, 7)]);
    // An older window has ended: dropped. A newer one starts over.
    let added = add("instance-1", &[count(1, 100, 40, 9), count(1, 100, 160, 2)]).await;
    assert_eq!(added, [shared(100, 100, 7), shared(100, 160, 2)]);
    // Zero calls reads the count; another instance has its own.
    let read = add("instance-1", &[count(1, 100, 160, 0)]).await;
    assert_eq!(read, [shared(100, 160, 2)]);
    let elsewhere = add("instance-2", &[count(1, 7, 7, 1)]).await;
    assert_eq!(elsewhere, [shared(7, 7, 1)]);

    // Concurrent additions (nodes flushing at once) lose nothing.
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for _ in 0..5 {
                store
                    .add_quota_counts("instance-1", &[count(3, 0, 0, 2), count(4, 0, 0, 1)])
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let totals = add("instance-1", &[count(3, 0, 0, 0), count(4, 0, 0, 0)]).await;
    assert_eq!(totals, [shared(0, 0, 80), shared(0, 0, 40)]);
}
