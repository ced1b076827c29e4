//! A reverse proxy that lets through only requests with a valid `X-Apig-AppCode`.
//!
//! Run with
//! `cargo run --example reverse_proxy -- --upstream http://127.0.0.1:8000 --codes codes.json`
//! (optional: `--listen 127.0.0.1:8080`). The codes file is JSON, TOML or one code per line (see
//! `FileProvider`); edits take effect within about a second, without a restart.
//!
//! The upstream receives the verified caller as `X-Apig-App-Id` and `X-Apig-AppCode-Id` (any
//! such header sent by the client is replaced), never the AppCode itself. When the upstream
//! cannot be reached the client gets APIG's `502 APIG.0201` body. Ctrl-C stops accepting and
//! lets open requests finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use apig_appcode::layer::{ApigJson, ConnectionInfo, IdentityHeaders, RejectResponse, Rejection};
use apig_appcode::provider::FileProvider;
use apig_appcode::request_id::{RequestId, X_REQUEST_ID};
use apig_appcode::{apig_error, AppCodeAuthLayer};
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::{service_fn, ServiceBuilder};

const USAGE: &str = "\
usage: reverse_proxy --upstream http://HOST:PORT --codes FILE [--listen ADDR]

  --upstream URL   where authenticated requests go (plain http, no path)
  --codes FILE     AppCodes: .json, .toml, or one code per line; reloaded on change
  --listen ADDR    address to listen on (default 127.0.0.1:8080; port 0 picks a free one)";

/// How long the upstream may take to answer with headers before the client gets 504.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long open connections get to finish after Ctrl-C.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type ProxyBody = BoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<HttpConnector, Incoming>;

struct Args {
    listen: SocketAddr,
    upstream: Authority,
    codes: PathBuf,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut upstream = None;
    let mut codes = None;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--upstream" => upstream = Some(parse_upstream(&value("--upstream")?)?),
            "--codes" => codes = Some(PathBuf::from(value("--codes")?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Args {
        listen,
        upstream: upstream.ok_or("--upstream is required")?,
        codes: codes.ok_or("--codes is required")?,
    })
}

/// Only `http://host[:port][/]`: the client here speaks plain HTTP, and a base path would need
/// rules for joining paths that this example does not want to invent.
fn parse_upstream(s: &str) -> Result<Authority, String> {
    let uri: Uri = s.parse().map_err(|e| format!("--upstream {s}: {e}"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(format!(
            "--upstream {s}: only http:// upstreams are supported"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("--upstream {s}: must not have a path or query"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("--upstream {s}: no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "--upstream {s}: credentials in the URL are not supported"
        ));
    }
    Ok(authority.clone())
}

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

fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// Runs before authentication. Hop-by-hop headers go first, so that a client cannot name the
/// identity headers in `Connection` and have them dropped after the layer set them; the request
/// ID is fixed here so that a rejection, the upstream and a 502 all carry the same one.
fn prepare(mut req: Request<Incoming>, peer: SocketAddr) -> Request<Incoming> {
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
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    req.extensions_mut()
        .insert(ConnectionInfo { peer, tls: false });
    req
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// The layer's own APIG JSON answer, with its body boxed like the upstream's.
fn reject(rejection: &Rejection) -> Response<ProxyBody> {
    RejectResponse::<Full<Bytes>>::reject(&ApigJson, rejection)
        .map(|body| body.map_err(|never| match never {}).boxed())
}

/// An APIG-style error of the proxy itself.
fn gateway_error(status: StatusCode, msg: &str, id: Option<&HeaderValue>) -> Response<ProxyBody> {
    let id = RequestId::from_header(id);
    let mut res = Response::new(full(apig_error::json("APIG.0201", msg, &id)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(X_REQUEST_ID, id.to_header_value());
    res
}

async fn forward(
    client: UpstreamClient,
    upstream: Authority,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let id = req.headers().get(X_REQUEST_ID).cloned();
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(upstream)
        .path_and_query(path)
        .build()
        .expect("scheme, authority and path were each valid");
    // HTTP/1.0 clients still get an HTTP/1.1 upstream connection, which can be pooled.
    *req.version_mut() = http::Version::HTTP_11;

    match tokio::time::timeout(UPSTREAM_TIMEOUT, client.request(req)).await {
        Ok(Ok(res)) => {
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(id) = id {
                parts.headers.entry(X_REQUEST_ID).or_insert(id);
            }
            Ok(Response::from_parts(parts, body.boxed()))
        }
        Ok(Err(e)) => {
            // The cause goes to the log; the client learns only that the backend failed.
            tracing::warn!(error = %error_chain(&e), "upstream request failed");
            Ok(gateway_error(
                StatusCode::BAD_GATEWAY,
                "Backend unavailable",
                id.as_ref(),
            ))
        }
        Err(_) => {
            tracing::warn!(timeout = ?UPSTREAM_TIMEOUT, "upstream did not answer in time");
            Ok(gateway_error(
                StatusCode::GATEWAY_TIMEOUT,
                "Backend timeout",
                id.as_ref(),
            ))
        }
    }
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

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("reverse_proxy: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .init();

    // A typo in the path is better reported now than as endless 503s.
    if let Err(e) = std::fs::metadata(&args.codes) {
        eprintln!("reverse_proxy: --codes {}: {e}", args.codes.display());
        return ExitCode::FAILURE;
    }
    let auth = AppCodeAuthLayer::builder()
        .provider(FileProvider::new(&args.codes))
        .identity_headers(IdentityHeaders::default())
        .build()
        .on_reject(reject);
    if tokio::time::timeout(Duration::from_secs(5), auth.cache().loaded())
        .await
        .is_err()
    {
        // The refresher keeps retrying and has logged why; requests get 503 until it succeeds.
        tracing::warn!(codes = %args.codes.display(), "no AppCodes loaded yet; answering 503");
    }

    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.set_nodelay(true);
    let client: UpstreamClient = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("reverse_proxy: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    // On stdout and first, so a script that asked for port 0 can learn the real one.
    println!("listening on http://{addr}");
    tracing::info!(upstream = %args.upstream, codes = %args.codes.display(), "proxying");

    // Each connection holds a receiver; the sender learns when the last one is gone.
    let (shutdown, _) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Running out of file descriptors is worth a pause, not an exit.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = ServiceBuilder::new()
            .map_request(move |req| prepare(req, peer))
            .layer(auth.clone())
            .service(service_fn({
                let (client, upstream) = (client.clone(), args.upstream.clone());
                move |req| forward(client.clone(), upstream.clone(), req)
            }));
        let mut stop = shutdown.subscribe();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            // Slow clients must not hold a connection open forever without sending headers.
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    tracing::info!("shutting down; waiting for open connections");
    drop(listener);
    let _ = shutdown.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, shutdown.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; exiting anyway");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn upstream_must_be_plain_http_without_path() {
        assert!(args(&["--upstream", "http://127.0.0.1:9", "--codes", "c"]).is_ok());
        assert!(args(&["--upstream", "http://h:9/", "--codes", "c"]).is_ok());
        assert!(args(&["--upstream", "https://h:9", "--codes", "c"]).is_err());
        assert!(args(&["--upstream", "http://h:9/api", "--codes", "c"]).is_err());
        assert!(args(&["--upstream", "h:9", "--codes", "c"]).is_err());
        assert!(args(&["--codes", "c"]).is_err());
        assert!(args(&["--upstream", "http://h:9"]).is_err());
        assert!(args(&["--upstream"]).is_err());
        assert!(args(&["--listen", "nope", "--upstream", "http://h", "--codes", "c"]).is_err());
    }

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
}
