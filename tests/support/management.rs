//! The management API of a running server: calls with a token or signed with an access key,
//! and its metrics.

use std::net::SocketAddr;
use std::time::SystemTime;

use apig_appcode::gateway::config::{DEFAULT_INSTANCE_ID, DEFAULT_PROJECT_ID};
use apig_appcode::signature::{self, SecretKey};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use super::client::{get, request, send, Resp};
use super::server::{start_with_token, Server};
use super::upstream::Upstream;

#[path = "prometheus.rs"]
mod prometheus;
pub(crate) use self::prometheus::sample;

/// The management API with an `X-Auth-Token`, on one project and instance.
pub(crate) struct Admin {
    pub(crate) addr: SocketAddr,
    pub(crate) token: String,
    pub(crate) base: String,
}

impl Admin {
    pub(crate) fn new(addr: SocketAddr, token: &str) -> Self {
        Self::scoped(addr, token, DEFAULT_PROJECT_ID, DEFAULT_INSTANCE_ID)
    }

    pub(crate) fn scoped(addr: SocketAddr, token: &str, project: &str, instance: &str) -> Self {
        Self {
            addr,
            token: token.to_owned(),
            base: format!("/v2/{project}/apigw/instances/{instance}"),
        }
    }

    /// `method {base}{path}` with the token and, if given, a JSON body.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = request(method, &format!("{}{path}", self.base), bytes);
        let headers = req.headers_mut();
        headers.insert("x-auth-token", self.token.parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        send(self.addr, req).await
    }

    /// Creates an app; returns its ID.
    pub(crate) async fn create_app(&self, name: &str) -> String {
        let res = self
            .call(Method::POST, "/apps", Some(json!({"name": name})))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()["id"].as_str().unwrap().to_owned()
    }

    /// Auto-generates an AppCode; returns its ID and value.
    pub(crate) async fn generate_code(&self, app_id: &str) -> (String, String) {
        let res = self
            .call(Method::PUT, &format!("/apps/{app_id}/app-codes"), None)
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let body = res.json();
        assert_eq!(body["app_id"], app_id);
        (
            body["id"].as_str().unwrap().to_owned(),
            body["app_code"].as_str().unwrap().to_owned(),
        )
    }

    /// Adds the AppCode `value` to the app (a caller-chosen code, not a generated one).
    pub(crate) async fn create_code(&self, app_id: &str, value: &str) {
        let res = self
            .call(
                Method::POST,
                &format!("/apps/{app_id}/app-codes"),
                Some(json!({ "app_code": value })),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }

    pub(crate) async fn delete_code(&self, app_id: &str, code_id: &str) {
        let res = self
            .call(
                Method::DELETE,
                &format!("/apps/{app_id}/app-codes/{code_id}"),
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    }

    /// An app with one generated AppCode: (app ID, code ID, code value).
    pub(crate) async fn app_with_code(&self, name: &str) -> (String, String, String) {
        let app = self.create_app(name).await;
        let (code_id, code) = self.generate_code(&app).await;
        (app, code_id, code)
    }

    /// Binds `app` to a new quota of `calls` a day (windows from its binding).
    pub(crate) async fn bind_daily_quota(&self, app: &str, calls: u64) {
        let quota = self
            .call(
                Method::POST,
                "/app-quotas",
                Some(json!({"name": format!("daily_{app}"), "call_limits": calls,
                            "time_unit": "DAY", "time_interval": 1})),
            )
            .await;
        assert_eq!(quota.status, StatusCode::CREATED, "{}", quota.text());
        let quota_id = quota.json()["app_quota_id"].as_str().unwrap().to_owned();
        let bound = self
            .call(
                Method::POST,
                &format!("/app-quotas/{quota_id}/binding-apps"),
                Some(json!({ "app_ids": [app] })),
            )
            .await;
        assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text());
    }
}

/// A management call signed with SDK-HMAC-SHA256 as the official SDK signs it.
pub(crate) async fn signed_call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
    (access_key, secret_key): (&str, &str),
) -> Resp {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let (mut parts, ()) = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("x-project-id", DEFAULT_PROJECT_ID)
        .body(())
        .unwrap()
        .into_parts();
    signature::sign(
        &mut parts,
        bytes.as_bytes(),
        access_key,
        &SecretKey::from(secret_key),
        SystemTime::now(),
    )
    .unwrap();
    send(
        addr,
        Request::from_parts(parts, Full::new(Bytes::from(bytes))),
    )
    .await
}

pub(crate) async fn metrics(server: &Server) -> String {
    let res = send(server.admin, get("/metrics")).await;
    assert_eq!(res.status, StatusCode::OK);
    res.text()
}

pub(crate) fn apps_path() -> String {
    format!("/v2/{DEFAULT_PROJECT_ID}/apigw/instances/{DEFAULT_INSTANCE_ID}/apps")
}

/// A server with `--admin-token` and `extra` flags on a directory of its own, holding an app
/// `name` with one AppCode: what must outlive the server (its upstream, its directory; bound
/// first, they are dropped after it), the server, and (app ID, code ID, code value).
pub(crate) async fn serve_with_code(
    name: &str,
    extra: &[&str],
) -> (
    (Upstream, tempfile::TempDir),
    Server,
    (String, String, String),
) {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), extra).await;
    let code = Admin::new(server.admin, super::TOKEN)
        .app_with_code(name)
        .await;
    ((upstream, dir), server, code)
}
