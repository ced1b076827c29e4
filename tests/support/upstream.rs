//! The upstream the gateway forwards to: an echo server over HTTP/1.1.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::SLOW_CAP;

/// The path of the requests of a load (`support/load.rs`), which the upstream answers with a
/// fixed short body: a JSON echo costs far more CPU per request (debug builds), CPU that a test
/// saturating a gateway leaves to the gateway.
pub(crate) const LOAD_PATH: &str = "/load";
pub(crate) const LOAD_ANSWER: &[u8] = b"upstream";
/// The path answered with [`BIG_LEN`] bytes, more than the sockets between a client and the
/// gateway hold: a client that reads none of it leaves the gateway's writes waiting.
pub(crate) const BIG_PATH: &str = "/big";
pub(crate) const BIG_LEN: usize = 64 << 20;
/// The path answered with [`STALL_SENT`] bytes of a body declared [`STALL_DECLARED`] long,
/// then nothing more.
pub(crate) const STALL_PATH: &str = "/stall-body";
pub(crate) const STALL_SENT: usize = 1000;
pub(crate) const STALL_DECLARED: usize = 1_000_000;
/// The path echoed [`THINK_TIME`] after its whole body has arrived.
pub(crate) const THINK_PATH: &str = "/think";
pub(crate) const THINK_TIME: Duration = Duration::from_millis(500);

/// An echo server: reads each request's body, then answers with a JSON description of it
/// (method, path and query, headers, body length). `/slow` answers only once the test calls [`Upstream::release_slow`].
/// [`LOAD_PATH`] answers 200 [`LOAD_ANSWER`] at once, neither reading the body nor echoing;
/// [`BIG_PATH`], [`STALL_PATH`] and [`THINK_PATH`] answer as their docs say.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) requests: Arc<AtomicUsize>,
    pub(crate) slow_started: Arc<AtomicUsize>,
    pub(crate) slow_gate: Arc<Semaphore>,
    pub(crate) open: Arc<AtomicUsize>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let slow_started = Arc::new(AtomicUsize::new(0));
        let slow_gate = Arc::new(Semaphore::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let state = (
            Arc::clone(&requests),
            Arc::clone(&slow_started),
            Arc::clone(&slow_gate),
        );
        let open_count = Arc::clone(&open);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (requests, slow_started, slow_gate) = state.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let slow_started = Arc::clone(&slow_started);
                    let slow_gate = Arc::clone(&slow_gate);
                    requests.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let whole = |bytes: Bytes| Response::new(Either::Left(Full::new(bytes)));
                        match req.uri().path() {
                            LOAD_PATH => return Ok(whole(Bytes::from_static(LOAD_ANSWER))),
                            BIG_PATH => return Ok(whole(Bytes::from(vec![b'b'; BIG_LEN]))),
                            STALL_PATH => {
                                let (mut part, rest) = Channel::<Bytes>::new(1);
                                tokio::spawn(async move {
                                    let first = Bytes::from(vec![b's'; STALL_SENT]);
                                    let _ = part.send_data(first).await;
                                    // Held, never sending more, for as long as a test runs.
                                    tokio::time::sleep(SLOW_CAP).await;
                                });
                                return Ok(Response::builder()
                                    .header("content-length", STALL_DECLARED)
                                    .body(Either::Right(rest))
                                    .unwrap());
                            }
                            _ => {}
                        }
                        if req.uri().path() == "/slow" {
                            slow_started.fetch_add(1, Ordering::SeqCst);
                            let _ = tokio::time::timeout(SLOW_CAP, slow_gate.acquire()).await;
                        }
                        let (parts, body) = req.into_parts();
                        // The whole body is read before answering, as most applications do.
                        let body = body.collect().await.map(|b| b.to_bytes());
                        if parts.uri.path() == THINK_PATH {
                            tokio::time::sleep(THINK_TIME).await;
                        }
                        let req = Request::from_parts(parts, ());
                        Ok::<_, Infallible>(match body {
                            Ok(body) => echo(&req, body.len()).map(Either::Left),
                            Err(_) => Response::builder()
                                .status(StatusCode::BAD_REQUEST)
                                .body(Either::Left(Full::new(Bytes::new())))
                                .unwrap(),
                        })
                    }
                });
                let open = Arc::clone(&open_count);
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            requests,
            slow_started,
            slow_gate,
            open,
            task,
        }
    }

    /// Connections from the gateway open now.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub(crate) fn slow_started(&self) -> usize {
        self.slow_started.load(Ordering::SeqCst)
    }

    /// Lets every held and future `/slow` request answer.
    pub(crate) fn release_slow(&self) {
        self.slow_gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn echo(req: &Request<()>, body_len: usize) -> Response<Full<Bytes>> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = json!({
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "body_len": body_len,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
