use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::provider::{Change, ChangeSender, ChangeStream, ProviderError};
use crate::test_support::{Script, ScriptedProvider};
use crate::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity, CacheStatus};

fn entry(app: &str, id: &str) -> (AppCode, AppIdentity) {
    (AppCode::generate(), AppIdentity::new(app, id))
}

/// Sends `change` and lets the refresher apply it.
async fn deliver(tx: &ChangeSender, change: Change) {
    tx.send(change).await.unwrap();
    settle().await;
}

/// Lets the refresher run what it was just given.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// A provider of `snapshot` whose every snapshot waits for a permit of the returned gate,
/// which holds `permits`; and the sender of its changes.
fn gated(
    snapshot: Vec<(AppCode, AppIdentity)>,
    permits: usize,
) -> (ScriptedProvider, ChangeSender, Arc<Semaphore>) {
    let (tx, rx) = ChangeStream::channel(8);
    let gate = Arc::new(Semaphore::new(permits));
    let provider = ScriptedProvider::with_snapshot(snapshot);
    provider.set(|s| {
        s.changes = Some(rx);
        s.snapshot_gate = Some(Arc::clone(&gate));
    });
    (provider, tx, gate)
}

/// A layer over `provider` that refreshes every 10 s and never goes stale.
fn every_10s(provider: &ScriptedProvider) -> AppCodeAuthLayer {
    AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .refresh_interval(Duration::from_secs(10))
        .max_staleness(None)
        .build()
}

/// An [`every_10s`] layer over a [`gated`] provider of one code of `app-a` and what `script`
/// adds, its first load done; `before` runs on the cache before that load. And the provider,
/// the sender of its changes and its gate, shut.
async fn loaded_with(
    script: impl FnOnce(&mut Script),
    before: impl FnOnce(&AppCodeCache),
) -> (
    ScriptedProvider,
    ChangeSender,
    Arc<Semaphore>,
    AppCodeAuthLayer,
) {
    let (provider, tx, gate) = gated(vec![entry("app-a", "a")], 0);
    provider.set(script);
    let layer = every_10s(&provider);
    let cache = layer.cache();
    before(cache);
    gate.add_permits(1);
    cache.loaded().await;
    (provider, tx, gate, layer)
}

/// Delivers `changes` while the next refresh of an [`every_10s`] layer hangs in a [`gated`]
/// provider, then lets that refresh finish with what it read before them.
async fn during_a_hung_refresh(
    provider: &ScriptedProvider,
    gate: &Semaphore,
    tx: &ChangeSender,
    changes: impl IntoIterator<Item = Change>,
) {
    next_refresh_hangs(provider).await;
    for change in changes {
        deliver(tx, change).await;
    }
    gate.add_permits(1);
    settle().await;
}

