//! AppCodes: created, read, listed and deleted; the per-app quota and the value's
//! uniqueness under concurrent creation; what deleting an app takes with it.

use std::collections::BTreeSet;
use std::sync::Arc;

use apig_appcode::store::{
    AppCodeRecord, AppFilter, Scope, SecretString, Store, StoreError, Timestamp,
    MAX_APP_CODES_PER_APP,
};
use apig_appcode::AppCode;
use tokio::task::JoinSet;

use super::{all_apps, app, app_in, code, code_of, id, pages, scope, value};

pub(super) async fn app_codes_are_created_read_listed_and_deleted(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    let records: Vec<AppCodeRecord> = (1..=4).map(|n| code_of(1, n, "v")).collect();
    for r in &records {
        assert_eq!(&store.create_app_code(&s, r.clone()).await.unwrap(), r);
    }
    for r in &records {
        assert_eq!(&store.get_app_code(&s, &id(1), &r.id).await.unwrap(), r);
    }
    for (offset, limit, range) in pages(records.len()) {
        let page = store
            .list_app_codes(&s, &id(1), offset, limit)
            .await
            .unwrap();
        assert_eq!(page.total, 4);
        assert_eq!(page.items, records[range].to_vec());
    }

    let gone = store
        .delete_app_code(&s, &id(1), &records[1].id)
        .await
        .unwrap();
    assert_eq!(gone, records[1]);
    assert_err!(
        store.get_app_code(&s, &id(1), &records[1].id).await,
        StoreError::AppCodeNotFound
    );
    assert_err!(
        store.delete_app_code(&s, &id(1), &records[1].id).await,
        StoreError::AppCodeNotFound
    );
    let page = store.list_app_codes(&s, &id(1), 0, 20).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(
        page.items,
        vec![records[0].clone(), records[2].clone(), records[3].clone()]
    );
    // A deleted value can be used again.
    let reuse = code(&id(1), 9, records[1].value.clone());
    store.create_app_code(&s, reuse.clone()).await.unwrap();
    assert_eq!(
        store.get_app_code(&s, &id(1), &reuse.id).await.unwrap(),
        reuse
    );

    // An app without codes lists an empty page.
    store.create_app(app(2)).await.unwrap();
    let empty = store.list_app_codes(&s, &id(2), 0, 20).await.unwrap();
    assert_eq!((empty.total, empty.items.len()), (0, 0));
}

pub(super) async fn not_found_distinguishes_app_from_app_code(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    let c = code_of(1, 1, "nf");
    store.create_app_code(&s, c.clone()).await.unwrap();
    let missing_app = id(77);

    assert_err!(
        store.get_app_code(&s, &missing_app, &c.id).await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.delete_app_code(&s, &missing_app, &c.id).await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.list_app_codes(&s, &missing_app, 0, 20).await,
        StoreError::AppNotFound
    );
    assert_err!(
        store
            .create_app_code(&s, code(&missing_app, 2, value("nf", 2)))
            .await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.delete_app(&s, &missing_app).await,
        StoreError::AppNotFound
    );

    assert_err!(
        store.get_app_code(&s, &id(1), &id(5)).await,
        StoreError::AppCodeNotFound
    );
    assert_err!(
        store.delete_app_code(&s, &id(1), &id(5)).await,
        StoreError::AppCodeNotFound
    );
    // The code exists, but under another app.
    assert_err!(
        store.get_app_code(&s, &id(2), &c.id).await,
        StoreError::AppCodeNotFound
    );
    assert_err!(
        store.delete_app_code(&s, &id(2), &c.id).await,
        StoreError::AppCodeNotFound
    );
    assert_eq!(store.get_app_code(&s, &id(1), &c.id).await.unwrap(), c);
}

pub(super) async fn quota_is_enforced_and_freed_by_deletion(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    for n in 0..MAX_APP_CODES_PER_APP as u64 {
        store.create_app_code(&s, code_of(1, n, "q")).await.unwrap();
    }
    assert_err!(
        store.create_app_code(&s, code_of(1, 10, "q")).await,
        StoreError::AppCodeQuotaExceeded
    );
    // A duplicate value is reported as such even when the app is full.
    assert_err!(
        store
            .create_app_code(&s, code(&id(1), 11, value("q", 0)))
            .await,
        StoreError::AppCodeExists
    );
    // The quota is per app.
    store
        .create_app_code(&s, code_of(2, 12, "q"))
        .await
        .unwrap();
    // Deleting one frees one slot.
    store
        .delete_app_code(&s, &id(1), &id(1_000_000))
        .await
        .unwrap();
    store
        .create_app_code(&s, code_of(1, 13, "q"))
        .await
        .unwrap();
    assert_err!(
        store.create_app_code(&s, code_of(1, 14, "q")).await,
        StoreError::AppCodeQuotaExceeded
    );
    let page = store.list_app_codes(&s, &id(1), 0, 20).await.unwrap();
    assert_eq!(page.total, MAX_APP_CODES_PER_APP as u64);
}

