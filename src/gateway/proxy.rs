//! The forwarding half of the gateway: what a request looks like when it reaches the upstream,
//! and which side is blamed when it does not get there.
//!
//! [`prepare`] runs before the AppCode check. It removes hop-by-hop headers, fixes the request
//! ID, and writes the `X-Forwarded-*` headers from what this hop knows: the real authority
//! (`Host` or the HTTP/2 `:authority`, never a client-sent `X-Forwarded-Host`), the peer, and
//! the scheme (TLS, or `X-Forwarded-Proto`/`Forwarded` from a trusted proxy only). A request
//! with two `Host` headers, or an HTTP/1.1 request with none, is refused with `400`.
//!
//! `Forward` runs after it, on the worker's own upstream connections, and maps failures:
//!
//! | what happened | answer |
//! |---|---|
//! | the request body's framing is broken | `400 APIG.0201` |
//! | the request body stopped arriving | `408 APIG.0201` |
//! | the upstream refused, reset or closed | `502 APIG.0201` |
//! | the upstream did not answer in time | `504 APIG.0201` |

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{CONNECTION, CONTENT_TYPE, FORWARDED, HOST, RETRY_AFTER};
use http::uri::PathAndQuery;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use hyper::body::Incoming;
use tower_service::Service;

use super::body::ProxyBody;
use super::client_body::{ClientBody, ClientFault, Fault};
use super::metrics::WorkerMetrics;
use super::request_body::RequestBody;
use super::upstream::{UpstreamError, UpstreamPool};
use crate::apig_error;
use crate::layer::{ConnectionInfo, IpNetwork};
use crate::request_id::{RequestId, X_REQUEST_ID};

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

/// Prepares a client request before authentication; `Err` is the answer to send instead.
///
/// Hop-by-hop headers go first, so that a client cannot name the identity headers in
/// `Connection` and have them dropped after the layer set them. The request ID is fixed here so
/// that a rejection, the upstream and a 502 all carry the same one. `X-Forwarded-Proto` is set
/// to the scheme this hop trusts, which is also what the layer's HTTPS policy reads: a trusted
/// proxy's `https` survives, anyone else's is replaced.
pub(crate) fn prepare(
    mut req: Request<Incoming>,
    trusted: &[IpNetwork],
) -> Result<Request<Incoming>, BadRequest> {
    let conn = req.extensions().get::<ConnectionInfo>().copied();
    let authority = req.uri().authority().cloned();
    let version = req.version();
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    let id = RequestId::from_header(headers.get(X_REQUEST_ID));
    headers.insert(X_REQUEST_ID, id.to_header_value());
    // A tunnel has no place in a reverse proxy, and its authority-form target no path to send
    // upstream (nginx answers it 400 too).
    if req.method() == Method::CONNECT {
        return Err(BadRequest {
            msg: "Bad request: CONNECT is not supported",
            id: id.to_header_value(),
        });
    }

    let headers = req.headers_mut();
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next().cloned();
    if hosts.next().is_some() {
        return Err(BadRequest {
            msg: "Bad request: more than one Host header",
            id: id.to_header_value(),
        });
    }
    // Host stays for the layer (a signature covers it as the client sent it); `Forward` puts
    // the upstream's in its place. The target's authority wins over Host (RFC 9112 section 3.2.2); HTTP/2 has only that.
    let real = authority
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or(host);
    match real {
        Some(h) => headers.insert(X_FORWARDED_HOST, h),
        // HTTP/1.0 may go without; HTTP/1.1 must not (RFC 9112 section 3.2).
        None if version == Version::HTTP_11 => {
            return Err(BadRequest {
                msg: "Bad request: no Host header",
                id: id.to_header_value(),
            })
        }
        None => headers.remove(X_FORWARDED_HOST),
    };

    let proto = match conn {
        Some(c) if c.tls => "https",
        Some(c) if trusted.iter().any(|n| n.contains(c.peer.ip())) => {
            forwarded_proto(headers).unwrap_or("http")
        }
        _ => "http",
    };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(c) = conn {
        // Appended, not replaced: the upstream decides how far it trusts the earlier hops.
        headers.append(X_FORWARDED_FOR, ip_header(c.peer.ip()));
    }
    Ok(req)
}