/// Waits for the next refresh of an [`every_10s`] layer to start: it hangs in a [`gated`]
/// provider until the gate gets a permit.
async fn next_refresh_hangs(provider: &ScriptedProvider) {
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(provider.snapshot_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn first_load_is_retried_until_it_succeeds() {
    let provider = ScriptedProvider::default();
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .build();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(layer.cache().status(), CacheStatus::Loading);
    assert!(
        provider.snapshot_calls() >= 3,
        "no retries: {}",
        provider.snapshot_calls()
    );
    let e = entry("a", "c");
    provider.set(|s| s.snapshot = Some(vec![e.clone()]));
    layer.cache().loaded().await;
    assert!(layer.cache().verify(&e.0).is_some());
    assert_eq!(layer.metrics().snapshots_loaded, 1);
    assert!(layer.metrics().provider_errors >= 3);
}

/// Sends its codes one by one, `gap` apart, after `stall` before the first.
struct Trickle {
    codes: Vec<(AppCode, AppIdentity)>,
    gap: Duration,
    stall: Duration,
}

impl crate::provider::AppCodeProvider for Trickle {
    fn snapshot(
        &self,
    ) -> crate::provider::BoxFuture<'_, Result<crate::provider::Snapshot, ProviderError>> {
        Box::pin(async { Ok(self.codes.clone()) })
    }

    fn snapshot_into<'a>(
        &'a self,
        sink: &'a mut (dyn FnMut(AppCode, AppIdentity) + Send),
    ) -> crate::provider::BoxFuture<'a, Result<Option<u64>, ProviderError>> {
        Box::pin(async move {
            tokio::time::sleep(self.stall).await;
            for (code, identity) in self.codes.iter().cloned() {
                tokio::time::sleep(self.gap).await;
                sink(code, identity);
            }
            Ok(None)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_is_bounded_by_its_progress_not_its_length() {
    let codes: Vec<_> = (0..10).map(|n| entry("a", &n.to_string())).collect();
    // Ten codes 20 s apart: 200 s in all, each within the 30 s load timeout.
    let slow = AppCodeAuthLayer::builder()
        .provider(Trickle {
            codes: codes.clone(),
            gap: Duration::from_secs(20),
            stall: Duration::ZERO,
        })
        .load_timeout(Duration::from_secs(30))
        .build();
    tokio::time::sleep(Duration::from_secs(210)).await;
    assert_eq!(slow.cache().status(), CacheStatus::Fresh);
    assert_eq!(slow.cache().len(), 10);
    // Nothing for 40 s: given up, and the cache stays unloaded.
    let stalled = AppCodeAuthLayer::builder()
        .provider(Trickle {
            codes,
            gap: Duration::ZERO,
            stall: Duration::from_secs(40),
        })
        .load_timeout(Duration::from_secs(30))
        .build();
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(stalled.cache().status(), CacheStatus::Loading);
    assert_eq!(stalled.metrics().provider_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn keeps_the_last_good_snapshot_then_fails_closed_then_recovers() {
    let e = entry("a", "c");
    let provider = ScriptedProvider::with_snapshot(vec![e.clone()]);
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .refresh_interval(Duration::from_secs(10))
        .max_staleness(Some(Duration::from_secs(60)))
        .build();
    let cache = layer.cache().clone();
    cache.loaded().await;
    provider.set(|s| s.snapshot = None);
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(cache.status(), CacheStatus::Fresh);
    assert!(cache.verify(&e.0).is_some(), "last good snapshot dropped");
    assert!(cache.snapshot_age().unwrap() >= Duration::from_secs(59));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cache.status(), CacheStatus::StaleClosed);
    provider.set(|s| s.snapshot = Some(vec![e.clone()]));
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(cache.status(), CacheStatus::Fresh);
    assert!(cache.snapshot_age().unwrap() < Duration::from_secs(11));
}

#[tokio::test(start_paused = true)]
async fn an_error_retrying_cannot_fix_is_retried_once_per_interval() {
    let provider = ScriptedProvider::default();
    provider.set(|s| s.snapshot_unusable = true);
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .refresh_interval(Duration::from_secs(10))
        .build();
    // At 0, 10 and 20 s: not the quick backoff a transient error gets.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(provider.snapshot_calls(), 3);
    assert_eq!(layer.cache().status(), CacheStatus::Loading);
    // Once fixed, the next interval loads it.
    let e = entry("a", "c");
    provider.set(|s| s.snapshot = Some(vec![e.clone()]));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(layer.cache().verify(&e.0).is_some());
}

#[tokio::test(start_paused = true)]
async fn can_be_told_to_serve_stale() {
    let provider = ScriptedProvider::with_snapshot(vec![entry("a", "c")]);
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .max_staleness(Some(Duration::from_secs(5)))
        .serve_stale(true)
        .build();
    layer.cache().loaded().await;
    provider.set(|s| s.snapshot = None);
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(layer.cache().status(), CacheStatus::StaleServing);
    assert!(layer.cache().status().admits());
}

#[tokio::test(start_paused = true)]
async fn change_events_are_applied_in_order() {
    let (a, b, c) = (entry("app1", "a"), entry("app1", "b"), entry("app2", "c"));
    let (tx, rx) = ChangeStream::channel(8);
    let provider = ScriptedProvider::with_snapshot(vec![a.clone()]);
    provider.set(|s| s.changes = Some(rx));
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .refresh_interval(Duration::from_secs(3600))
        .max_staleness(None)
        .build();
    let cache = layer.cache().clone();
    cache.loaded().await;
    for (code, identity) in [&b, &c] {
        tx.send(Change::Upsert {
            code: code.clone(),
            identity: identity.clone(),
        })
        .await
        .unwrap();
    }
    deliver(&tx, Change::Remove(a.0.clone())).await;
    assert!(cache.verify(&a.0).is_none());
    assert!(cache.verify(&b.0).is_some() && cache.verify(&c.0).is_some());
    tx.send(Change::RemoveApp("app2".into())).await.unwrap();
    deliver(&tx, Change::RemoveId("b".into())).await;
    assert!(cache.is_empty());
    assert_eq!(layer.metrics().changes_applied, 5);
    let before = provider.snapshot_calls();
    deliver(&tx, Change::Resync).await;
    assert_eq!(provider.snapshot_calls(), before + 1);
    assert!(cache.verify(&a.0).is_some(), "resync reloaded the snapshot");
}

fn acl(kind: crate::acl::AclType, values: &[&str]) -> Arc<crate::acl::AppAcl> {
    Arc::new(crate::acl::AppAcl::new(kind, values).unwrap())
}

/// An app's quota and its ACL are both kept by app beside the codes: one scenario for both.
#[tokio::test(start_paused = true)]
async fn app_quotas_and_acls_come_with_the_snapshot_and_a_stale_list_cannot_undo_a_change() {
    use crate::acl::AclType;
    use crate::quota::{AppQuota, TimeUnit};
    let quota = |calls| Arc::new(AppQuota::new(calls, TimeUnit::Day, 1).unwrap());
    let (provider, tx, gate, layer) = loaded_with(
        |s| {
            s.quotas = Some(vec![("app-a".into(), quota(5)), ("app-b".into(), quota(6))]);
            s.acls = Some(vec![
                ("app-a".into(), acl(AclType::Deny, &["192.0.2.1"])),
                ("app-gone".into(), acl(AclType::Deny, &["192.0.2.2"])),
            ]);
        },
        // What the node set itself before the first load, unknown to the provider, goes.
        |cache| {
            cache.set_app_quota("app-local", quota(1));
            cache.set_app_acl("app-local", acl(AclType::Deny, &["192.0.2.3"]));
        },
    )
    .await;
    let cache = layer.cache().clone();
    assert_eq!(cache.app_quota("app-a").unwrap().call_limits(), 5);
    assert!(cache.app_acl("app-a").is_some(), "loaded with the codes");
    assert!(
        cache.app_quota("app-local").is_none() && cache.app_acl("app-local").is_none(),
        "the provider's lists are the whole truth"
    );
    assert_eq!((cache.app_quotas(), cache.app_acls()), (2, 2));

    for change in [
        Change::AppQuota {
            app_id: "app-a".into(),
            quota: Some(quota(9)),
        },
        Change::AppAcl {
            app_id: "app-a".into(),
            acl: Some(acl(AclType::Permit, &["198.51.100.0/24"])),
        },
    ] {
        deliver(&tx, change).await;
    }
    assert_eq!(cache.app_quota("app-a").unwrap().call_limits(), 9);
    assert_eq!(cache.app_acl("app-a").unwrap().kind(), AclType::Permit);
    deliver(&tx, Change::RemoveApp("app-gone".into())).await;
    assert!(
        cache.app_acl("app-gone").is_none(),
        "an app's ACL leaves with it"
    );

    // The next refresh hangs in the provider, which still lists app-b's quota and the old ACL
    // of app-a, while both are removed: the stale lists must not bring them back.
    let removed = [
        Change::AppQuota {
            app_id: "app-b".into(),
            quota: None,
        },
        Change::AppAcl {
            app_id: "app-a".into(),
            acl: None,
        },
    ];
    during_a_hung_refresh(&provider, &gate, &tx, removed).await;
    assert!(
        cache.app_quota("app-b").is_none(),
        "a stale list brought a removed quota back"
    );
    assert!(
        cache.app_acl("app-a").is_none(),
        "a snapshot loaded before the removal undid it"
    );
    assert_eq!(
        cache.app_quota("app-a").unwrap().call_limits(),
        5,
        "the list's value"
    );
    assert!(
        cache.app_acl("app-gone").is_some(),
        "the snapshot holds it again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_provider_without_acls_leaves_the_caches_own_alone() {
    use crate::acl::AclType;
    let provider = ScriptedProvider::with_snapshot(vec![entry("app", "a")]);
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .max_staleness(None)
        .build();
    let cache = layer.cache().clone();
    cache.set_app_acl("app", acl(AclType::Deny, &["192.0.2.3"]));
    cache.loaded().await;
    assert!(cache.app_acl("app").is_some());
}

#[tokio::test(start_paused = true)]
async fn change_events_are_applied_while_a_snapshot_loads() {
    let (a, b) = (entry("app", "a"), entry("app", "b"));
    let (provider, tx, gate) = gated(vec![a.clone(), b.clone()], 1);
    let layer = every_10s(&provider);
    let cache = layer.cache().clone();
    cache.loaded().await;
    // The next refresh starts and hangs in the provider, still holding `a`...
    next_refresh_hangs(&provider).await;
    // ...while `a` is revoked: the revocation does not wait for the load.
    deliver(&tx, Change::Remove(a.0.clone())).await;
    assert!(cache.verify(&a.0).is_none(), "the revocation waited");
    // A resync asked for meanwhile is served by one more load after this one.
    deliver(&tx, Change::Resync).await;
    assert_eq!(provider.snapshot_calls(), 2);
    gate.add_permits(1);
    settle().await;
    assert!(
        cache.verify(&a.0).is_none(),
        "the snapshot undid the revocation"
    );
    assert!(cache.verify(&b.0).is_some());
    assert_eq!(provider.snapshot_calls(), 3, "the resync was dropped");
}

/// Refreshes through a store's revisions (the stores live behind the `store` feature).
#[cfg(feature = "store")]
mod by_revision {
    use super::*;
    use crate::store::{
        App, AppCodeRecord, MemoryStore, Scope, SecretString, Store, StoreProvider, Timestamp,
    };

    /// A store with `n` codes of one app in `instance-1`, and the scope.
    async fn store_with(n: u64, retention: u64) -> (Arc<MemoryStore>, Scope, Vec<AppCodeRecord>) {
        let store = Arc::new(MemoryStore::with_change_log_retention(retention));
        let scope = Scope::new("project", "instance-1");
        store.create_app(app(&scope)).await.unwrap();
        let mut records = Vec::new();
        for i in 0..n {
            records.push(store.create_app_code(&scope, record(i)).await.unwrap());
        }
        (store, scope, records)
    }

    /// A layer fed by `store`'s instance, catching up every 10 s.
    fn refreshing(store: &Arc<MemoryStore>) -> crate::layer::AppCodeAuthLayerBuilder {
        AppCodeAuthLayer::builder()
            .provider(StoreProvider::new(store.clone(), "instance-1"))
            .refresh_interval(Duration::from_secs(10))
    }

    /// A [`refreshing`] layer over `store`, its first load done, and its cache.
    async fn loaded_from(store: &Arc<MemoryStore>) -> (AppCodeAuthLayer, AppCodeCache) {
        let layer = refreshing(store).build();
        let cache = layer.cache().clone();
        cache.loaded().await;
        (layer, cache)
    }

    /// Deletes `code` from the store behind the cache's back (there is no change stream): only
    /// a refresh can tell the cache.
    async fn delete(store: &MemoryStore, scope: &Scope, code: &AppCodeRecord) {
        store
            .delete_app_code(scope, &code.app_id, &code.id)
            .await
            .unwrap();
    }

    fn app(scope: &Scope) -> App {
        App {
            id: "app-1".into(),
            scope: scope.clone(),
            name: "app_one".into(),
            remark: String::new(),
            creator: "USER".into(),
            app_key: "key-1".into(),
            app_secret: SecretString::new("secret"),
            register_time: Timestamp::from_unix_nanos(0),
            update_time: Timestamp::from_unix_nanos(0),
            status: 1,
        }
    }

    fn record(i: u64) -> AppCodeRecord {
        AppCodeRecord {
            id: format!("code-{i}"),
            app_id: "app-1".into(),
            value: AppCode::generate(),
            create_time: Timestamp::from_unix_nanos(0),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_fetches_only_what_changed() {
        let (store, scope, records) = store_with(3, 100).await;
        let (layer, cache) = loaded_from(&store).await;
        // Written behind the cache's back (no change stream): only a refresh can bring it.
        delete(&store, &scope, &records[0]).await;
        let created = store.create_app_code(&scope, record(9)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(cache.verify(&records[0].value).is_none());
        assert!(cache.verify(&created.value).is_some());
        assert!(cache.verify(&records[1].value).is_some());
        let m = layer.metrics();
        assert_eq!(m.snapshots_loaded, 1, "a refresh reloaded every code");
        assert_eq!(m.deltas_applied, 1);
        // Nothing changes: refreshes go on, cheaply, and keep the cache fresh.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(layer.metrics().snapshots_loaded, 1);
        assert_eq!(layer.metrics().deltas_applied, 4);
        assert!(cache.snapshot_age().unwrap() < Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cache_further_behind_than_the_log_reloads_the_snapshot() {
        let (store, scope, records) = store_with(1, 2).await;
        let (layer, cache) = loaded_from(&store).await;
        // More writes than the log keeps, between two refreshes.
        let mut kept = Vec::new();
        for i in 10..14 {
            kept.push(store.create_app_code(&scope, record(i)).await.unwrap());
        }
        delete(&store, &scope, &records[0]).await;
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(layer.metrics().snapshots_loaded, 2);
        assert!(cache.verify(&records[0].value).is_none());
        assert!(kept.iter().all(|r| cache.verify(&r.value).is_some()));
        // Then back to deltas.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(layer.metrics().snapshots_loaded, 2);
        assert!(layer.metrics().deltas_applied >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_after_snapshot_hook_sees_every_snapshot_and_no_delta() {
        let (store, scope, records) = store_with(1, 2).await;
        let loads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&loads);
        let layer = refreshing(&store)
            .after_snapshot(move |codes| seen.lock().unwrap().push(codes))
            .build();
        layer.cache().loaded().await;
        tokio::task::yield_now().await;
        assert_eq!(*loads.lock().unwrap(), [1]);
        // A delta: no snapshot, no call.
        store.create_app_code(&scope, record(10)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(layer.metrics().deltas_applied, 1);
        assert_eq!(*loads.lock().unwrap(), [1]);
        // Further behind than the log: a snapshot of every code, and a call with their count.
        for i in 11..13 {
            store.create_app_code(&scope, record(i)).await.unwrap();
        }
        delete(&store, &scope, &records[0]).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(layer.metrics().snapshots_loaded, 2);
        assert_eq!(*loads.lock().unwrap(), [1, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn resync_catches_up_by_revision_and_reload_loads_every_code() {
        let (tx, rx) = ChangeStream::channel(8);
        let provider = ScriptedProvider::with_snapshot(vec![entry("app", "a")]);
        provider.set(|s| {
            s.changes = Some(rx);
            s.revision = Some(7);
        });
        let layer = AppCodeAuthLayer::builder()
            .provider(provider.clone())
            .refresh_interval(Duration::from_secs(3600))
            .build();
        layer.cache().loaded().await;
        deliver(&tx, Change::Resync).await;
        assert_eq!(layer.metrics().deltas_applied, 1);
        assert_eq!(layer.metrics().snapshots_loaded, 1);
        deliver(&tx, Change::Reload).await;
        assert_eq!(
            layer.metrics().snapshots_loaded,
            2,
            "a reload was served by a delta"
        );
        // And the revision it brought is used again.
        deliver(&tx, Change::Resync).await;
        assert_eq!(layer.metrics().deltas_applied, 2);
    }
}

#[tokio::test(start_paused = true)]
async fn stops_when_the_last_layer_is_dropped() {
    let provider = ScriptedProvider::with_snapshot(Vec::new());
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .refresh_interval(Duration::from_secs(1))
        .build();
    layer.cache().loaded().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(provider.snapshot_calls() >= 5);
    drop(layer);
    tokio::task::yield_now().await;
    let after = provider.snapshot_calls();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(provider.snapshot_calls(), after);
}
