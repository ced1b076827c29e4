//! One behaviour for every store: each case (below, and in `store_conformance/` by subject)
//! runs against every backend listed in
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
use std::sync::Arc;

use apig_appcode::store::{
    App, AppCodeChanges, AppCodeRecord, AppFilter, MasterKey, MemoryStore, Scope, SecretString,
    SqliteOptions, SqliteStore, Store, StoreError, Timestamp,
};
use apig_appcode::AppCode;

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

/// Creates apps 1 and 2 in [`scope`] and app 3 in another instance, whose scope it returns.
async fn two_apps_and_one_elsewhere(store: &dyn Store) -> Scope {
    let other = Scope::new("project-b", "instance-2");
    store.create_app(app(1)).await.unwrap();
    store.create_app(app(2)).await.unwrap();
    store.create_app(app_in(&other, 3, "other")).await.unwrap();
    other
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

/// Code `n` of app `app` ([`code`]), its value tagged `tag` ([`value`]).
fn code_of(app: u64, n: u64, tag: &str) -> AppCodeRecord {
    code(&id(app), n, value(tag, n))
}

/// The pages to ask of a list of `total` items, each with the items it must hold: those from
/// `offset` on, at most `limit` of them (none past the end, however large the numbers).
fn pages(total: usize) -> Vec<(u64, u64, std::ops::Range<usize>)> {
    const ASKED: [(u64, u64); 13] = [
        (0, 3),
        (3, 3),
        (6, 3),
        (7, 3),
        (100, 3),
        (0, 0),
        (2, u64::MAX),
        (u64::MAX, u64::MAX),
        (0, 20),
        (1, 2),
        (3, 5),
        (4, 5),
        (9, u64::MAX),
    ];
    let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(total);
    ASKED
        .iter()
        .map(|&(offset, limit)| {
            (
                offset,
                limit,
                clamp(offset)..clamp(offset.saturating_add(limit)),
            )
        })
        .collect()
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

#[path = "store_conformance/acls.rs"]
mod acls;
#[path = "store_conformance/codes.rs"]
mod codes;
#[path = "store_conformance/keys.rs"]
mod keys;
#[path = "store_conformance/quotas.rs"]
mod quotas;
#[path = "store_conformance/revisions.rs"]
mod revisions;
#[path = "store_conformance/updates.rs"]
mod updates;
#[path = "store_conformance/writes.rs"]
mod writes;
use acls::*;
use codes::*;
use keys::*;
use quotas::*;
use revisions::*;
use updates::*;
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
    for (offset, limit, range) in pages(apps.len()) {
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
        .create_app_code(&home, code_of(1, 1, "home"))
        .await
        .unwrap();
    store
        .create_app_code(&other_instance, code_of(1, 2, "away"))
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
            .create_app_code(&other_project, code_of(1, 3, "x"))
            .await,
        StoreError::AppNotFound
    );
    assert_err!(
        store.delete_app(&other_project, &id(1)).await,
        StoreError::AppNotFound
    );
    // The app is not in that scope, so neither are its codes.
    assert_err!(
        store.list_app_codes(&other_project, &id(1), 0, 10).await,
        StoreError::AppNotFound
    );

    // Deleting in one scope leaves the others alone.
    store.delete_app(&other_instance, &id(1)).await.unwrap();
    assert_eq!(
        store.get_app(&home, &id(1)).await.unwrap().name,
        "shared_name"
    );
    let held = store.list_app_codes(&home, &id(1), 0, 10).await.unwrap();
    assert_eq!(held.total, 1);
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
