//! FileProvider reloads a changed file, and a broken file keeps the last good set.

#[path = "support/wait.rs"]
mod wait;

use std::time::Duration;

use apig_appcode::provider::FileProvider;
use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache};
use wait::wait_until;

/// Bound on a change of the file reaching the cache.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits (bounded) until `check` holds for the cache.
async fn eventually(cache: &AppCodeCache, what: &str, check: impl Fn(&AppCodeCache) -> bool) {
    wait_until(RELOAD_TIMEOUT, what, || {
        let holds = check(cache);
        async move { holds.then_some(()) }
    })
    .await;
}

fn toml_doc(codes: &[(&str, &AppCode)]) -> String {
    let mut doc = String::from("[[apps]]\nid = \"app-1\"\nattributes = { name = \"shop\" }\n");
    for (id, code) in codes {
        doc.push_str(&format!(
            "[[apps.app_codes]]\nid = \"{id}\"\nvalue = \"{}\"\n",
            code.expose()
        ));
    }
    doc
}

#[tokio::test]
async fn toml_file_changes_take_effect_and_broken_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codes.toml");
    let (a, b) = (AppCode::generate(), AppCode::generate());
    std::fs::write(&path, toml_doc(&[("a", &a)])).unwrap();

    let layer = AppCodeAuthLayer::builder()
        .provider(FileProvider::new(&path).poll_interval(Duration::from_millis(10)))
        .refresh_interval(Duration::from_secs(3600))
        .build();
    let cache = layer.cache().clone();
    cache.loaded().await;
    let id = cache.verify(&a).expect("loaded");
    assert_eq!(
        (id.app_id(), id.app_code_id(), id.attribute("name")),
        ("app-1", "a", Some("shop"))
    );

    // Add b, drop a.
    std::fs::write(&path, toml_doc(&[("b", &b)])).unwrap();
    eventually(&cache, "b is in and a is out", |c| {
        c.verify(&b).is_some() && c.verify(&a).is_none()
    })
    .await;

    // Broken TOML: the last good set stays, and the failure is counted.
    let errors_before = layer.metrics().provider_errors;
    std::fs::write(&path, "[[apps]\nid = ").unwrap();
    eventually(&cache, "the broken file is counted", |c| {
        c.metrics().provider_errors > errors_before
    })
    .await;
    assert!(
        cache.verify(&b).is_some(),
        "a broken file dropped the last good set"
    );

    // Deleting the file also keeps the last good set.
    std::fs::remove_file(&path).unwrap();
    let errors_before = layer.metrics().provider_errors;
    eventually(&cache, "the missing file is counted", |c| {
        c.metrics().provider_errors > errors_before
    })
    .await;
    assert!(cache.verify(&b).is_some());

    // A good file again.
    std::fs::write(&path, toml_doc(&[("a", &a), ("b", &b)])).unwrap();
    eventually(&cache, "both codes are in", |c| {
        c.verify(&a).is_some() && c.len() == 2
    })
    .await;
}
