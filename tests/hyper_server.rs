//! The layer on a real hyper server bound to a free port, called over real TCP connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use apig_appcode::layer::{ConnectionInfo, HttpsPolicy};
use apig_appcode::provider::StaticProvider;
use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tower::{service_fn, ServiceBuilder};

/// Bound on every network wait, so a hang fails the test instead of stalling it.
const WAIT: Duration = Duration::from_secs(10);

async fn whoami(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = req
        .extensions()
        .get::<AppIdentity>()
        .expect("set by the layer");
    Ok(Response::new(Full::from(id.app_id().to_owned())))
}

/// Serves `layer` in front of `whoami` on 127.0.0.1, port chosen by the OS. The accept loop
/// ends with the test's runtime.
async fn serve(layer: AppCodeAuthLayer) -> SocketAddr {
    tokio::time::timeout(WAIT, layer.cache().loaded())
        .await
        .expect("codes loaded");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut()
                        .insert(ConnectionInfo { peer, tls: false });
                    req
                })
                .layer(layer.clone())
                .service(service_fn(whoami));
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc)),
            );
        }
    });
    addr
}

fn layer_for(code: &AppCode) -> apig_appcode::layer::AppCodeAuthLayerBuilder {
    AppCodeAuthLayer::builder().provider(
        StaticProvider::builder()
            .app_code("app-1", "code-1", code.clone())
            .build(),
    )
}

type TestClient = Client<HttpConnector, Empty<Bytes>>;

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends GET / with each of `headers` (repeats allowed); returns the status and body.
async fn get(
    client: &TestClient,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::builder().uri(format!("http://{addr}/"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = tokio::time::timeout(WAIT, client.request(req.body(Empty::new()).unwrap()))
        .await
        .expect("answer in time")
        .expect("request sent");
    let status = res.status();
    let body = tokio::time::timeout(WAIT, res.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("an APIG JSON body");
    v["error_code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn valid_code_over_tcp_is_200() {
    let code = AppCode::generate();
    let addr = serve(layer_for(&code).build()).await;
    let (status, body) = get(&client(), addr, &[("x-apig-appcode", code.expose())]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "app-1");
}

#[tokio::test]
async fn no_code_over_tcp_is_401() {
    let addr = serve(layer_for(&AppCode::generate()).build()).await;
    let (status, body) = get(&client(), addr, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "APIG.0303");
}

#[tokio::test]
async fn a_repeated_header_is_401_even_when_each_copy_is_valid() {
    let code = AppCode::generate();
    let addr = serve(layer_for(&code).build()).await;
    let header = ("x-apig-appcode", code.expose());
    let (status, body) = get(&client(), addr, &[header, header]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "APIG.0303");
}

#[tokio::test]
async fn the_peer_from_connection_info_decides_whether_forwarded_proto_counts() {
    let code = AppCode::generate();
    let https = HttpsPolicy::required().trust_forwarded_proto_from("127.0.0.1/32".parse().unwrap());
    let addr = serve(layer_for(&code).https(https).build()).await;
    let client = client();

    let plain = get(&client, addr, &[("x-apig-appcode", code.expose())]).await;
    assert_eq!(plain.0, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&plain.1), "APIG.0607");

    let forwarded = [
        ("x-apig-appcode", code.expose()),
        ("x-forwarded-proto", "https"),
    ];
    assert_eq!(get(&client, addr, &forwarded).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_all_succeed() {
    const TASKS: usize = 20;
    const PER_TASK: usize = 10;
    let code = AppCode::generate();
    let layer = layer_for(&code).build();
    let cache = layer.cache().clone();
    let addr = serve(layer).await;
    // One pooled client, as a real caller would use, so connections are both shared and opened
    // concurrently.
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (client, value) = (client.clone(), code.expose().to_owned());
        tasks.spawn(async move {
            let mut ok = 0;
            for _ in 0..PER_TASK {
                let (status, body) = get(&client, addr, &[("x-apig-appcode", &value)]).await;
                assert_eq!((status, body.as_str()), (StatusCode::OK, "app-1"));
                ok += 1;
            }
            ok
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.expect("no task panicked");
    }
    assert_eq!(total, TASKS * PER_TASK);
    assert_eq!(cache.metrics().hits, (TASKS * PER_TASK) as u64);
}
