//! One behaviour for every store: each case below runs against every backend listed in
//! `conformance!` invocations at the end of this file, so the stores cannot drift apart.
//!
//! Run: `cargo test --features sqlite --test store_conformance`; with `--features postgres` and
//! `APIG_TEST_DATABASE_URL=postgres://...` the PostgreSQL store runs too (each case in a schema
//! of its own), and without the variable its cases say they were skipped.
//! To add a backend, write an `async fn` returning a [`Fixture`] (or `None` to skip) and add one
//! line `conformance!(name, factory());`.
#![cfg(feature = "sqlite")]

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use apig_appcode::acl::{AclType, AppAcl};
use apig_appcode::store::{
    App, AppChanges, AppCodeChanges, AppCodeRecord, AppFilter, DeletedAppCode, MasterKey,
    MemoryStore, Scope, SecretString, SqliteOptions, SqliteStore, Store, StoreError, Timestamp,
    MAX_APP_CODES_PER_APP,
};
use apig_appcode::AppCode;
use tokio::task::JoinSet;

// ---------------------------------------------------------------------------------------------
// Backends

/// A store under test, and whatever must live as long as it (a temporary directory).
struct Fixture {
    store: Arc<dyn Store>,
    _keep: Option<Box<dyn Any + Send>>,
}

/// The change-log retention every fixture is opened with: small, so a case can outrun it.
const RETENTION: u64 = 8;

async fn memory() -> Option<Fixture> {
    Some(Fixture {
        store: Arc::new(MemoryStore::with_change_log_retention(RETENTION)),
        _keep: None,
    })
}

async fn sqlite(key: Option<MasterKey>) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SqliteOptions::new().change_log_retention(RETENTION);
    if let Some(key) = key {
        options = options.master_key(key);
    }
    let store = SqliteStore::open(dir.path().join("conformance.db"), options).unwrap();
    Some(Fixture {
        store: Arc::new(store),
        _keep: Some(Box::new(dir)),
    })
}

/// A PostgreSQL store in a schema of its own, dropped with the fixture; `None` without a test
/// database.
#[cfg(feature = "postgres")]
async fn postgres(case: &str, key: Option<MasterKey>) -> Option<Fixture> {
    use apig_appcode::store::{PostgresOptions, PostgresStore};

    let db = pg::TestDb::create(case).await?;
    let mut options = PostgresOptions::new().change_log_retention(RETENTION);
    if let Some(key) = key {
        options = options.master_key(key);
    }
    let store = PostgresStore::connect(db.url(), options).await.unwrap();
    Some(Fixture {
        store: Arc::new(store),
        _keep: Some(Box::new(db)),
    })
}

fn test_key() -> MasterKey {
    MasterKey::from_bytes(std::array::from_fn(|i| i as u8 ^ 0xa5))
}

/// Expands to one `#[tokio::test]` per case in module `$backend`, each on a fresh store.
/// `$make` may use `CASE`, the case's name.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        conformance!(@module $backend, $make;);
    };
    // A store that keeps revisions also runs the revision cases.
    ($backend:ident, $make:expr, revisions) => {
        conformance!(@module $backend, $make;
            changes_after_a_revision_are_exactly_what_happened,
            an_id_deleted_and_created_again_is_created_once,
            a_reader_behind_the_retained_log_is_told_to_reload,
            acl_changes_are_revisions_named_once_with_their_acl_now,
            quota_changes_are_revisions_named_once_with_their_quota_now,
            key_changes_are_revisions_named_once_with_their_key_now,
            a_write_takes_one_revision_however_many_rows_it_changes,
            the_digest_is_of_the_codes_held_at_its_revision,
        );
    };
    (@module $backend:ident, $make:expr; $($extra:ident,)*) => {
        mod $backend {
            conformance!(@cases $make;
                apps_are_created_read_and_paged,
                app_filters_each_narrow_the_list,
                duplicate_names_and_keys_are_rejected,
                scopes_isolate_each_other,
                app_codes_are_created_read_listed_and_deleted,
                not_found_distinguishes_app_from_app_code,
                quota_is_enforced_and_freed_by_deletion,
                concurrent_creates_on_one_app_yield_exactly_the_quota,
                concurrent_creates_of_one_value_yield_exactly_one,
                a_value_is_unique_per_instance_only,
                delete_app_deletes_and_returns_its_codes,
                instance_app_codes_returns_exactly_the_instance,
                count_app_codes_follows_the_given_order,
                values_round_trip_exactly,
                updates_change_exactly_the_given_fields,
                updates_keep_names_and_keys_unique,
                secret_resets_are_sealed_and_read_back,
                updates_of_a_missing_app_are_not_found,
                app_acls_are_set_read_replaced_and_removed,
                app_acls_go_with_their_app_and_stay_in_their_instance,
                app_quotas_are_created_read_listed_updated_and_deleted,
                an_app_is_bound_to_one_quota_and_leaves_with_it,
                shared_quota_counts_add_up_per_window,
                instance_app_keys_hold_every_app_of_the_instance,
                $($extra,)*
            );
        }
    };
    (@cases $make:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                #[allow(dead_code)]
                const CASE: &str = concat!(module_path!(), "::", stringify!($case));
                let Some(fixture) = $make.await else { return };
                super::$case(std::sync::Arc::clone(&fixture.store)).await;
                // The store goes before what it lives in (a directory, a schema).
                drop(fixture);
            }
        )*
    };
}

