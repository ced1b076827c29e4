//! A plain HTTP/1 client: one new connection a request, every exchange bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::REQUEST_TIMEOUT;

/// A response read to the end.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// What the echo upstream received, from its answer.
    pub(crate) fn upstream_headers(&self) -> BTreeMap<String, Vec<String>> {
        serde_json::from_value(self.json()["headers"].clone()).unwrap()
    }

    #[track_caller]
    pub(crate) fn assert_apig_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.json()["error_code"], code, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

pub(crate) fn get(path: &str) -> Request<Full<Bytes>> {
    request(Method::GET, path, Bytes::new())
}

pub(crate) fn request(method: Method, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .unwrap()
}

/// Sends `req` over a new HTTP/1.1 connection on `io`, with `Host: {host}`.
pub(crate) async fn send_over<IO>(
    io: IO,
    host: &str,
    mut req: Request<Full<Bytes>>,
) -> Result<Resp, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    req.headers_mut()
        .insert(http::header::HOST, host.parse().unwrap());
    let exchange = async move {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

/// Sends `req` to `addr` over a new plain connection.
pub(crate) async fn try_send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Resp, String> {
    let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    send_over(stream, &addr.to_string(), req).await
}

pub(crate) async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Resp {
    try_send(addr, req)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
}

/// `GET path` on the gateway, with `X-Apig-AppCode: code` if given.
pub(crate) async fn call_gateway(gateway: SocketAddr, path: &str, code: Option<&str>) -> Resp {
    let mut req = get(path);
    if let Some(code) = code {
        req.headers_mut()
            .insert("x-apig-appcode", code.parse().unwrap());
    }
    send(gateway, req).await
}

/// The status the gateway answers for `code`, or `None` if it could not be reached.
pub(crate) async fn gateway_status(gateway: SocketAddr, code: &str) -> Option<StatusCode> {
    let mut req = get("/orders");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    try_send(gateway, req).await.ok().map(|r| r.status)
}

/// Whether a new connection to `addr` is refused (nothing listens there any more).
pub(crate) async fn is_refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