/// Runs `n` creations at once and counts each outcome.
async fn create_concurrently(
    store: &Arc<dyn Store>,
    records: impl IntoIterator<Item = AppCodeRecord>,
) -> (usize, usize, usize) {
    let mut set = JoinSet::new();
    for record in records {
        let store = Arc::clone(store);
        set.spawn(async move { store.create_app_code(&scope(), record).await });
    }
    let (mut ok, mut quota, mut exists) = (0, 0, 0);
    while let Some(result) = set.join_next().await {
        match result.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::AppCodeQuotaExceeded) => quota += 1,
            Err(StoreError::AppCodeExists) => exists += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    (ok, quota, exists)
}

pub(super) async fn concurrent_creates_on_one_app_yield_exactly_the_quota(store: Arc<dyn Store>) {
    store.create_app(app(1)).await.unwrap();
    let records = (0..50).map(|n| code_of(1, n, "c"));
    assert_eq!(create_concurrently(&store, records).await, (5, 45, 0));
    let page = store
        .list_app_codes(&scope(), &id(1), 0, 100)
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (5, 5));
    assert_eq!(
        store.instance_app_codes("instance-1").await.unwrap().len(),
        5
    );
}

pub(super) async fn concurrent_creates_of_one_value_yield_exactly_one(store: Arc<dyn Store>) {
    for n in 0..50 {
        store.create_app(app(n)).await.unwrap();
    }
    let shared = value("same", 0);
    let records = (0..50).map(|n| code(&id(n), n, shared.clone()));
    assert_eq!(create_concurrently(&store, records).await, (1, 0, 49));
    let all = store.instance_app_codes("instance-1").await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].value, shared);
}

pub(super) async fn a_value_is_unique_per_instance_only(store: Arc<dyn Store>) {
    let (s1, s2) = (scope(), Scope::new("project-a", "instance-2"));
    let same_instance = Scope::new("project-b", "instance-1");
    store.create_app(app_in(&s1, 1, "one")).await.unwrap();
    store.create_app(app_in(&s1, 2, "two")).await.unwrap();
    store.create_app(app_in(&s2, 3, "three")).await.unwrap();
    store
        .create_app(app_in(&same_instance, 4, "four"))
        .await
        .unwrap();
    let v = value("uniq", 1);

    store
        .create_app_code(&s1, code(&id(1), 1, v.clone()))
        .await
        .unwrap();
    // The same app, another app of the instance, and another project on the same instance.
    assert_err!(
        store.create_app_code(&s1, code(&id(1), 2, v.clone())).await,
        StoreError::AppCodeExists
    );
    assert_err!(
        store.create_app_code(&s1, code(&id(2), 3, v.clone())).await,
        StoreError::AppCodeExists
    );
    assert_err!(
        store
            .create_app_code(&same_instance, code(&id(4), 4, v.clone()))
            .await,
        StoreError::AppCodeExists
    );
    // Another instance may hold it.
    let elsewhere = code(&id(3), 5, v.clone());
    store.create_app_code(&s2, elsewhere.clone()).await.unwrap();
    assert_eq!(
        store.instance_app_codes("instance-2").await.unwrap(),
        [elsewhere]
    );
    // Values differing in case only are different values.
    let upper = AppCode::parse(&v.expose().to_uppercase()).unwrap();
    store
        .create_app_code(&s1, code(&id(2), 6, upper))
        .await
        .unwrap();
}

pub(super) async fn delete_app_deletes_and_returns_its_codes(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    let mine: Vec<_> = (1..=3).map(|n| code_of(1, n, "mine")).collect();
    let theirs: Vec<_> = (4..=5).map(|n| code_of(2, n, "theirs")).collect();
    // Interleave so deletion must pick the right rows.
    for (i, r) in mine.iter().enumerate() {
        store.create_app_code(&s, r.clone()).await.unwrap();
        if let Some(t) = theirs.get(i) {
            store.create_app_code(&s, t.clone()).await.unwrap();
        }
    }

    assert_eq!(store.delete_app(&s, &id(1)).await.unwrap(), mine);
    assert_err!(store.get_app(&s, &id(1)).await, StoreError::AppNotFound);
    assert_err!(
        store.list_app_codes(&s, &id(1), 0, 20).await,
        StoreError::AppNotFound
    );
    assert_err!(store.delete_app(&s, &id(1)).await, StoreError::AppNotFound);
    assert_eq!(
        store.instance_app_codes("instance-1").await.unwrap(),
        theirs
    );
    assert_eq!(all_apps(&*store, &s, AppFilter::default()).await, [id(2)]);

    // The name, key, ID and values are free again.
    store.create_app(app(1)).await.unwrap();
    let held = store.list_app_codes(&s, &id(1), 0, 10).await.unwrap();
    assert_eq!(held.total, 0);
    store.create_app_code(&s, mine[0].clone()).await.unwrap();
    // An app without codes deletes to an empty list.
    store.create_app(app(3)).await.unwrap();
    assert_eq!(store.delete_app(&s, &id(3)).await.unwrap(), vec![]);
}

