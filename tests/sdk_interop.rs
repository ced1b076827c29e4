//! Acceptance test against Huawei Cloud's official Python SDK (`huaweicloudsdkapig` 3.1.219).
//!
//! Starts the management API and a gateway protected by `AppCodeAuthLayer` over the same cache,
//! each on 127.0.0.1 port 0, then runs `tests/sdk/interop.py` with the SDK pointed at the API.
//! The SDK is installed in a virtual environment under `target/sdk-venv` (reused when present).
//! Without python3, venv or pip (or without PyPI) the test fails when `CI` is set and is
//! skipped, saying so, otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apig_appcode::admin::{AccessKeyCredential, AdminApi, Permissions};
use apig_appcode::layer::ConnectionInfo;
use apig_appcode::store::{AppFilter, MemoryStore, Scope, Store};
use apig_appcode::{AppCodeAuthLayer, AppCodeCache, AppIdentity};
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{middleware, Extension, Router};

const PROJECT: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const INSTANCE: &str = "eddc4d25480b4cd6b512f270a1b8b341";
const AK: &str = "INTEROPAK0000000000001";
const SK: &str = "interop-secret-key-0123456789abcdef";
const RO_AK: &str = "INTEROPAKREADONLY0001";
const RO_SK: &str = "interop-read-only-secret-key-0123";

#[path = "support/sdk_python.rs"]
mod sdk_python;
use sdk_python::{run_sdk_script, sdk_python};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    format!("http://{addr}")
}

/// The client's address where the AppCode layer reads it (for app ACLs), from axum's.
async fn with_connection_info(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: axum::extract::Request,
) -> axum::extract::Request {
    req.extensions_mut()
        .insert(ConnectionInfo { peer, tls: false });
    req
}

#[test]
fn official_python_sdk_drives_every_app_code_endpoint() {
    let Some(python) = sdk_python() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Arc::new(MemoryStore::new());
        let cache = AppCodeCache::new();
        cache.replace_all([]);
        let admin = AdminApi::builder()
            .store(store.clone())
            .instance(INSTANCE, cache.clone())
            .access_key(AccessKeyCredential::new(
                AK,
                SK,
                Permissions::read_write().projects([PROJECT]),
            ))
            .access_key(AccessKeyCredential::new(
                RO_AK,
                RO_SK,
                Permissions::read_only(),
            ))
            .build()
            .unwrap()
            .router();
        let gateway = Router::new()
            .route(
                "/hello",
                get(|Extension(id): Extension<AppIdentity>| async move { id.app_id().to_owned() }),
            )
            .layer(AppCodeAuthLayer::new(cache.clone()))
            .layer(middleware::map_request(with_connection_info));
        let (admin_url, gateway_url) = (serve(admin).await, serve(gateway).await);

        let env = [
            ("APIG_ENDPOINT", &*admin_url),
            ("APIG_GATEWAY", &gateway_url),
            ("APIG_PROJECT", PROJECT),
            ("APIG_INSTANCE", INSTANCE),
            ("APIG_AK", AK),
            ("APIG_SK", SK),
            ("APIG_RO_AK", RO_AK),
            ("APIG_RO_SK", RO_SK),
        ];
        let limit = Duration::from_secs(300);
        let out = run_sdk_script(&python, "interop.py", &[], &env, limit).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}");
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "interop.py failed ({}):\n{stdout}",
            out.status
        );
        assert!(stdout.contains("all checks passed"));

        // What the SDK left behind: nothing, in the store and at the gateway.
        let scope = Scope::new(PROJECT, INSTANCE);
        let apps = store
            .list_apps(&scope, &AppFilter::default(), 0, 100)
            .await
            .unwrap();
        assert_eq!(apps.total, 0);
        assert!(cache.is_empty());
    });
}
