//! The tonic example's service behind the layer, called by a real tonic client over HTTP/2:
//! refusals arrive as gRPC statuses (not as protocol errors), and the handler sees the caller.

#[path = "../examples/tonic/greeter.rs"]
mod greeter;

use std::time::Duration;

use apig_appcode::layer::{AuthorizeApp, GrpcStatus};
use apig_appcode::provider::StaticProvider;
use apig_appcode::throttle::{Quota, ThrottleLayer};
use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity};
use greeter::{GreeterClient, GreeterServer, HelloReply, HelloRequest};
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Code, Status};

/// A layer answering with gRPC statuses, knowing one code of app `app-1` (AppCode ID `code-1`).
async fn layer_with(code: &AppCode) -> AppCodeAuthLayer<GrpcStatus> {
    let layer = AppCodeAuthLayer::builder()
        .provider(
            StaticProvider::builder()
                .app_code("app-1", "code-1", code.clone())
                .build(),
        )
        .build()
        .on_reject(GrpcStatus);
    tokio::time::timeout(Duration::from_secs(10), layer.cache().loaded())
        .await
        .expect("a static provider loads at once");
    layer
}

/// Serves the Greeter behind `layer` on 127.0.0.1:0, as the example does, and connects a client.
/// The server task ends with the test's runtime.
async fn serve<A>(layer: AppCodeAuthLayer<GrpcStatus, A>) -> GreeterClient
where
    A: AuthorizeApp<Body> + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .layer(layer)
        .add_service(GreeterServer)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(async move { server.await.expect("the server runs") });
    GreeterClient::connect(format!("http://{addr}"))
        .await
        .expect("the client connects")
}

/// One `SayHello` with `code` (if any) in the `x-apig-appcode` metadata.
async fn say_hello(client: &mut GreeterClient, code: Option<&str>) -> Result<HelloReply, Status> {
    let mut req = tonic::Request::new(HelloRequest {
        name: "world".into(),
    });
    if let Some(code) = code {
        req.metadata_mut()
            .insert("x-apig-appcode", code.parse().unwrap());
    }
    client.say_hello(req).await.map(|res| res.into_inner())
}

/// Checks that a call was refused: its gRPC code, its `APIG.xxxx: ...` message, and the
/// request ID metadata.
fn assert_refused(answer: Result<HelloReply, Status>, code: Code, message: &str) {
    let status = answer.expect_err("a refusal");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
    assert!(
        status.metadata().get("x-request-id").is_some(),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_valid_code_reaches_the_handler_with_its_identity() {
    let code = AppCode::generate();
    let mut client = serve(layer_with(&code).await).await;
    let reply = say_hello(&mut client, Some(code.expose())).await.unwrap();
    assert_eq!(reply.message, "hello, world");
    assert_eq!(reply.app_id, "app-1");
    assert_eq!(reply.app_code_id, "code-1");
}

#[tokio::test]
async fn no_code_is_unauthenticated() {
    let mut client = serve(layer_with(&AppCode::generate()).await).await;
    assert_refused(
        say_hello(&mut client, None).await,
        Code::Unauthenticated,
        "APIG.0303: Incorrect app authentication information: AppCode missing",
    );
}

#[tokio::test]
async fn an_unknown_code_is_unauthenticated() {
    let mut client = serve(layer_with(&AppCode::generate()).await).await;
    let other = AppCode::generate();
    assert_refused(
        say_hello(&mut client, Some(other.expose())).await,
        Code::Unauthenticated,
        "APIG.0303: Incorrect app authentication information: AppCode invalid",
    );
    // A malformed one is the same answer: nothing tells the caller which part was wrong.
    let status = say_hello(&mut client, Some("short")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().starts_with("APIG.0303: "));
}

#[tokio::test]
async fn a_refusing_authorize_hook_is_permission_denied() {
    let code = AppCode::generate();
    let layer = layer_with(&code)
        .await
        .authorize(|_: &AppIdentity, _: &http::Request<Body>| false);
    let mut client = serve(layer).await;
    assert_refused(
        say_hello(&mut client, Some(code.expose())).await,
        Code::PermissionDenied,
        "APIG.0304: The app is not authorized to access the API",
    );
}

#[tokio::test]
async fn an_unloaded_cache_is_unavailable() {
    // Never filled: the layer cannot verify anything and fails closed.
    let layer = AppCodeAuthLayer::new(AppCodeCache::new()).on_reject(GrpcStatus);
    let mut client = serve(layer).await;
    assert_refused(
        say_hello(&mut client, Some(AppCode::generate().expose())).await,
        Code::Unavailable,
        "APIG.0202: The authentication service is temporarily unavailable",
    );
}

#[tokio::test]
async fn a_throttled_call_is_resource_exhausted() {
    // One call a second, no burst: the second call at once is over the app's limit.
    let code = AppCode::generate();
    let throttle = ThrottleLayer::new(Quota::per_second(1).unwrap()).on_reject(GrpcStatus);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The AppCode layer outside, the throttle inside it: the throttle charges the app the
    // AppCode layer found.
    let server = Server::builder()
        .layer(layer_with(&code).await)
        .layer(throttle.clone())
        .add_service(GreeterServer)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(async move { server.await.expect("the server runs") });
    let mut client = GreeterClient::connect(format!("http://{addr}"))
        .await
        .expect("the client connects");

    say_hello(&mut client, Some(code.expose())).await.unwrap();
    let status = say_hello(&mut client, Some(code.expose()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().starts_with("APIG.0308: "), "{status:?}");
    assert_eq!(throttle.throttled(), 1);
}
