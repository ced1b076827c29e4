use super::*;

fn entry(app: &str, id: &str) -> (AppCode, AppIdentity) {
    (AppCode::generate(), AppIdentity::new(app, id))
}

/// Codes of the app named `app`, one for each of `ids`.
fn codes_of_app(ids: impl Iterator<Item = String>) -> Vec<(AppCode, AppIdentity)> {
    ids.map(|id| entry("app", &id)).collect()
}

#[test]
fn replace_all_swaps_content_and_marks_loaded() {
    let cache = AppCodeCache::new();
    assert_eq!(cache.status(), CacheStatus::Loading);
    let (a, b, c) = (entry("app", "a"), entry("app", "b"), entry("app", "c"));
    cache.replace_all([a.clone(), b.clone()]);
    assert_eq!(cache.status(), CacheStatus::Fresh);
    assert!(cache.snapshot_age().is_some());
    cache.replace_all([b.clone(), c.clone()]);
    assert!(cache.verify(&a.0).is_none());
    assert_eq!(cache.verify(&b.0).unwrap().app_code_id(), "b");
    assert_eq!(cache.verify(&c.0).unwrap().app_code_id(), "c");
    assert_eq!(cache.len(), 2);
}

#[test]
fn replace_all_never_hides_a_code_valid_in_both_sets() {
    let cache = AppCodeCache::new();
    let stable = entry("app", "stable");
    let churn = codes_of_app((0..2000).map(|i| i.to_string()));
    cache.replace_all(std::iter::once(stable.clone()).chain(churn[..1000].iter().cloned()));
    let reader = {
        let cache = cache.clone();
        let code = stable.0.clone();
        std::thread::spawn(move || {
            for _ in 0..20_000 {
                assert!(cache.verify(&code).is_some(), "a stable code went missing");
            }
        })
    };
    for round in 0..20 {
        let half = if round % 2 == 0 {
            &churn[1000..]
        } else {
            &churn[..1000]
        };
        cache.replace_all(std::iter::once(stable.clone()).chain(half.iter().cloned()));
    }
    reader.join().unwrap();
}

#[test]
fn a_snapshot_loaded_before_a_change_does_not_undo_it() {
    let cache = AppCodeCache::new();
    let (a, b, c) = (entry("app1", "a"), entry("app1", "b"), entry("app2", "c"));
    cache.replace_all([a.clone(), b.clone(), c.clone()]);
    // The refresher begins a load, then the provider reads the old state...
    let mut load = cache.load_snapshot();
    let stale = vec![a.clone(), b.clone(), c.clone()];
    // ...meanwhile the management API deletes a code and an app, and adds one...
    assert!(cache.remove(&a.0));
    assert_eq!(cache.remove_app("app2"), 1);
    let d = entry("app1", "d");
    cache.upsert(&d.0, d.1.clone());
    // ...and then the stale snapshot arrives.
    for (code, identity) in stale {
        load.add(code, identity);
    }
    assert!(load.finish());
    assert!(cache.verify(&a.0).is_none(), "a deleted code came back");
    assert!(
        cache.verify(&c.0).is_none(),
        "a deleted app's code came back"
    );
    assert!(cache.verify(&d.0).is_some(), "a created code was lost");
    assert!(cache.verify(&b.0).is_some());
}

#[test]
fn a_snapshot_older_than_the_journal_is_refused() {
    let cache = AppCodeCache::new();
    let mut load = cache.load_snapshot();
    for i in 0..5000 {
        cache.remove_by_id(&i.to_string());
    }
    let e = entry("app", "x");
    load.add(e.0.clone(), e.1.clone());
    assert!(!load.finish());
    assert!(
        cache.verify(&e.0).is_none(),
        "a refused snapshot was applied"
    );
    assert_eq!(cache.status(), CacheStatus::Loading);
}

#[test]
fn removal_by_id_and_by_app() {
    let cache = AppCodeCache::new();
    let (a, b, c) = (entry("app1", "a"), entry("app1", "b"), entry("app2", "c"));
    for (code, id) in [&a, &b, &c] {
        cache.upsert(code, id.clone());
    }
    assert_eq!(cache.remove_by_id("a"), 1);
    assert!(cache.verify(&a.0).is_none());
    assert_eq!(cache.remove_app("app2"), 1);
    assert!(cache.verify(&c.0).is_none());
    assert!(cache.verify(&b.0).is_some());
}

