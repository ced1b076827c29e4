//! The harness of the tests that run the `apig-appcode` binary: the child process, an echo
//! upstream, plain HTTP/1 clients, and the management API.
//!
//! Every wait polls against a deadline; nothing asserts on elapsed time.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use apig_appcode::gateway::config::{DEFAULT_INSTANCE_ID, DEFAULT_PROJECT_ID};
use apig_appcode::signature::{self, SecretKey};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_apig-appcode");

/// Generous: two cores are shared with parallel tests and other builds.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a line the server logs may take to reach the test through its stderr pipe.
pub(crate) const LOG_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change made through one server may take to reach another's gateway.
pub(crate) const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the upstream holds a `/slow` request if the test never releases it.
pub(crate) const SLOW_CAP: Duration = Duration::from_secs(30);

/// A read-write admin token passed on the command line.
pub(crate) const TOKEN: &str = "test-admin-token-0123456789";

// ---------------------------------------------------------------------------------------------
// Waiting

#[path = "wait.rs"]
mod wait;
pub(crate) use wait::wait_until;

#[path = "finished.rs"]
mod finished;
// Only the tests that run the CLI to its end use it.
#[allow(unused_imports)]
pub(crate) use finished::Finished;

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process whose stdout and stderr two threads collect. Killed (SIGKILL) on drop, and
/// its stderr printed then if the test is panicking.
pub(crate) struct Proc {
    pub(crate) child: Child,
    /// The program, to name the stderr printed on a panic.
    pub(crate) program: String,
    pub(crate) stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
    pub(crate) readers: Vec<JoinHandle<()>>,
}

impl Proc {
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting apig-appcode");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Self {
            child,
            program,
            stdout,
            stderr,
            readers,
        }
    }

    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (a name such as `TERM`) with the `kill` command.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The exit status, once the process has exited and its output has been read to the end.
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("try_wait")?;
        // The pipes are closed once the process is gone: the readers end.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Some(status)
    }

    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit in time; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // What the readers collected so far: they are not joined (a grandchild may still
            // hold the pipes).
            eprintln!(
                "stderr of {} (pid {}):\n{}",
                self.program,
                self.child.id(),
                self.stderr()
            );
        }
    }
}

/// Appends everything `pipe` yields to `into`, line by line, until it closes.
pub(crate) fn collect(
    pipe: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        let mut line = String::new();
        while matches!(pipe.read_line(&mut line), Ok(n) if n > 0) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    })
}

/// `apig-appcode serve ARGS`, with no `APIG_*` or `RUST_LOG` variable of ours leaking in.
pub(crate) fn serve_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("APIG_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The flags every server here needs: the upstream, ports 0, the database in `dir`.
pub(crate) fn base_args(upstream: &Upstream, dir: &Path) -> Vec<String> {
    serve_args(&upstream.url(), &database_url(dir))
}

/// The upstream at `upstream_url`, ports 0, the database at `database_url` (SQLite or
/// PostgreSQL).
pub(crate) fn serve_args(upstream_url: &str, database_url: &str) -> Vec<String> {
    vec![
        "--upstream".into(),
        upstream_url.into(),
        "--gateway-listen".into(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--database".into(),
        database_url.into(),
    ]
}

pub(crate) fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", database_path(dir).display())
}

pub(crate) fn database_path(dir: &Path) -> PathBuf {
    dir.join("db")
}

/// Runs a command that is expected to stop by itself; returns its status, stdout and stderr.
pub(crate) async fn run_to_exit(cmd: Command) -> (ExitStatus, String, String) {
    let mut proc = Proc::spawn(cmd);
    let status = proc.wait_exit(EXIT_TIMEOUT).await;
    (status, proc.stdout(), proc.stderr())
}

/// A new self-signed certificate for `localhost` and its key, written as PEM files
/// `cert.pem` and `key.pem` in `dir`; returns their paths and the certificate.
pub(crate) fn self_signed(dir: &Path) -> (PathBuf, PathBuf, rcgen::CertifiedKey) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    (cert, key, generated)
}

/// A running `apig-appcode serve`.
pub(crate) struct Server {
    pub(crate) proc: Proc,
    pub(crate) gateway: SocketAddr,
    pub(crate) admin: SocketAddr,
}

/// A server that exited before it was listening.
#[derive(Debug)]
pub(crate) struct Exited {
    pub(crate) status: ExitStatus,
    pub(crate) stderr: String,
}