/// A request [`prepare`] refuses: `400 APIG.0201` with `msg`.
#[derive(Debug)]
pub(crate) struct BadRequest {
    msg: &'static str,
    id: HeaderValue,
}

impl BadRequest {
    pub(crate) fn into_response(self) -> Response<ProxyBody> {
        tracing::info!(side = "client", "{}", self.msg);
        gateway_error(StatusCode::BAD_REQUEST, self.msg, Some(&self.id))
    }
}

/// The scheme a proxy in front claims: the last `X-Forwarded-Proto` value, else the `proto` of
/// the last `Forwarded` element (the nearest proxy writes last).
fn forwarded_proto(headers: &HeaderMap) -> Option<&'static str> {
    let scheme = |v: &str| match v.trim().trim_matches('"') {
        s if s.eq_ignore_ascii_case("https") => Some("https"),
        s if s.eq_ignore_ascii_case("http") => Some("http"),
        _ => None,
    };
    if let Some(v) = headers.get_all(X_FORWARDED_PROTO).iter().next_back() {
        return v.to_str().ok()?.rsplit(',').next().and_then(scheme);
    }
    let last = headers.get_all(FORWARDED).iter().next_back()?;
    let element = last.to_str().ok()?.rsplit(',').next()?;
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("proto").then(|| scheme(v))?
    })
}

fn ip_header(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).expect("an IP is a valid header value")
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names is cheaper than nine hashed removals.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in &listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// An APIG-style error of the gateway itself (`APIG.0201`).
pub(crate) fn gateway_error(
    status: StatusCode,
    msg: &str,
    id: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    let id = RequestId::from_header(id);
    let mut res = Response::new(ProxyBody::full(apig_error::json(
        apig_error::code::BAD_REQUEST,
        msg,
        &id,
    )));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(X_REQUEST_ID, id.to_header_value());
    res
}

/// Sends authenticated requests to the upstream over the worker's pool.
#[derive(Clone, Debug)]
pub(crate) struct Forward {
    pool: Arc<UpstreamPool>,
    host: HeaderValue,
    body_timeout: Duration,
    upstream_timeout: Duration,
    metrics: WorkerMetrics,
}

impl Forward {
    pub(crate) fn new(
        pool: Arc<UpstreamPool>,
        body_timeout: Duration,
        upstream_timeout: Duration,
        metrics: WorkerMetrics,
    ) -> Self {
        let host = HeaderValue::from_str(pool.authority().as_str())
            .expect("an authority is a valid header value");
        Self {
            pool,
            host,
            body_timeout,
            upstream_timeout,
            metrics,
        }
    }
}

impl Service<Request<RequestBody>> for Forward {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

impl Forward {
    async fn forward(self, req: Request<RequestBody>) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let id = parts.headers.get(X_REQUEST_ID).cloned();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
        // HTTP/1.0 and HTTP/2 clients alike get an HTTP/1.1 upstream connection.
        parts.version = Version::HTTP_11;
        parts.headers.insert(HOST, self.host.clone());
        let fault = Fault::default();
        let body = ClientBody::new(body, self.body_timeout, fault.clone());
        let started = Instant::now();
        let sent = self.pool.send(Request::from_parts(parts, body));
        tokio::pin!(sent);