pub(super) async fn instance_app_codes_returns_exactly_the_instance(store: Arc<dyn Store>) {
    let scopes = [
        scope(),
        Scope::new("project-a", "instance-2"),
        Scope::new("project-b", "instance-1"),
    ];
    let mut expected: Vec<Vec<AppCodeRecord>> = vec![Vec::new(); 3];
    for (i, s) in scopes.iter().enumerate() {
        for a in 0..2u64 {
            let app_n = 10 * i as u64 + a;
            store
                .create_app(app_in(s, app_n, &format!("app_{app_n}")))
                .await
                .unwrap();
        }
    }
    // Round-robin over scopes and apps, so creation order interleaves instances.
    for n in 0..12u64 {
        let i = (n % 3) as usize;
        let app_n = 10 * i as u64 + (n / 3) % 2;
        let r = code(&id(app_n), n, value("inst", n));
        store.create_app_code(&scopes[i], r.clone()).await.unwrap();
        expected[i].push(r);
    }
    let instance_1: Vec<AppCodeRecord> = {
        // Instance 1 spans two projects; its codes in creation order.
        let mut all: Vec<AppCodeRecord> = expected[0].iter().chain(&expected[2]).cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    };
    assert_eq!(
        store.instance_app_codes("instance-1").await.unwrap(),
        instance_1
    );
    assert_eq!(
        store.instance_app_codes("instance-2").await.unwrap(),
        expected[1]
    );
    assert!(store
        .instance_app_codes("instance-9")
        .await
        .unwrap()
        .is_empty());

    let identities: BTreeSet<(String, String)> = store
        .instance_app_codes("instance-2")
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let identity = r.identity();
            (
                identity.app_id().to_owned(),
                identity.app_code_id().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        identities,
        expected[1]
            .iter()
            .map(|r| (r.app_id.clone(), r.id.clone()))
            .collect()
    );
}

pub(super) async fn values_round_trip_exactly(store: Arc<dyn Store>) {
    let s = scope();
    let mut a = app_in(&s, 1, "应用_Name_1");
    a.remark = "备注 with 'quotes' \"and\" \\ and\nnewline".into();
    a.app_secret = SecretString::new("S3cret_-!@#$%x");
    a.register_time = Timestamp::from_unix_nanos(i64::MIN + 1);
    a.update_time = Timestamp::from_unix_nanos(i64::MAX);
    a.status = -7;
    store.create_app(a.clone()).await.unwrap();
    assert_eq!(store.get_app(&s, &a.id).await.unwrap(), a);
    assert_eq!(
        store.get_app(&s, &a.id).await.unwrap().app_secret.expose(),
        "S3cret_-!@#$%x"
    );

    let documented = "GjOD3g80AABuuFeEJpVQADBlAjBh3UzC7W+gr4VJBB5BtJ4fdVOQoSvoji3gFxUDb5pWBz9wUcw9+8/bFZ1B/4pq29wCMQC0pQWX6zTndljDEl99As1pw+WntAU9xcq+ffagoH6zDpKUvdxV6Ezj8LcCcPZN6BU=";
    let values = [
        AppCode::parse(documented).unwrap(),
        AppCode::parse(&format!("/{}", "+_!@#$%-/=".repeat(18)[..179].to_owned())).unwrap(),
        AppCode::parse(&"0".repeat(64)).unwrap(),
        AppCode::generate(),
    ];
    for (n, v) in values.iter().enumerate() {
        let mut r = code(&a.id, n as u64, v.clone());
        r.create_time = Timestamp::from_unix_nanos(-(n as i64));
        store.create_app_code(&s, r.clone()).await.unwrap();
        let back = store.get_app_code(&s, &a.id, &r.id).await.unwrap();
        assert_eq!(back, r);
        assert_eq!(back.value.expose(), v.expose());
    }
}
