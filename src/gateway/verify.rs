//! The verify listener: auth-only mode, for a proxy that is already running and asks this
//! process whether a request may pass.
//!
//! One service answers the three common contracts, because all of them forward the original
//! request's headers and decide on the status alone:
//!
//! - nginx `auth_request` (a subrequest carrying the original headers);
//! - Caddy `forward_auth` (the original headers plus `X-Forwarded-Method`, `-Uri`, `-Proto`,
//!   `-Host`);
//! - Envoy HTTP `ext_authz` (the original headers, the path under a configured prefix).
//!
//! So any method and path is accepted, and the code is read from `X-Apig-AppCode`. A request
//! signed with an app's key and secret (with `--app-auth ...signature`) is checked against the
//! original method, path and host the proxy forwards in its headers (see [`original`]); its body
//! is not sent, so only a signature over an empty or unsigned payload can pass. The check is
//! the AppCode layer itself, around a service that only says yes: an allowed request gets `200`
//! with an empty body and the verified `X-Apig-App-Id` and `X-Apig-AppCode-Id` headers, which
//! the proxy copies upstream (nginx `auth_request_set`, Caddy `copy_headers`, Envoy
//! `allowed_upstream_headers`); a refused one gets the layer's APIG JSON error with its status
//! (400, 401, 403 or 503), exactly as the gateway would answer. With `--rate-limit`, an app over
//! its limit gets `429 APIG.0308` with `Retry-After`, counted against the same limit as its
//! requests through the gateway listener.
//!
//! The HTTPS policy is the layer's: `X-Forwarded-Proto: https` counts only from a peer in the
//! trusted proxy networks, read from the [`ConnectionInfo`](crate::layer::ConnectionInfo) the
//! connection inserts.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HOST};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use tower_layer::Layer;
use tower_service::Service;

use super::body::ProxyBody;
use tower::util::MapRequest;

use super::request_body::RequestBody;
use crate::layer::{AppCodeAuth, IdentityHeaders, SignedBody};
use crate::throttle::{Throttle, ThrottleLayer};
use crate::AppCodeAuthLayer;

/// What the verify listener serves: the hash of a signed body (empty, as nginx sends none),
/// the AppCode layer around the throttle around [`Allowed`].
pub(crate) type VerifyService = MapRequest<
    SignedBody<AppCodeAuth<Throttle<Allowed>>>,
    fn(Request<Incoming>) -> Request<RequestBody>,
>;

/// The verify listener's service, checking with `auth`, which must set `identity` headers on
/// the requests it lets through (they are copied into the answer), and charging each app to
/// `throttle`, the gateway's own: an app has one limit on a node, whichever listener it uses.
pub(crate) fn service(
    auth: &AppCodeAuthLayer,
    throttle: &ThrottleLayer,
    identity: IdentityHeaders,
) -> VerifyService {
    let checked = auth
        .signed_body_layer()
        .layer(auth.layer(throttle.layer(Allowed { identity })));
    MapRequest::new(checked, original as fn(_) -> _)
}

/// The original request line of a signed request, as the proxy forwarded it: a signature covers
/// the method, path, query and host the client sent, not the subrequest's (nginx's is
/// `HEAD /_apig_verify` to its own upstream). Read from `X-Original-Method`, `X-Original-URI`
/// (nginx, as the example sets them) or `X-Forwarded-Method`, `X-Forwarded-Uri` (Caddy), and
/// `X-Forwarded-Host`. The proxy must set them: a client's own copies would let it choose what
/// its signature is checked against. Requests without a signature keep their own.
fn original(req: Request<Incoming>) -> Request<RequestBody> {
    let mut req = req.map(RequestBody::Streamed);
    if !req.headers().contains_key(AUTHORIZATION) {
        return req;
    }
    let header = |names: [&str; 2]| {
        names
            .into_iter()
            .find_map(|n| req.headers().get(n))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let method = header(["x-original-method", "x-forwarded-method"])
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let uri =
        header(["x-original-uri", "x-forwarded-uri"]).and_then(|u| PathAndQuery::try_from(u).ok());
    let host = req.headers().get("x-forwarded-host").cloned();
    if let Some(method) = method {
        *req.method_mut() = method;
    }
    if let Some(path) = uri {
        *req.uri_mut() = Uri::from(path);
    }
    if let Some(host) = host {
        req.headers_mut().insert(HOST, host);
    }
    req
}

/// The answer to a request the layer let through: `200`, no body, and the verified identity
/// headers the layer wrote on the request.
#[derive(Debug, Clone)]
pub(crate) struct Allowed {
    identity: IdentityHeaders,
}

impl<B> Service<Request<B>> for Allowed {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut res = Response::new(ProxyBody::full(bytes::Bytes::new()));
        *res.status_mut() = StatusCode::OK;
        // The layer replaced any client-sent copies with the verified values, so what is on
        // the request now is what the proxy may trust.
        for name in [&self.identity.app_id, &self.identity.app_code_id] {
            if let Some(value) = req.headers().get(name) {
                res.headers_mut().insert(name.clone(), value.clone());
            }
        }
        ready(Ok(res))
    }
}