conformance!(memory_store, super::memory(), revisions);
conformance!(sqlite_plain, super::sqlite(None), revisions);
conformance!(
    sqlite_encrypted,
    super::sqlite(Some(super::test_key())),
    revisions
);
#[cfg(feature = "postgres")]
conformance!(postgres_plain, super::postgres(CASE, None), revisions);
#[cfg(feature = "postgres")]
conformance!(
    postgres_encrypted,
    super::postgres(CASE, Some(super::test_key())),
    revisions
);

// ---------------------------------------------------------------------------------------------
// Data

fn scope() -> Scope {
    Scope::new("project-a", "instance-1")
}

fn id(n: u64) -> String {
    format!("{n:032x}")
}

fn app_in(scope: &Scope, n: u64, name: &str) -> App {
    App {
        id: id(n),
        scope: scope.clone(),
        name: name.to_owned(),
        remark: format!("remark {n}"),
        creator: "USER".into(),
        app_key: format!("key_{n:028}"),
        app_secret: SecretString::new(format!("Secret{n:026}")),
        register_time: Timestamp::from_unix_nanos(1_595_558_244_835_128_293 + n as i64),
        update_time: Timestamp::from_unix_nanos(1_595_558_244_835_128_293 + 2 * n as i64),
        status: 1,
    }
}

fn app(n: u64) -> App {
    app_in(&scope(), n, &format!("app_{n}"))
}

/// A valid AppCode unique per `(tag, n)`.
fn value(tag: &str, n: u64) -> AppCode {
    AppCode::parse(&format!("{tag}{n:08}{}", "x".repeat(64))).unwrap()
}

fn code(app_id: &str, n: u64, value: AppCode) -> AppCodeRecord {
    AppCodeRecord {
        id: id(1_000_000 + n),
        app_id: app_id.to_owned(),
        value,
        create_time: Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + n as i64),
    }
}

fn ids<T>(items: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| f(i).to_owned()).collect()
}

async fn all_apps(store: &dyn Store, scope: &Scope, filter: AppFilter) -> Vec<String> {
    let page = store.list_apps(scope, &filter, 0, 1000).await.unwrap();
    assert_eq!(page.total as usize, page.items.len());
    ids(&page.items, |a| &a.id)
}

