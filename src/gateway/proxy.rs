//! The reverse proxy behind the AppCode layer: forwards authenticated requests to one upstream.
//!
//! # Example
//!
//! ```
//! use apig_appcode::gateway::proxy::Proxy;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let proxy = Proxy::new("127.0.0.1:8000".parse().unwrap());
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::apig_error;
use crate::layer::{ApigJson, ConnectionInfo, RejectResponse, Rejection};
use crate::request_id::{RequestId, X_REQUEST_ID};

/// The body of every gateway response.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How long the upstream may take to answer with headers before the client gets 504.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-authenticate"),
    HeaderName::from_static("proxy-authorization"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("te"),
    HeaderName::from_static("trailer"),
    HeaderName::from_static("transfer-encoding"),
    HeaderName::from_static("upgrade"),
];

/// A pooled HTTP/1.1 client to one upstream.
#[derive(Clone, Debug)]
pub struct Proxy {
    client: Client<HttpConnector, Incoming>,
    upstream: Authority,
}

impl Proxy {
    /// A proxy to `http://{upstream}`.
    pub fn new(upstream: Authority) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self { client, upstream }
    }

    /// Sends `req` to the upstream and returns its answer, or APIG's `502`/`504 APIG.0201`.
    pub async fn forward(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let id = req.headers().get(X_REQUEST_ID).cloned();
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.upstream.clone())
            .path_and_query(path)
            .build()
            .expect("scheme, authority and path were each valid");
        // HTTP/1.0 and HTTP/2 clients alike get a pooled HTTP/1.1 upstream connection.
        *req.version_mut() = http::Version::HTTP_11;

        match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                if let Some(id) = id {
                    parts.headers.entry(X_REQUEST_ID).or_insert(id);
                }
                Response::from_parts(parts, body.boxed())
            }
            Ok(Err(e)) => {
                // The cause goes to the log; the client learns only that the backend failed.
                tracing::warn!(error = %error_chain(&e), "upstream request failed");
                gateway_error(StatusCode::BAD_GATEWAY, "Backend unavailable", id.as_ref())
            }
            Err(_) => {
                tracing::warn!(timeout = ?UPSTREAM_TIMEOUT, "upstream did not answer in time");
                gateway_error(StatusCode::GATEWAY_TIMEOUT, "Backend timeout", id.as_ref())
            }
        }
    }
}

/// Prepares a client request before authentication.
///
/// Hop-by-hop headers go first, so that a client cannot name the identity headers in
/// `Connection` and have them dropped after the layer set them. The request ID is fixed here so
/// that a rejection, the upstream and a 502 all carry the same one. [`ConnectionInfo`] tells the
/// layer the peer and whether the connection is TLS.
pub fn prepare(mut req: Request<Incoming>, peer: SocketAddr, tls: bool) -> Request<Incoming> {
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    let id = RequestId::from_header(headers.get(X_REQUEST_ID));
    headers.insert(X_REQUEST_ID, id.to_header_value());
    if let Some(host) = headers.remove(HOST) {
        headers.insert(X_FORWARDED_HOST, host);
    }
    // Appended, not replaced: the upstream decides how far it trusts the earlier hops.
    headers.append(
        X_FORWARDED_FOR,
        HeaderValue::from_str(&peer.ip().to_string()).expect("an IP is a valid header value"),
    );
    let proto = if tls { "https" } else { "http" };
    // A client-sent X-Forwarded-Proto was read by the layer (from trusted peers only) and is
    // replaced by what this hop knows.
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    req.extensions_mut().insert(ConnectionInfo { peer, tls });
    req
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Wraps bytes as a [`ProxyBody`].
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// The layer's APIG JSON rejection, with its body boxed like the upstream's.
pub fn reject(rejection: &Rejection) -> Response<ProxyBody> {
    RejectResponse::<Full<Bytes>>::reject(&ApigJson, rejection)
        .map(|body| body.map_err(|never| match never {}).boxed())
}

/// An APIG-style error of the gateway itself (`APIG.0201`).
pub fn gateway_error(
    status: StatusCode,
    msg: &str,
    id: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    let id = RequestId::from_header(id);
    let mut res = Response::new(full(apig_error::json("APIG.0201", msg, &id)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(X_REQUEST_ID, id.to_header_value());
    res
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_listed_headers_are_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-end", HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-end"));
    }

    #[test]
    fn gateway_errors_are_apig_json_with_the_request_id() {
        let id = HeaderValue::from_static("req-7");
        let res = gateway_error(StatusCode::BAD_GATEWAY, "Backend unavailable", Some(&id));
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()[X_REQUEST_ID], "req-7");
    }
}
