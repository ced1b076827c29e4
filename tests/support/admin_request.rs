//! A management API request, for the clients that send it themselves (`postgres_nodes`, and
//! the example `propagation_bench`, which cannot take the rest of the test support).

use std::net::SocketAddr;

use apig_appcode::gateway::config::{DEFAULT_INSTANCE_ID, DEFAULT_PROJECT_ID};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::Value;

/// `method` on `path` under the default project and instance of the management API at
/// `admin`, with `token` and, if given, a JSON body.
pub(crate) fn admin_request(
    admin: SocketAddr,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> http::Result<Request<Full<Bytes>>> {
    let request = Request::builder()
        .method(method)
        .uri(format!(
            "http://{admin}/v2/{DEFAULT_PROJECT_ID}/apigw/instances/{DEFAULT_INSTANCE_ID}{path}"
        ))
        .header("x-auth-token", token);
    match body {
        Some(json) => request
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json.to_string()))),
        None => request.body(Full::new(Bytes::new())),
    }
}