macro_rules! assert_err {
    ($result:expr, $variant:pat) => {
        match $result {
            Err($variant) => {}
            other => panic!(
                "expected {}, got {:?}",
                stringify!($variant),
                other.map(|_| "Ok(..)")
            ),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Cases

#[path = "store_conformance/keys.rs"]
mod keys;
#[path = "store_conformance/quotas.rs"]
mod quotas;
use keys::*;
use quotas::*;
#[path = "store_conformance/writes.rs"]
mod writes;
use writes::*;

async fn apps_are_created_read_and_paged(store: Arc<dyn Store>) {
    let s = scope();
    let apps: Vec<App> = (1..=7).map(app).collect();
    for a in &apps {
        assert_eq!(&store.create_app(a.clone()).await.unwrap(), a);
    }
    for a in &apps {
        assert_eq!(&store.get_app(&s, &a.id).await.unwrap(), a);
    }
    assert_err!(store.get_app(&s, &id(99)).await, StoreError::AppNotFound);

    let all = AppFilter::default();
    let expect = |range: std::ops::Range<usize>| ids(&apps[range], |a| &a.id);
    for (offset, limit, range) in [
        (0, 3, 0..3),
        (3, 3, 3..6),
        (6, 3, 6..7),
        (7, 3, 7..7),
        (100, 3, 7..7),
        (0, 0, 0..0),
        (2, u64::MAX, 2..7),
        (u64::MAX, u64::MAX, 7..7),
    ] {
        let page = store.list_apps(&s, &all, offset, limit).await.unwrap();
        assert_eq!(page.total, 7, "offset {offset} limit {limit}");
        assert_eq!(ids(&page.items, |a| &a.id), expect(range));
    }
    // Pages carry whole apps, secrets included.
    let page = store.list_apps(&s, &all, 1, 1).await.unwrap();
    assert_eq!(page.items, vec![apps[1].clone()]);
}

async fn app_filters_each_narrow_the_list(store: Arc<dyn Store>) {
    let s = scope();
    let mut apps = vec![
        app_in(&s, 1, "payments"),
        app_in(&s, 2, "Payments_EU"),
        app_in(&s, 3, "pay"),
        app_in(&s, 4, "orders_50%"),
        app_in(&s, 5, "支付应用"),
    ];
    apps[1].status = 2;
    apps[2].creator = "SYSTEM".into();
    apps[3].status = 2;
    apps[3].creator = "SYSTEM".into();
    for a in &apps {
        store.create_app(a.clone()).await.unwrap();
    }
    let f = |build: fn(&mut AppFilter)| {
        let mut filter = AppFilter::default();
        build(&mut filter);
        filter
    };
    let cases: Vec<(AppFilter, Vec<u64>)> = vec![
        (AppFilter::default(), vec![1, 2, 3, 4, 5]),
        (f(|f| f.id = Some(id(3))), vec![3]),
        (f(|f| f.id = Some(id(42))), vec![]),
        // Contains: case-sensitive and literal (no LIKE wildcards).
        (f(|f| f.name = Some("pay".into())), vec![1, 3]),
        (f(|f| f.name = Some("Pay".into())), vec![2]),
        (f(|f| f.name = Some("ments".into())), vec![1, 2]),
        (f(|f| f.name = Some("0%".into())), vec![4]),
        (f(|f| f.name = Some("%".into())), vec![4]),
        (f(|f| f.name = Some("_".into())), vec![2, 4]),
        (f(|f| f.name = Some("p_y".into())), vec![]),
        (f(|f| f.name = Some("支付".into())), vec![5]),
        (f(|f| f.name = Some(String::new())), vec![1, 2, 3, 4, 5]),
        // Exact.
        (
            f(|f| {
                f.name = Some("pay".into());
                f.name_exact = true;
            }),
            vec![3],
        ),
        (
            f(|f| {
                f.name = Some("PAY".into());
                f.name_exact = true;
            }),
            vec![],
        ),
        // `name_exact` alone filters nothing.
        (f(|f| f.name_exact = true), vec![1, 2, 3, 4, 5]),
        (f(|f| f.status = Some(2)), vec![2, 4]),
        (f(|f| f.status = Some(1)), vec![1, 3, 5]),
        (f(|f| f.status = Some(0)), vec![]),
        (f(|f| f.app_key = Some(format!("key_{:028}", 4))), vec![4]),
        (f(|f| f.app_key = Some("key_".into())), vec![]),
        (f(|f| f.creator = Some("SYSTEM".into())), vec![3, 4]),
        (f(|f| f.creator = Some("USER".into())), vec![1, 2, 5]),
        // Filters combine with AND.
        (
            f(|f| {
                f.creator = Some("SYSTEM".into());
                f.status = Some(2);
            }),
            vec![4],
        ),
        (
            f(|f| {
                f.name = Some("pay".into());
                f.creator = Some("USER".into());
            }),
            vec![1],
        ),
    ];
    for (filter, expected) in cases {
        let expected: Vec<String> = expected.into_iter().map(id).collect();
        assert_eq!(
            all_apps(&*store, &s, filter.clone()).await,
            expected,
            "{filter:?}"
        );
    }
    // Paging applies after filtering; `total` counts every match.
    let users = f(|f| f.creator = Some("USER".into()));
    let page = store.list_apps(&s, &users, 1, 1).await.unwrap();
    assert_eq!((page.total, ids(&page.items, |a| &a.id)), (3, vec![id(2)]));
}

async fn duplicate_names_and_keys_are_rejected(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();

    let mut same_name = app(2);
    same_name.name = app(1).name;
    assert_err!(store.create_app(same_name).await, StoreError::AppNameExists);

    let mut same_key = app(3);
    same_key.app_key = app(1).app_key;
    assert_err!(store.create_app(same_key).await, StoreError::AppKeyExists);

    // Both taken by one app: the name is reported.
    let mut both = app(4);
    both.name = app(1).name;
    both.app_key = app(1).app_key;
    assert_err!(store.create_app(both).await, StoreError::AppNameExists);

    // Names compare exactly: another case is another name.
    let mut upper = app(5);
    upper.name = app(1).name.to_uppercase();
    store.create_app(upper).await.unwrap();

    // Failed creations left nothing behind.
    assert_eq!(
        all_apps(&*store, &s, AppFilter::default()).await,
        [id(1), id(5)]
    );
    for n in [2, 3, 4] {
        assert_err!(store.get_app(&s, &id(n)).await, StoreError::AppNotFound);
    }
}

async fn scopes_isolate_each_other(store: Arc<dyn Store>) {
    let home = scope();
    let other_project = Scope::new("project-b", "instance-1");
    let other_instance = Scope::new("project-a", "instance-2");

    // The same name and key in three scopes (app IDs differ within an instance; the same ID
    // is reused in another instance).
    let first = app_in(&home, 1, "shared_name");
    store.create_app(first.clone()).await.unwrap();
    let mut second = app_in(&other_project, 2, "shared_name");
    second.app_key = first.app_key.clone();
    store.create_app(second).await.unwrap();
    let twin = app_in(&other_instance, 1, "shared_name");
    assert_eq!(twin.app_key, first.app_key);
    store.create_app(twin.clone()).await.unwrap();

    store
        .create_app_code(&home, code(&id(1), 1, value("home", 1)))
        .await
        .unwrap();
    store
        .create_app_code(&other_instance, code(&id(1), 2, value("away", 2)))
        .await
        .unwrap();

    for (scope, expected) in [
        (&home, id(1)),
        (&other_project, id(2)),
        (&other_instance, id(1)),
    ] {
        assert_eq!(
            all_apps(&*store, scope, AppFilter::default()).await,
            [expected]
        );
    }
    assert_eq!(store.get_app(&other_instance, &id(1)).await.unwrap(), twin);
    assert_err!(
        store.get_app(&other_project, &id(1)).await,
        StoreError::AppNotFound
    );
    assert_err!(store.get_app(&home, &id(2)).await, StoreError::AppNotFound);
    assert_err!(
        store
            .get_app(&Scope::new("project-b", "instance-2"), &id(1))
            .await,
        StoreError::AppNotFound
    );

    // Codes belong to the app of their scope only.
    let home_codes = store.list_app_codes(&home, &id(1), 0, 10).await.unwrap();
    assert_eq!(ids(&home_codes.items, |c| &c.id), [id(1_000_001)]);
    let away_codes = store
        .list_app_codes(&other_instance, &id(1), 0, 10)
        .await
        .unwrap();
    assert_eq!(ids(&away_codes.items, |c| &c.id), [id(1_000_002)]);
    assert_err!(
        store
            .get_app_code(&other_instance, &id(1), &id(1_000_001))
            .await,
        StoreError::AppCodeNotFound
    );
    assert_err!(
        store
            .get_app_code(&other_project, &id(1), &id(1_000_001))
            .await,
        StoreError::AppNotFound
    );
    assert_err!(
        store
            .create_app_code(&other_project, code(&id(1), 3, value("x", 3)))
            .await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.delete_app(&other_project, &id(1)).await,
        StoreError::AppNotFound
    );
    // The app is not in that scope, so it holds no codes there.
    assert_eq!(
        store
            .count_app_codes(&other_project, &[id(1)])
            .await
            .unwrap(),
        vec![0]
    );

    // Deleting in one scope leaves the others alone.
    store.delete_app(&other_instance, &id(1)).await.unwrap();
    assert_eq!(
        store.get_app(&home, &id(1)).await.unwrap().name,
        "shared_name"
    );
    assert_eq!(store.count_app_codes(&home, &[id(1)]).await.unwrap(), [1]);
}

async fn app_codes_are_created_read_listed_and_deleted(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    let records: Vec<AppCodeRecord> = (1..=4).map(|n| code(&id(1), n, value("v", n))).collect();
    for r in &records {
        assert_eq!(&store.create_app_code(&s, r.clone()).await.unwrap(), r);
    }
    for r in &records {
        assert_eq!(&store.get_app_code(&s, &id(1), &r.id).await.unwrap(), r);
    }
    for (offset, limit, range) in [
        (0, 20, 0..4),
        (1, 2, 1..3),
        (3, 5, 3..4),
        (4, 5, 4..4),
        (0, 0, 0..0),
        (9, u64::MAX, 4..4),
    ] {
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

async fn not_found_distinguishes_app_from_app_code(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    let c = code(&id(1), 1, value("nf", 1));
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

async fn quota_is_enforced_and_freed_by_deletion(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    for n in 0..MAX_APP_CODES_PER_APP as u64 {
        store
            .create_app_code(&s, code(&id(1), n, value("q", n)))
            .await
            .unwrap();
    }
    assert_err!(
        store
            .create_app_code(&s, code(&id(1), 10, value("q", 10)))
            .await,
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
        .create_app_code(&s, code(&id(2), 12, value("q", 12)))
        .await
        .unwrap();
    // Deleting one frees one slot.
    store
        .delete_app_code(&s, &id(1), &id(1_000_000))
        .await
        .unwrap();
    store
        .create_app_code(&s, code(&id(1), 13, value("q", 13)))
        .await
        .unwrap();
    assert_err!(
        store
            .create_app_code(&s, code(&id(1), 14, value("q", 14)))
            .await,
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

async fn concurrent_creates_on_one_app_yield_exactly_the_quota(store: Arc<dyn Store>) {
    store.create_app(app(1)).await.unwrap();
    let records = (0..50).map(|n| code(&id(1), n, value("c", n)));
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

async fn concurrent_creates_of_one_value_yield_exactly_one(store: Arc<dyn Store>) {
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

async fn a_value_is_unique_per_instance_only(store: Arc<dyn Store>) {
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

async fn delete_app_deletes_and_returns_its_codes(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    let mine: Vec<_> = (1..=3).map(|n| code(&id(1), n, value("mine", n))).collect();
    let theirs: Vec<_> = (4..=5)
        .map(|n| code(&id(2), n, value("theirs", n)))
        .collect();
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
    assert_eq!(store.count_app_codes(&s, &[id(1)]).await.unwrap(), [0]);
    store.create_app_code(&s, mine[0].clone()).await.unwrap();
    // An app without codes deletes to an empty list.
    store.create_app(app(3)).await.unwrap();
    assert_eq!(store.delete_app(&s, &id(3)).await.unwrap(), vec![]);
}

async fn instance_app_codes_returns_exactly_the_instance(store: Arc<dyn Store>) {
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

async fn count_app_codes_follows_the_given_order(store: Arc<dyn Store>) {
    let s = scope();
    for n in 1..=3 {
        store.create_app(app(n)).await.unwrap();
    }
    for (app_n, count) in [(1u64, 3u64), (2, 0), (3, 5)] {
        for k in 0..count {
            let n = 10 * app_n + k;
            store
                .create_app_code(&s, code(&id(app_n), n, value("cnt", n)))
                .await
                .unwrap();
        }
    }
    let asked = [id(3), id(1), id(99), id(2), id(1)];
    assert_eq!(
        store.count_app_codes(&s, &asked).await.unwrap(),
        [5, 3, 0, 0, 3]
    );
    assert!(store.count_app_codes(&s, &[]).await.unwrap().is_empty());
    store
        .delete_app_code(&s, &id(3), &id(1_000_030))
        .await
        .unwrap();
    assert_eq!(store.count_app_codes(&s, &[id(3)]).await.unwrap(), [4]);
}

async fn values_round_trip_exactly(store: Arc<dyn Store>) {
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

async fn updates_change_exactly_the_given_fields(store: Arc<dyn Store>) {
    let s = scope();
    for n in 1..=3 {
        store.create_app(app(n)).await.unwrap();
    }
    let kept = code(&id(2), 1, value("upd", 1));
    store.create_app_code(&s, kept.clone()).await.unwrap();

    let at = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
    let changes = AppChanges {
        name: Some("renamed_应用".into()),
        remark: Some(String::new()),
        app_key: Some("new-key-0001".into()),
        app_secret: Some(SecretString::new("N3w_secret!@#$%")),
        update_time: at,
    };
    let updated = store.update_app(&s, &id(2), changes).await.unwrap();
    let expected = App {
        name: "renamed_应用".into(),
        remark: String::new(),
        app_key: "new-key-0001".into(),
        app_secret: SecretString::new("N3w_secret!@#$%"),
        update_time: at,
        ..app(2)
    };
    assert_eq!(updated, expected);
    assert_eq!(store.get_app(&s, &id(2)).await.unwrap(), expected);

    // Only the time: every other field stays, the app keeps its own name and key.
    let later = Timestamp::from_unix_nanos(1_800_000_000_000_000_001);
    let same = AppChanges {
        name: Some(expected.name.clone()),
        app_key: Some(expected.app_key.clone()),
        ..AppChanges::at(later)
    };
    let again = store.update_app(&s, &id(2), same).await.unwrap();
    assert_eq!(
        again,
        App {
            update_time: later,
            ..expected.clone()
        }
    );

    // The others are untouched, the order of the list too, and the app's codes remain.
    assert_eq!(store.get_app(&s, &id(1)).await.unwrap(), app(1));
    assert_eq!(store.get_app(&s, &id(3)).await.unwrap(), app(3));
    assert_eq!(
        all_apps(&*store, &s, AppFilter::default()).await,
        [id(1), id(2), id(3)]
    );
    assert_eq!(
        store.get_app_code(&s, &id(2), &kept.id).await.unwrap(),
        kept
    );
    // Filters see the new values, not the old ones.
    let by_key = |key: &str| AppFilter {
        app_key: Some(key.to_owned()),
        ..AppFilter::default()
    };
    assert_eq!(all_apps(&*store, &s, by_key("new-key-0001")).await, [id(2)]);
    assert!(all_apps(&*store, &s, by_key(&app(2).app_key))
        .await
        .is_empty());
    // The freed name and key can be taken by another app.
    let mut reuse = app(4);
    reuse.name = app(2).name;
    reuse.app_key = app(2).app_key;
    store.create_app(reuse).await.unwrap();
}

async fn updates_keep_names_and_keys_unique(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    let at = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
    let try_update = |name: Option<String>, app_key: Option<String>| {
        let store = Arc::clone(&store);
        let s = s.clone();
        async move {
            let changes = AppChanges {
                name,
                app_key,
                remark: Some("changed".into()),
                ..AppChanges::at(at)
            };
            store.update_app(&s, &id(2), changes).await
        }
    };
    assert_err!(
        try_update(Some(app(1).name), None).await,
        StoreError::AppNameExists
    );
    assert_err!(
        try_update(None, Some(app(1).app_key)).await,
        StoreError::AppKeyExists
    );
    // Both taken: the name is reported.
    assert_err!(
        try_update(Some(app(1).name), Some(app(1).app_key)).await,
        StoreError::AppNameExists
    );
    // Failed updates changed nothing.
    assert_eq!(store.get_app(&s, &id(2)).await.unwrap(), app(2));

    // Another scope's names and keys are no conflict.
    let other = Scope::new("project-b", "instance-1");
    let mut there = app_in(&other, 3, "taken_elsewhere");
    there.app_key = "key-elsewhere".into();
    store.create_app(there).await.unwrap();
    let ok = try_update(Some("taken_elsewhere".into()), Some("key-elsewhere".into()))
        .await
        .unwrap();
    assert_eq!(
        (ok.name.as_str(), ok.app_key.as_str()),
        ("taken_elsewhere", "key-elsewhere")
    );
}

async fn secret_resets_are_sealed_and_read_back(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    for (n, secret) in ["Reset_1-!@#$%", "0123456789abcdef0123456789abcdef"]
        .into_iter()
        .enumerate()
    {
        let at = Timestamp::from_unix_nanos(1_800_000_000_000_000_000 + n as i64);
        let changes = AppChanges {
            app_secret: Some(SecretString::new(secret)),
            ..AppChanges::at(at)
        };
        let reset = store.update_app(&s, &id(1), changes).await.unwrap();
        let expected = App {
            app_secret: SecretString::new(secret),
            update_time: at,
            ..app(1)
        };
        assert_eq!(reset, expected);
        let back = store.get_app(&s, &id(1)).await.unwrap();
        assert_eq!(back, expected);
        assert_eq!(back.app_secret.expose(), secret);
        // Lists open the new secret too.
        let page = store
            .list_apps(&s, &AppFilter::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(page.items, [expected]);
    }
}

async fn updates_of_a_missing_app_are_not_found(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    let at = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
    // Not found comes before any conflict.
    let changes = AppChanges {
        name: Some(app(1).name),
        app_secret: Some(SecretString::new("Secret_given")),
        ..AppChanges::at(at)
    };
    assert_err!(
        store.update_app(&s, &id(99), changes.clone()).await,
        StoreError::AppNotFound
    );
    // The app of another scope is not found either.
    let other = Scope::new("project-b", "instance-1");
    assert_err!(
        store.update_app(&other, &id(1), changes).await,
        StoreError::AppNotFound
    );
    assert_eq!(store.get_app(&s, &id(1)).await.unwrap(), app(1));
    assert_eq!(all_apps(&*store, &s, AppFilter::default()).await, [id(1)]);
}

async fn revision(store: &dyn Store, instance_id: &str) -> u64 {
    let snapshot = store.instance_snapshot(instance_id).await.unwrap();
    snapshot.revision.expect("this store keeps revisions")
}

async fn changes(store: &dyn Store, instance_id: &str, after: u64) -> AppCodeChanges {
    store
        .app_code_changes(instance_id, after)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no changes after revision {after}"))
}

fn deleted(records: &[&AppCodeRecord]) -> Vec<DeletedAppCode> {
    records
        .iter()
        .map(|r| DeletedAppCode {
            app_id: r.app_id.clone(),
            id: r.id.clone(),
        })
        .collect()
}

async fn changes_after_a_revision_are_exactly_what_happened(store: Arc<dyn Store>) {
    let s = scope();
    let other = Scope::new("project-b", "instance-2");
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    store.create_app(app_in(&other, 3, "other")).await.unwrap();
    let start = revision(&*store, "instance-1").await;
    let empty = changes(&*store, "instance-1", start).await;
    assert!(empty.is_empty());
    assert_eq!(empty.revision, start);

    let a = code(&id(1), 1, value("rev", 1));
    let b = code(&id(1), 2, value("rev", 2));
    let c = code(&id(2), 3, value("rev", 3));
    for r in [&a, &b, &c] {
        store.create_app_code(&s, r.clone()).await.unwrap();
    }
    // Another instance's writes are not this one's changes.
    store
        .create_app_code(&other, code(&id(3), 4, value("rev", 4)))
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

async fn an_id_deleted_and_created_again_is_created_once(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    let start = revision(&*store, "instance-1").await;
    let first = code(&id(1), 1, value("again", 1));
    let other = code(&id(1), 2, value("again", 2));
    store.create_app_code(&s, first.clone()).await.unwrap();
    let after_first = revision(&*store, "instance-1").await;
    store.create_app_code(&s, other.clone()).await.unwrap();
    store.delete_app_code(&s, &id(1), &first.id).await.unwrap();
    let after_delete = revision(&*store, "instance-1").await;
    // IDs are unique among existing codes only: the same ID again, another value.
    let again = AppCodeRecord {
        id: first.id.clone(),
        ..code(&id(1), 3, value("again", 3))
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

async fn a_reader_behind_the_retained_log_is_told_to_reload(store: Arc<dyn Store>) {
    let s = scope();
    store.create_app(app(1)).await.unwrap();
    let start = revision(&*store, "instance-1").await;
    let mut revisions = vec![start];
    // Create and delete one code over and over: two writes a round.
    let r = code(&id(1), 1, value("ret", 1));
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

// ---------------------------------------------------------------------------------------------
// App ACLs

fn acl(kind: AclType, values: &[&str]) -> AppAcl {
    AppAcl::new(kind, values).unwrap()
}

async fn app_acls_are_set_read_replaced_and_removed(store: Arc<dyn Store>) {
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

async fn app_acls_go_with_their_app_and_stay_in_their_instance(store: Arc<dyn Store>) {
    let s = scope();
    let other = Scope::new("project-b", "instance-2");
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    store.create_app(app_in(&other, 3, "other")).await.unwrap();
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

async fn acl_changes_are_revisions_named_once_with_their_acl_now(store: Arc<dyn Store>) {
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