        // The upstream's deadline runs from the end of the request body. While the client is
        // still uploading, it applies between two parts of the body the upstream takes (nginx's
        // `proxy_send_timeout`); a body that waits on the client has the client's deadline.
        let timer = tokio::time::sleep(self.upstream_timeout);
        tokio::pin!(timer);
        let mut taken = fault.progress().0;
        let outcome = loop {
            tokio::select! {
                res = &mut sent => break Some(res),
                () = &mut timer => {
                    if !fault.is_streaming() {
                        // The body ended after the timer was set: the upstream gets the whole
                        // deadline from its end.
                        match fault.ended() {
                            Some(ended) if ended.elapsed() < self.upstream_timeout => {
                                let due = ended + self.upstream_timeout;
                                timer.as_mut().reset(tokio::time::Instant::from_std(due));
                                continue;
                            }
                            _ => break None,
                        }
                    }
                    let (handed, waiting) = fault.progress();
                    if !waiting && handed == taken {
                        break None;
                    }
                    taken = handed;
                    timer.as_mut().reset(tokio::time::Instant::now() + self.upstream_timeout);
                }
            }
        };
        match outcome {
            Some(Ok(res)) => {
                self.metrics.upstream_answered(started.elapsed());
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                // The upstream's HTTP version is its hop's business; an HTTP/1.0 upstream must
                // not turn the client's keep-alive connection into HTTP/1.0.
                parts.version = Version::HTTP_11;
                if let Some(id) = id {
                    parts.headers.entry(X_REQUEST_ID).or_insert(id);
                }
                Response::from_parts(parts, ProxyBody::upstream(body))
            }
            Some(Err(e)) => failed(&e, fault.get(), id.as_ref()),
            None => {
                let what = if fault.is_streaming() {
                    "upstream took none of the request body in time"
                } else {
                    "upstream did not answer in time"
                };
                tracing::warn!(side = "upstream", timeout = ?self.upstream_timeout, "{what}");
                gateway_error(StatusCode::GATEWAY_TIMEOUT, "Backend timeout", id.as_ref())
            }
        }
    }
}

/// The answer to an exchange that failed, blaming the client when its body broke it.
fn failed(
    e: &UpstreamError,
    client: Option<ClientFault>,
    id: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    if let UpstreamError::Busy = e {
        let mut res = gateway_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many requests in progress; retry later",
            id,
        );
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    }
    match client {
        Some(ClientFault::Malformed) => {
            tracing::info!(side = "client", error = %e, "malformed request body");
            gateway_error(StatusCode::BAD_REQUEST, "Bad request: malformed body", id)
        }
        Some(ClientFault::Stalled) => {
            tracing::info!(side = "client", "request body stopped arriving");
            gateway_error(StatusCode::REQUEST_TIMEOUT, "Request body timeout", id)
        }
        Some(ClientFault::Gone) => {
            tracing::info!(
                side = "client",
                "client closed the connection while sending the body"
            );
            gateway_error(StatusCode::BAD_REQUEST, "Bad request: incomplete body", id)
        }
        None => {
            // The cause goes to the log; the client learns only that the backend failed.
            tracing::warn!(side = "upstream", error = %e, "upstream request failed");
            gateway_error(StatusCode::BAD_GATEWAY, "Backend unavailable", id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_listed_headers_are_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Hop"));
        h.append(CONNECTION, HeaderValue::from_static("x-other"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-end", HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-end"));
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed_and_others_stay() {
        for name in &HOP_BY_HOP {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            h.insert("x-end", HeaderValue::from_static("2"));
            strip_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1, "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-apig-appcode", HeaderValue::from_static("c"));
        h.insert(HOST, HeaderValue::from_static("h"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn gateway_errors_are_apig_json_with_the_request_id() {
        let id = HeaderValue::from_static("req-7");
        let res = gateway_error(StatusCode::BAD_GATEWAY, "Backend unavailable", Some(&id));
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()[X_REQUEST_ID], "req-7");
    }

    #[test]
    fn forwarded_proto_takes_the_nearest_proxys_word() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_proto(&h), None);
        h.insert(
            FORWARDED,
            HeaderValue::from_static("for=1.2.3.4;proto=http, for=5.6.7.8;proto=HTTPS"),
        );
        assert_eq!(forwarded_proto(&h), Some("https"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https, http"));
        assert_eq!(
            forwarded_proto(&h),
            Some("http"),
            "X-Forwarded-Proto first, last value"
        );
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("gopher"));
        assert_eq!(forwarded_proto(&h), None);
    }
}