impl Server {
    /// Starts `cmd`, waits for both "listening" lines on stdout, then for `/readyz` to say 200.
    pub(crate) async fn start(cmd: Command) -> Result<Self, Exited> {
        let mut proc = Proc::spawn(cmd);
        let deadline = Instant::now() + START_TIMEOUT;
        let (gateway, admin) = loop {
            if let Some(status) = proc.try_exit() {
                return Err(Exited {
                    status,
                    stderr: proc.stderr(),
                });
            }
            let out = proc.stdout();
            if let (Some(g), Some(a)) = (
                listening(&out, "gateway listening on "),
                listening(&out, "admin listening on "),
            ) {
                break (g, a);
            }
            assert!(
                Instant::now() < deadline,
                "the server did not report its listeners; stdout:\n{out}\nstderr:\n{}",
                proc.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let server = Self {
            proc,
            gateway,
            admin,
        };
        wait_until(START_TIMEOUT, "/readyz answers 200", || async {
            let res = try_send(server.admin, get("/readyz")).await.ok()?;
            (res.status == StatusCode::OK).then_some(())
        })
        .await;
        Ok(server)
    }

    pub(crate) fn stdout(&self) -> String {
        self.proc.stdout()
    }

    pub(crate) fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// The stderr collected so far, once it holds every one of `needles`. A thread collects the
    /// pipe, so a line logged before a response can still reach the test after it: log lines
    /// are waited for, not expected at once. Panics with what was collected after the bound.
    pub(crate) async fn stderr_containing(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let stderr = self.stderr();
            if needles.iter().all(|n| stderr.contains(n)) {
                return stderr;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never held all of {needles:?}:\n{stderr}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGTERM, then the exit status (bounded).
    pub(crate) async fn stop(mut self) -> ExitStatus {
        self.proc.signal("TERM");
        self.proc.wait_exit(EXIT_TIMEOUT).await
    }

    /// SIGKILL: no chance to flush or clean up anything.
    pub(crate) fn kill_9(mut self) {
        self.proc.child.kill().expect("kill -9");
        let _ = self.proc.child.wait();
    }
}

/// The address in a line `{prefix}http(s)://ADDR` of `out`.
pub(crate) fn listening(out: &str, prefix: &str) -> Option<SocketAddr> {
    let line = out.lines().find_map(|l| l.strip_prefix(prefix))?;
    let (_, addr) = line.split_once("://")?;
    addr.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The upstream

/// The path of the requests of a load (`support/load.rs`), which the upstream answers with a
/// fixed short body: a JSON echo costs far more CPU per request (debug builds), CPU that a test
/// saturating a gateway leaves to the gateway.
pub(crate) const LOAD_PATH: &str = "/load";
pub(crate) const LOAD_ANSWER: &[u8] = b"upstream";

/// An echo server: reads each request's body, then answers with a JSON description of it
/// (method, path and query, headers, body length). `/slow` answers only once the test calls [`Upstream::release_slow`].
/// [`LOAD_PATH`] answers 200 [`LOAD_ANSWER`] at once, neither reading the body nor echoing.
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
                        if req.uri().path() == LOAD_PATH {
                            return Ok(Response::new(Full::new(Bytes::from_static(LOAD_ANSWER))));
                        }
                        if req.uri().path() == "/slow" {
                            slow_started.fetch_add(1, Ordering::SeqCst);
                            let _ = tokio::time::timeout(SLOW_CAP, slow_gate.acquire()).await;
                        }
                        let (parts, body) = req.into_parts();
                        // The whole body is read before answering, as most applications do.
                        let body = body.collect().await.map(|b| b.to_bytes());
                        let req = Request::from_parts(parts, ());
                        Ok::<_, Infallible>(match body {
                            Ok(body) => echo(&req, body.len()),
                            Err(_) => Response::builder()
                                .status(StatusCode::BAD_REQUEST)
                                .body(Full::new(Bytes::new()))
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

// ---------------------------------------------------------------------------------------------
// HTTP clients

/// Reads one HTTP/1.1 response with a `content-length` (head and body) from `stream`, starting
/// with the bytes in `carry`; what follows it (pipelined responses) is left in `carry`.
pub(crate) async fn read_response_from<T: AsyncRead + Unpin>(
    stream: &mut T,
    carry: &mut Vec<u8>,
) -> (StatusCode, String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&carry[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a content-length");
            if carry.len() >= end + 4 + len {
                let status = head.split(' ').nth(1).unwrap().parse::<u16>().unwrap();
                let body = carry[end + 4..end + 4 + len].to_vec();
                carry.drain(..end + 4 + len);
                return (StatusCode::from_u16(status).unwrap(), head, body);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("reading the response");
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(carry)
        );
        carry.extend_from_slice(&buf[..n]);
    }
}

/// Drives one keep-alive connection (plain or TLS, HTTP/1.1) through requests separated by
/// waits with nothing in progress, long enough for the gateway to release the connection's
/// buffers (a second), and checks every answer: pipelined requests after a wait, a request
/// whose head or body is split by a wait, a request with a body then a wait, and
/// `Connection: close` after a wait. `code` is a valid AppCode.
pub(crate) async fn idle_waits_between_requests<T>(conn: &mut T, code: &str)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let wait = || tokio::time::sleep(Duration::from_millis(1200));
    let get = |path: &str, code: Option<&str>| {
        let code = code.map_or(String::new(), |c| format!("X-Apig-AppCode: {c}\r\n"));
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{code}\r\n")
    };
    let post = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nX-Apig-AppCode: {code}\r\nContent-Length: 5\r\n\r\n")
    };
    let mut carry = Vec::new();
    let send = async |conn: &mut T, bytes: &[u8]| conn.write_all(bytes).await.unwrap();
    let mut expect = async |conn: &mut T, status: StatusCode, path: Option<&str>| {
        let (got, head, body) = read_response_from(conn, &mut carry).await;
        assert_eq!(got, status, "{head}");
        if let Some(path) = path {
            let echo: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(echo["path"], path, "{echo}");
            echo["body_len"].as_u64()
        } else {
            None
        }
    };

    send(conn, get("/first", Some(code)).as_bytes()).await;
    expect(conn, StatusCode::OK, Some("/first")).await;
    wait().await;

    // Three requests in one write, the second without a code: answered in order.
    let batch = [
        get("/p1", Some(code)),
        get("/p2", None),
        get("/p3", Some(code)),
    ];
    send(conn, batch.concat().as_bytes()).await;
    expect(conn, StatusCode::OK, Some("/p1")).await;
    expect(conn, StatusCode::UNAUTHORIZED, None).await;
    expect(conn, StatusCode::OK, Some("/p3")).await;
    wait().await;

    // A head split by a wait, its second half sent with the whole next request.
    let split = get("/split", Some(code));
    let (first_half, second_half) = split.split_at(split.len() / 2);
    send(conn, first_half.as_bytes()).await;
    wait().await;
    send(
        conn,
        [second_half, &get("/after-split", Some(code))]
            .concat()
            .as_bytes(),
    )
    .await;
    expect(conn, StatusCode::OK, Some("/split")).await;
    expect(conn, StatusCode::OK, Some("/after-split")).await;

    // A body split by a wait; then a request with a body after a wait.
    send(conn, format!("{}he", post("/body")).as_bytes()).await;
    wait().await;
    send(conn, b"llo").await;
    assert_eq!(expect(conn, StatusCode::OK, Some("/body")).await, Some(5));
    wait().await;
    send(conn, format!("{}hello", post("/body-again")).as_bytes()).await;
    assert_eq!(
        expect(conn, StatusCode::OK, Some("/body-again")).await,
        Some(5)
    );
    wait().await;

    // `Connection: close` after a wait: answered, then closed.
    let last = get("/last", Some(code)).replace("Host: x\r\n", "Host: x\r\nConnection: close\r\n");
    send(conn, last.as_bytes()).await;
    expect(conn, StatusCode::OK, Some("/last")).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio::io::AsyncReadExt::read_to_end(conn, &mut rest),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))) && carry.is_empty(),
        "not closed after Connection: close: {read:?} {carry:?}"
    );
}

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

/// The value of the sample `name` (a full name, labels included) in a Prometheus text.
pub(crate) fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

pub(crate) async fn metrics(server: &Server) -> String {
    let res = send(server.admin, get("/metrics")).await;
    assert_eq!(res.status, StatusCode::OK);
    res.text()
}

pub(crate) fn apps_path() -> String {
    format!("/v2/{DEFAULT_PROJECT_ID}/apigw/instances/{DEFAULT_INSTANCE_ID}/apps")
}

/// Server with `--admin-token TOKEN` plus `extra` flags.
pub(crate) async fn start_with_token(upstream: &Upstream, dir: &Path, extra: &[&str]) -> Server {
    let mut args = base_args(upstream, dir);
    args.extend(["--admin-token".into(), TOKEN.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start(serve_command(&args)).await.unwrap()
}