#[test]
fn the_index_by_id_follows_every_kind_of_write() {
    let cache = AppCodeCache::new();
    let all = codes_of_app((0..50).map(|i| format!("{i:032x}")));
    cache.replace_all(all.iter().cloned());
    assert_eq!(cache.inner.ids.len(), 50);
    // A snapshot without half of them, one code moved to another ID, one removed by value.
    cache.replace_all(all[..25].iter().cloned());
    cache.upsert(&all[0].0, AppIdentity::new("app", "moved"));
    assert!(cache.remove(&all[1].0));
    assert_eq!(cache.inner.ids.len(), cache.len());
    assert_eq!(cache.remove_by_id(&format!("{:032x}", 0)), 0, "the old ID");
    assert_eq!(cache.remove_by_id("moved"), 1);
    assert_eq!(
        cache.remove_by_id(&format!("{:032x}", 30)),
        0,
        "gone with the snapshot"
    );
    assert_eq!(cache.remove_by_id(&format!("{:032x}", 2)), 1);
    assert_eq!(cache.remove_app("app"), 22);
    assert_eq!(cache.inner.ids.len(), 0);
}

#[test]
fn the_index_finds_every_code_after_growing_one_code_at_a_time() {
    // Each growth re-places every indexed digest by asking the cache for its ID's hash.
    let cache = AppCodeCache::new();
    let all = codes_of_app((0..2000).map(|i| format!("id-{i}")));
    for (code, identity) in &all {
        cache.upsert(code, identity.clone());
    }
    for i in (0..2000).rev() {
        assert_eq!(cache.remove_by_id(&format!("id-{i}")), 1, "id-{i}");
    }
    assert!(cache.is_empty());
    assert_eq!(cache.inner.ids.len(), 0);
}

#[test]
fn codes_sharing_an_id_all_go_with_it() {
    let cache = AppCodeCache::new();
    let (a, b) = (entry("app", "same"), entry("app2", "same"));
    cache.upsert(&a.0, a.1.clone());
    cache.upsert(&b.0, b.1.clone());
    let c = entry("app", "other");
    cache.upsert(&c.0, c.1.clone());
    assert_eq!(cache.inner.ids.len(), 3);
    assert_eq!(cache.remove_by_id("same"), 2);
    assert_eq!(cache.inner.ids.len(), 1);
    assert!(cache.verify(&c.0).is_some());
    assert!(cache.verify(&a.0).is_none() && cache.verify(&b.0).is_none());
}

#[test]
fn removal_finds_ids_of_every_stored_form() {
    let long = "a-rather-long-app-code-identifier-of-fifty-bytes-x";
    let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    for id in ["0123456789abcdef0123456789abcdef", uuid, "code-7", long] {
        let cache = AppCodeCache::new();
        let (code, identity) = entry(id, id);
        cache.upsert(&code, identity.clone());
        assert_eq!(cache.verify(&code), Some(identity), "{id}");
        assert_eq!(cache.remove_by_id(id), 1, "{id}");
        cache.upsert(&code, AppIdentity::new(id, id));
        assert_eq!(cache.remove_app(id), 1, "{id}");
        assert!(cache.verify(&code).is_none(), "{id}");
    }
}

#[test]
fn upsert_clears_a_remembered_miss() {
    let cache = AppCodeCache::new();
    let code = AppCode::generate();
    let Lookup::Miss(digest) = cache.lookup(code.expose().as_bytes()) else {
        panic!("expected a miss")
    };
    cache.remember_unknown(digest);
    assert!(cache.is_known_unknown(&digest));
    cache.upsert(&code, AppIdentity::new("a", "c"));
    assert!(!cache.is_known_unknown(&digest));
}

#[test]
fn a_snapshot_forgets_only_the_misses_it_now_holds() {
    let cache = AppCodeCache::new();
    let (still_unknown, now_known) = (AppCode::generate(), AppCode::generate());
    let miss = |code: &AppCode| match cache.lookup(code.expose().as_bytes()) {
        Lookup::Miss(digest) => digest,
        _ => panic!("expected a miss"),
    };
    let (a, b) = (miss(&still_unknown), miss(&now_known));
    cache.remember_unknown(a);
    cache.remember_unknown(b);
    cache.replace_all([(now_known.clone(), AppIdentity::new("app", "code"))]);
    // The once-per-TTL promise holds across a refresh for codes still unknown...
    assert!(cache.is_known_unknown(&a));
    // ...and a code the snapshot brought is not refused as unknown.
    assert!(!cache.is_known_unknown(&b));
    assert!(cache.verify(&now_known).is_some());
}

#[test]
fn debug_shows_no_codes() {
    let cache = AppCodeCache::new();
    let code = AppCode::generate();
    cache.upsert(&code, AppIdentity::new("a", "c"));
    assert!(!format!("{cache:?}").contains(code.expose()));
}
