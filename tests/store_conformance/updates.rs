//! Updates of an app: exactly the given fields, names and keys kept unique, secrets resealed.

use std::sync::Arc;

use apig_appcode::store::{
    App, AppChanges, AppFilter, Scope, SecretString, Store, StoreError, Timestamp,
};

use super::{all_apps, app, app_in, code_of, id, scope};

pub(super) async fn updates_change_exactly_the_given_fields(store: Arc<dyn Store>) {
    let s = scope();
    for n in 1..=3 {
        store.create_app(app(n)).await.unwrap();
    }
    let kept = code_of(2, 1, "upd");
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

pub(super) async fn updates_keep_names_and_keys_unique(store: Arc<dyn Store>) {
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

pub(super) async fn secret_resets_are_sealed_and_read_back(store: Arc<dyn Store>) {
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

pub(super) async fn updates_of_a_missing_app_are_not_found(store: Arc<dyn Store>) {
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
