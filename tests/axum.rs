//! The layer in an axum `Router`, driven with `oneshot`: what a handler sees and what a rejected
//! client gets.

use std::time::Duration;

use apig_appcode::layer::{IdentityHeaders, Rejection, RejectionKind};
use apig_appcode::provider::StaticProvider;
use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A layer knowing one code of app `app-1` (AppCode ID `code-1`), loaded and ready.
async fn layer_with(code: &AppCode) -> AppCodeAuthLayer {
    let layer = AppCodeAuthLayer::builder()
        .provider(
            StaticProvider::builder()
                .app_code("app-1", "code-1", code.clone())
                .build(),
        )
        .identity_headers(IdentityHeaders::default())
        .build();
    tokio::time::timeout(Duration::from_secs(10), layer.cache().loaded())
        .await
        .expect("a static provider loads at once");
    layer
}

/// Answers with the identity it was given and every header it saw, one per line.
async fn whoami(Extension(id): Extension<AppIdentity>, headers: HeaderMap) -> String {
    let mut out = format!("{} {}\n", id.app_id(), id.app_code_id());
    for (name, value) in &headers {
        out.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
    }
    out
}

fn routes() -> Router {
    Router::new()
        .route("/", get(whoami))
        .route("/admin", get(whoami))
}

fn get_with(path: &str, code: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().uri(path);
    if let Some(code) = code {
        req = req.header("x-apig-appcode", code);
    }
    req.body(Body::empty()).unwrap()
}

async fn text(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Checks the APIG error shape and returns the body.
async fn apig_error(res: Response<Body>, status: StatusCode, code: &str) -> serde_json::Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/json");
    let request_id = res
        .headers()
        .get("x-request-id")
        .expect("rejections carry X-Request-Id")
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error_code"], code);
    assert!(body["error_msg"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(body["request_id"], request_id.as_str());
    body
}

#[tokio::test]
async fn valid_code_reaches_the_handler_with_its_identity() {
    let code = AppCode::generate();
    let app = routes().layer(layer_with(&code).await);
    let res = app
        .oneshot(get_with("/", Some(code.expose())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(text(res).await.starts_with("app-1 code-1\n"));
}

#[tokio::test]
async fn missing_code_is_401_apig_0303_json() {
    let app = routes().layer(layer_with(&AppCode::generate()).await);
    let res = app.clone().oneshot(get_with("/", None)).await.unwrap();
    apig_error(res, StatusCode::UNAUTHORIZED, "APIG.0303").await;

    let empty = app.oneshot(get_with("/", Some(""))).await.unwrap();
    apig_error(empty, StatusCode::UNAUTHORIZED, "APIG.0303").await;
}

#[tokio::test]
async fn a_plain_client_request_id_is_echoed_in_the_rejection() {
    let app = routes().layer(layer_with(&AppCode::generate()).await);
    let req = Request::builder()
        .uri("/")
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-42");
    let body = apig_error(res, StatusCode::UNAUTHORIZED, "APIG.0303").await;
    assert_eq!(body["request_id"], "trace-42");
}

#[tokio::test]
async fn wrong_or_malformed_code_is_401() {
    let app = routes().layer(layer_with(&AppCode::generate()).await);
    let other = AppCode::generate();
    for code in [other.expose(), "too-short", &"a".repeat(200)] {
        let res = app
            .clone()
            .oneshot(get_with("/", Some(code)))
            .await
            .unwrap();
        apig_error(res, StatusCode::UNAUTHORIZED, "APIG.0303").await;
    }
}

#[tokio::test]
async fn the_appcode_header_is_not_visible_to_the_handler() {
    let code = AppCode::generate();
    let app = routes().layer(layer_with(&code).await);
    let seen = text(
        app.oneshot(get_with("/", Some(code.expose())))
            .await
            .unwrap(),
    )
    .await;
    assert!(!seen.contains("x-apig-appcode:"), "{seen}");
    assert!(!seen.contains(code.expose()));
}

#[tokio::test]
async fn client_sent_identity_headers_are_replaced_by_verified_ones() {
    let code = AppCode::generate();
    let app = routes().layer(layer_with(&code).await);
    let req = Request::builder()
        .uri("/")
        .header("x-apig-appcode", code.expose())
        .header("x-apig-app-id", "admin-app")
        .header("x-apig-app-id", "another")
        .header("x-apig-appcode-id", "forged")
        .body(Body::empty())
        .unwrap();
    let seen = text(app.oneshot(req).await.unwrap()).await;
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("x-apig-app-id:"))
            .count(),
        1,
        "{seen}"
    );
    assert!(lines.contains(&"x-apig-app-id: app-1"), "{seen}");
    assert!(lines.contains(&"x-apig-appcode-id: code-1"), "{seen}");
    assert!(!seen.contains("admin-app") && !seen.contains("forged"));
}

#[tokio::test]
async fn an_authorize_hook_refusing_the_route_gives_403_apig_0304() {
    let code = AppCode::generate();
    let layer = layer_with(&code)
        .await
        .authorize(|id: &AppIdentity, req: &Request<Body>| {
            req.uri().path() != "/admin" || id.attribute("role") == Some("admin")
        });
    let app = routes().layer(layer);

    let admin = app
        .clone()
        .oneshot(get_with("/admin", Some(code.expose())))
        .await
        .unwrap();
    apig_error(admin, StatusCode::FORBIDDEN, "APIG.0304").await;

    let home = app
        .oneshot(get_with("/", Some(code.expose())))
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_custom_on_reject_closure_builds_the_answer() {
    let layer = layer_with(&AppCode::generate())
        .await
        .on_reject(|r: &Rejection| {
            let (status, reason) = match r.kind() {
                RejectionKind::Missing => (StatusCode::UNAUTHORIZED, "who are you?"),
                _ => (StatusCode::IM_A_TEAPOT, "not you"),
            };
            Response::builder()
                .status(status)
                .header("x-custom", r.request_id().to_header_value())
                .body(Body::from(reason))
                .unwrap()
        });
    let app = routes().layer(layer);

    let missing = app.clone().oneshot(get_with("/", None)).await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(missing.headers().get("content-type").is_none());
    assert!(!missing.headers()["x-custom"].is_empty());
    assert_eq!(text(missing).await, "who are you?");

    let wrong = app
        .oneshot(get_with("/", Some(AppCode::generate().expose())))
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(text(wrong).await, "not you");
}
