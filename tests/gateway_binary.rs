//! The `apig-appcode` binary end to end: real processes, real sockets, a real SQLite file.
//!
//! Each test starts the binary on ports 0 with its own temporary directory and an in-test
//! upstream (a hyper server that echoes what it received), and talks to both listeners over
//! HTTP (or HTTPS). Every wait polls against a deadline; nothing asserts on elapsed time.
//!
//! Run: `cargo test --features gateway --test gateway_binary`.
#![cfg(all(feature = "gateway", unix))]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use apig_appcode::admin::signature::{self, SecretKey};
use apig_appcode::gateway::config::{DEFAULT_INSTANCE_ID, DEFAULT_PROJECT_ID};
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
use tokio_rustls::rustls;

const BIN: &str = env!("CARGO_BIN_EXE_apig-appcode");

/// Generous: two cores are shared with parallel tests and other builds.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a change made through one server may take to reach another's gateway.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the upstream holds a `/slow` request if the test never releases it.
const SLOW_CAP: Duration = Duration::from_secs(30);

/// A read-write admin token passed on the command line.
const TOKEN: &str = "test-admin-token-0123456789";

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `check` every 25 ms until it returns `Some`, panicking with `what` after `timeout`.
async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process whose stdout and stderr two threads collect. Killed (SIGKILL) on drop.
struct Proc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Self {
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
            stdout,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (a name such as `TERM`) with the `kill` command.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The exit status, once the process has exited and its output has been read to the end.
    fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("try_wait")?;
        // The pipes are closed once the process is gone: the readers end.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Some(status)
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
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
    }
}

/// Appends everything `pipe` yields to `into`, line by line, until it closes.
fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
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
fn serve_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
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
fn base_args(upstream: &Upstream, dir: &Path) -> Vec<String> {
    vec![
        "--upstream".into(),
        upstream.url(),
        "--gateway-listen".into(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--database".into(),
        database_url(dir),
    ]
}

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", database_path(dir).display())
}

fn database_path(dir: &Path) -> PathBuf {
    dir.join("db")
}

/// Runs a command that is expected to stop by itself; returns its status, stdout and stderr.
async fn run_to_exit(cmd: Command) -> (ExitStatus, String, String) {
    let mut proc = Proc::spawn(cmd);
    let status = proc.wait_exit(EXIT_TIMEOUT).await;
    (status, proc.stdout(), proc.stderr())
}

/// A running `apig-appcode serve`.
struct Server {
    proc: Proc,
    gateway: SocketAddr,
    admin: SocketAddr,
}

/// A server that exited before it was listening.
#[derive(Debug)]
struct Exited {
    status: ExitStatus,
    stderr: String,
}

impl Server {
    /// Starts `cmd`, waits for both "listening" lines on stdout, then for `/readyz` to say 200.
    async fn start(cmd: Command) -> Result<Self, Exited> {
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

    fn stdout(&self) -> String {
        self.proc.stdout()
    }

    fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// SIGTERM, then the exit status (bounded).
    async fn stop(mut self) -> ExitStatus {
        self.proc.signal("TERM");
        self.proc.wait_exit(EXIT_TIMEOUT).await
    }

    /// SIGKILL: no chance to flush or clean up anything.
    fn kill_9(mut self) {
        self.proc.child.kill().expect("kill -9");
        let _ = self.proc.child.wait();
    }
}

/// The address in a line `{prefix}http(s)://ADDR` of `out`.
fn listening(out: &str, prefix: &str) -> Option<SocketAddr> {
    let line = out.lines().find_map(|l| l.strip_prefix(prefix))?;
    let (_, addr) = line.split_once("://")?;
    addr.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The upstream

/// An echo server: answers every request with a JSON description of it (method, path and
/// query, headers). `/slow` answers only once the test calls [`Upstream::release_slow`].
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    slow_started: Arc<AtomicUsize>,
    slow_gate: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let slow_started = Arc::new(AtomicUsize::new(0));
        let slow_gate = Arc::new(Semaphore::new(0));
        let state = (
            Arc::clone(&requests),
            Arc::clone(&slow_started),
            Arc::clone(&slow_gate),
        );
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
                        if req.uri().path() == "/slow" {
                            slow_started.fetch_add(1, Ordering::SeqCst);
                            let _ = tokio::time::timeout(SLOW_CAP, slow_gate.acquire()).await;
                        }
                        Ok::<_, Infallible>(echo(&req))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self {
            addr,
            requests,
            slow_started,
            slow_gate,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn slow_started(&self) -> usize {
        self.slow_started.load(Ordering::SeqCst)
    }

    /// Lets every held and future `/slow` request answer.
    fn release_slow(&self) {
        self.slow_gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn echo(req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// HTTP clients

/// A response read to the end.
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// What the echo upstream received, from its answer.
    fn upstream_headers(&self) -> BTreeMap<String, Vec<String>> {
        serde_json::from_value(self.json()["headers"].clone()).unwrap()
    }

    #[track_caller]
    fn assert_apig_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.json()["error_code"], code, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    request(Method::GET, path, Bytes::new())
}

fn request(method: Method, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .unwrap()
}

/// Sends `req` over a new HTTP/1.1 connection on `io`, with `Host: {host}`.
async fn send_over<IO>(io: IO, host: &str, mut req: Request<Full<Bytes>>) -> Result<Resp, String>
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
async fn try_send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Resp, String> {
    let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    send_over(stream, &addr.to_string(), req).await
}

async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Resp {
    try_send(addr, req)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
}

/// `GET path` on the gateway, with `X-Apig-AppCode: code` if given.
async fn call_gateway(gateway: SocketAddr, path: &str, code: Option<&str>) -> Resp {
    let mut req = get(path);
    if let Some(code) = code {
        req.headers_mut()
            .insert("x-apig-appcode", code.parse().unwrap());
    }
    send(gateway, req).await
}

/// The status the gateway answers for `code`, or `None` if it could not be reached.
async fn gateway_status(gateway: SocketAddr, code: &str) -> Option<StatusCode> {
    let mut req = get("/orders");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    try_send(gateway, req).await.ok().map(|r| r.status)
}

/// Whether a new connection to `addr` is refused (nothing listens there any more).
async fn is_refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// The management API with an `X-Auth-Token`, on one project and instance.
struct Admin {
    addr: SocketAddr,
    token: String,
    base: String,
}

impl Admin {
    fn new(addr: SocketAddr, token: &str) -> Self {
        Self::scoped(addr, token, DEFAULT_PROJECT_ID, DEFAULT_INSTANCE_ID)
    }

    fn scoped(addr: SocketAddr, token: &str, project: &str, instance: &str) -> Self {
        Self {
            addr,
            token: token.to_owned(),
            base: format!("/v2/{project}/apigw/instances/{instance}"),
        }
    }

    /// `method {base}{path}` with the token and, if given, a JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = request(method, &format!("{}{path}", self.base), bytes);
        let headers = req.headers_mut();
        headers.insert("x-auth-token", self.token.parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        send(self.addr, req).await
    }

    /// Creates an app; returns its ID.
    async fn create_app(&self, name: &str) -> String {
        let res = self
            .call(Method::POST, "/apps", Some(json!({"name": name})))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()["id"].as_str().unwrap().to_owned()
    }

    /// Auto-generates an AppCode; returns its ID and value.
    async fn generate_code(&self, app_id: &str) -> (String, String) {
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

    async fn delete_code(&self, app_id: &str, code_id: &str) {
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
    async fn app_with_code(&self, name: &str) -> (String, String, String) {
        let app = self.create_app(name).await;
        let (code_id, code) = self.generate_code(&app).await;
        (app, code_id, code)
    }
}

/// A management call signed with SDK-HMAC-SHA256 as the official SDK signs it.
async fn signed_call(
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
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn metrics(server: &Server) -> String {
    let res = send(server.admin, get("/metrics")).await;
    assert_eq!(res.status, StatusCode::OK);
    res.text()
}

fn apps_path() -> String {
    format!("/v2/{DEFAULT_PROJECT_ID}/apigw/instances/{DEFAULT_INSTANCE_ID}/apps")
}

/// Server with `--admin-token TOKEN` plus `extra` flags.
async fn start_with_token(upstream: &Upstream, dir: &Path, extra: &[&str]) -> Server {
    let mut args = base_args(upstream, dir);
    args.extend(["--admin-token".into(), TOKEN.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start(serve_command(&args)).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. First run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_writes_a_private_token_file_and_later_runs_reuse_it() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = apig_appcode::gateway::token_path(&database_path(dir.path()));
    assert_eq!(token_file, dir.path().join("db.admin-token"));

    let server = Server::start(serve_command(&base_args(&upstream, dir.path())))
        .await
        .unwrap();
    let token = std::fs::read_to_string(&token_file).unwrap();
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    assert!(token.trim().len() >= 16);

    let out = server.stdout();
    assert!(out.contains(&token_file.display().to_string()), "{out}");
    assert!(out.contains("X-Auth-Token"), "{out}");
    // The hint names the address really bound, not the configured port 0.
    assert!(
        out.contains(&format!("http://{}{}", server.admin, apps_path())),
        "{out}"
    );
    assert!(!out.contains(token.trim()), "the token was printed");
    assert!(
        !server.stderr().contains(token.trim()),
        "the token was logged"
    );
    let res = Admin::new(server.admin, token.trim())
        .call(Method::GET, "/apps", None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(server.stop().await.success());

    let second = Server::start(serve_command(&base_args(&upstream, dir.path())))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert!(
        !second.stdout().contains("created an admin token"),
        "{}",
        second.stdout()
    );
    let res = Admin::new(second.admin, token.trim())
        .call(Method::GET, "/apps", None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

// ---------------------------------------------------------------------------------------------
// 2. The quickstart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_create_call_reject_delete_over_http() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(serve_command(&base_args(&upstream, dir.path())))
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("db.admin-token")).unwrap();
    let admin = Admin::new(server.admin, token.trim());

    let app = admin.create_app("shop").await;
    let (code_id, code) = admin.generate_code(&app).await;
    assert_eq!(code.len(), 64);

    let res = call_gateway(server.gateway, "/orders?page=2", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["method"], "GET");
    assert_eq!(res.json()["path"], "/orders?page=2");
    let seen = res.upstream_headers();
    assert_eq!(seen["x-apig-app-id"], [app.as_str()]);
    assert_eq!(seen["x-apig-appcode-id"], [code_id.as_str()]);
    assert!(!seen.contains_key("x-apig-appcode"), "{seen:?}");
    assert!(res.header("x-request-id").is_some());

    let before = upstream.requests();
    let res = call_gateway(server.gateway, "/orders", None).await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    assert!(res.json()["error_msg"]
        .as_str()
        .unwrap()
        .ends_with("AppCode missing"));
    assert_eq!(res.header("www-authenticate"), Some("AppCode"));
    assert_eq!(
        res.json()["request_id"].as_str(),
        res.header("x-request-id")
    );

    admin.delete_code(&app, &code_id).await;
    let res = call_gateway(server.gateway, "/orders", Some(&code)).await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    assert_eq!(
        upstream.requests(),
        before,
        "a rejected request was forwarded"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Configuration: environment, TOML file, bad values, secrets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_configure_the_whole_server() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let project = "0123456789abcdef0123456789abcdef";
    let instance = "fedcba9876543210fedcba9876543210";
    let mut cmd = serve_command::<&str>(&[]);
    cmd.env("APIG_UPSTREAM", upstream.url())
        .env("APIG_GATEWAY_LISTEN", "127.0.0.1:0")
        .env("APIG_ADMIN_LISTEN", "127.0.0.1:0")
        .env("APIG_DATABASE", database_url(dir.path()))
        .env("APIG_ADMIN_TOKEN", TOKEN)
        .env("APIG_PROJECT_ID", project)
        .env("APIG_INSTANCE_ID", instance)
        .env("APIG_LOG_FORMAT", "json");
    let server = Server::start(cmd).await.unwrap();
    assert!(
        !dir.path().join("db.admin-token").exists(),
        "credentials were configured: no token file"
    );

    let admin = Admin::scoped(server.admin, TOKEN, project, instance);
    let (app, _, code) = admin.app_with_code("env_app").await;
    let res = call_gateway(server.gateway, "/x", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.upstream_headers()["x-apig-app-id"], [app]);
    // The token is granted on APIG_PROJECT_ID only.
    let other = Admin::scoped(server.admin, TOKEN, DEFAULT_PROJECT_ID, instance);
    other
        .call(Method::GET, "/apps", None)
        .await
        .assert_apig_error(StatusCode::FORBIDDEN, "APIG.1005");

    let stderr = server.stderr();
    assert!(stderr.lines().any(|l| !l.trim().is_empty()));
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("APIG_LOG_FORMAT=json, yet ({e}): {line}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_file_with_read_only_token_and_access_key() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let read_only = "read-only-token-0123456789";
    let ak_sk = ("TESTACCESSKEY01", "test-secret-key-0123456789");
    let config = dir.path().join("apig.toml");
    std::fs::write(
        &config,
        format!(
            r#"
upstream = "{upstream}"
gateway_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
database = "{database}"

[[tokens]]
token = "{read_only}"
projects = ["*"]
role = "read-only"

[[access_keys]]
access_key = "{ak}"
secret_key = "{sk}"
projects = ["{DEFAULT_PROJECT_ID}"]
role = "read-write"
"#,
            upstream = upstream.url(),
            database = database_url(dir.path()),
            ak = ak_sk.0,
            sk = ak_sk.1,
        ),
    )
    .unwrap();
    let server = Server::start(serve_command(&["--config", config.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(!dir.path().join("db.admin-token").exists());

    let viewer = Admin::new(server.admin, read_only);
    assert_eq!(
        viewer.call(Method::GET, "/apps", None).await.status,
        StatusCode::OK
    );
    viewer
        .call(Method::POST, "/apps", Some(json!({"name": "refused"})))
        .await
        .assert_apig_error(StatusCode::FORBIDDEN, "APIG.1005");

    let res = signed_call(
        server.admin,
        Method::POST,
        &apps_path(),
        Some(json!({"name": "signed_app"})),
        ak_sk,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let app = res.json()["id"].as_str().unwrap().to_owned();
    let res = signed_call(
        server.admin,
        Method::PUT,
        &format!("{}/{app}/app-codes", apps_path()),
        None,
        ak_sk,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let code = res.json()["app_code"].as_str().unwrap().to_owned();

    let res = call_gateway(server.gateway, "/x", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = viewer
        .call(Method::GET, &format!("/apps/{app}/app-codes"), None)
        .await;
    assert_eq!(res.json()["total"], 1, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flag_values_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let up = "http://127.0.0.1:9";
    let cases: [(&[&str], &str); 6] = [
        (
            &["--upstream", up, "--gateway-listen", "nowhere"],
            "--gateway-listen",
        ),
        (
            &["--upstream", up, "--refresh-interval", "soon"],
            "--refresh-interval",
        ),
        (&["--upstream", up, "--log-format", "xml"], "--log-format"),
        (
            &["--upstream", up, "--trusted-proxy", "10.0.0.0/99"],
            "--trusted-proxy",
        ),
        (&["--upstream", "https://127.0.0.1:9"], "--upstream"),
        (
            &["--upstream", up, "--database", "mysql://db"],
            "--database",
        ),
    ];
    for (args, flag) in cases {
        let mut cmd = serve_command(args);
        cmd.current_dir(dir.path());
        let (status, stdout, stderr) = run_to_exit(cmd).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?}: stderr does not name {flag}: {stderr}"
        );
        assert!(!stdout.contains("listening"), "{args:?}: {stdout}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a refused configuration created files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_given_as_flags_never_reach_stdout_or_stderr() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = "flag-admin-token-5e0d3c1a9b";
    let secret_key = "flag-secret-key-77a1f4c2d8";
    let master_key = "8f3a".repeat(16);
    let mut args = base_args(&upstream, dir.path());
    args.extend(
        [
            "--admin-token",
            token,
            "--access-key",
            "FLAGACCESSKEY",
            "--secret-key",
            secret_key,
            "--master-key",
            &master_key,
            "--log",
            "trace",
        ]
        .map(String::from),
    );
    let server = Server::start(serve_command(&args)).await.unwrap();
    let admin = Admin::new(server.admin, token);
    let (_, _, code) = admin.app_with_code("secret_app").await;
    assert_eq!(
        call_gateway(server.gateway, "/x", Some(&code)).await.status,
        StatusCode::OK
    );
    let res = signed_call(
        server.admin,
        Method::GET,
        &apps_path(),
        None,
        ("FLAGACCESSKEY", secret_key),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Rejections are logged too.
    Admin::new(server.admin, "wrong-token-0123456789")
        .call(Method::GET, "/apps", None)
        .await;
    call_gateway(server.gateway, "/x", Some(&code.replace('a', "b"))).await;
    let mut output = server.stdout();
    output.push_str(&server.stderr());
    let mut proc = server.proc;
    proc.signal("TERM");
    assert!(proc.wait_exit(EXIT_TIMEOUT).await.success());
    output.push_str(&proc.stdout());
    output.push_str(&proc.stderr());
    for secret in [token, secret_key, &master_key, &code] {
        assert!(!output.contains(secret), "a secret was printed:\n{output}");
    }

    // Refused starts do not echo them either.
    let up = upstream.url();
    let refused: [(&[&str], &str); 6] = [
        (
            &[
                "--upstream",
                &up,
                "--admin-token",
                token,
                "--gateway-listen",
                "x",
            ],
            token,
        ),
        (
            &["--upstream", &up, "--admin-token", "short-secret"],
            "short-secret",
        ),
        (&["--upstream", &up, "--secret-key", secret_key], secret_key),
        (
            &[
                "--upstream",
                &up,
                "--database",
                &database_url(dir.path()),
                "--master-key",
                "not-a-valid-key-but-secret",
            ],
            "not-a-valid-key-but-secret",
        ),
        (
            &["--upstream", "http://user:upstream-pw@127.0.0.1:9"],
            "upstream-pw",
        ),
        (
            &["--upstream", "https://user:upstream-pw@127.0.0.1:9"],
            "upstream-pw",
        ),
    ];
    for (args, secret) in refused {
        let mut cmd = serve_command(args);
        cmd.current_dir(dir.path());
        let (status, stdout, stderr) = run_to_exit(cmd).await;
        assert!(!status.success(), "{args:?}");
        assert!(!stderr.is_empty(), "{args:?}: no explanation");
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{args:?} echoed its secret:\n{stdout}\n{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Persistence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appcode_survives_kill_9_and_restart() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let (app, code_id, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("durable")
        .await;
    server.kill_9();

    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let res = call_gateway(server.gateway, "/after-crash", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let seen = res.upstream_headers();
    assert_eq!(seen["x-apig-app-id"], [app]);
    assert_eq!(seen["x-apig-appcode-id"], [code_id]);
}

// ---------------------------------------------------------------------------------------------
// 5. Two servers, one database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_sqlite_file_see_each_others_changes() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_with_token(&upstream, dir.path(), &["--refresh-interval", "1"]).await;
    let b = start_with_token(&upstream, dir.path(), &["--refresh-interval", "1"]).await;
    let admin_a = Admin::new(a.admin, TOKEN);
    let b_gateway = b.gateway;

    let (app, code_id, code) = admin_a.app_with_code("shared").await;
    wait_until(
        PROPAGATION_TIMEOUT,
        "B accepts a code created via A",
        || {
            let code = code.clone();
            async move { (gateway_status(b_gateway, &code).await? == StatusCode::OK).then_some(()) }
        },
    )
    .await;

    // A code B was asked for before it existed (B remembers it as unknown for a while) is
    // accepted once a reload brings it.
    let early = format!("EarlyCode{}", "e".repeat(60));
    assert_eq!(
        gateway_status(b.gateway, &early).await,
        Some(StatusCode::UNAUTHORIZED)
    );
    let res = admin_a
        .call(
            Method::POST,
            &format!("/apps/{app}/app-codes"),
            Some(json!({"app_code": early})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    wait_until(PROPAGATION_TIMEOUT, "B accepts a code it had refused", || {
        let early = early.clone();
        async move { (gateway_status(b_gateway, &early).await? == StatusCode::OK).then_some(()) }
    })
    .await;

    admin_a.delete_code(&app, &code_id).await;
    assert_eq!(
        gateway_status(a.gateway, &code).await,
        Some(StatusCode::UNAUTHORIZED)
    );
    wait_until(
        PROPAGATION_TIMEOUT,
        "B rejects a code deleted via A",
        || {
            let code = code.clone();
            async move {
                (gateway_status(b_gateway, &code).await? == StatusCode::UNAUTHORIZED).then_some(())
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. Graceful shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let (_, _, code) = Admin::new(server.admin, TOKEN).app_with_code("drain").await;
    let (gateway, admin) = (server.gateway, server.admin);

    let in_flight = tokio::spawn({
        let code = code.clone();
        async move { call_gateway(gateway, "/slow", Some(&code)).await }
    });
    wait_until(REQUEST_TIMEOUT, "the upstream holds /slow", || async {
        (upstream.slow_started() == 1).then_some(())
    })
    .await;

    let mut proc = server.proc;
    proc.signal("TERM");
    wait_until(EXIT_TIMEOUT, "new connections are refused", || async {
        (is_refused(gateway).await && is_refused(admin).await).then_some(())
    })
    .await;
    assert!(
        !in_flight.is_finished(),
        "the upstream still holds the request"
    );
    assert!(proc.try_exit().is_none(), "exited before draining");

    upstream.release_slow();
    let res = in_flight.await.unwrap();
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["path"], "/slow");
    let status = proc.wait_exit(EXIT_TIMEOUT).await;
    assert_eq!(status.code(), Some(0), "{}", proc.stderr());
    assert!(is_refused(gateway).await);
}

// ---------------------------------------------------------------------------------------------
// 7. Health and metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_count_accepted_requests() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let res = send(server.admin, get("/healthz")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["status"], "ok");
    let res = send(server.admin, get("/readyz")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["status"], "ready");

    let (_, _, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("counted")
        .await;
    let before = metrics(&server).await;
    for _ in 0..3 {
        let res = call_gateway(server.gateway, "/x", Some(&code)).await;
        assert_eq!(res.status, StatusCode::OK);
    }
    call_gateway(server.gateway, "/x", None).await;
    call_gateway(server.gateway, "/x", Some(&"Z".repeat(64))).await;
    let after = metrics(&server).await;

    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(delta("apig_appcode_hits_total"), 3.0, "{after}");
    assert_eq!(
        delta("apig_appcode_rejections_total{reason=\"missing\"}"),
        1.0
    );
    assert_eq!(
        delta("apig_appcode_rejections_total{reason=\"invalid\"}"),
        1.0
    );
    assert_eq!(sample(&after, "apig_appcode_ready"), 1.0);
    assert!(after.contains("# TYPE apig_appcode_hits_total counter"));
}

// ---------------------------------------------------------------------------------------------
// 8. Encryption at rest

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_keeps_appcodes_out_of_the_database_file_and_is_required() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "0f1e2d3c4b5a6978".repeat(4);
    let server = start_with_token(&upstream, dir.path(), &["--master-key", &key]).await;
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("sealed").await;
    let early = format!("SealedValue{}", "s".repeat(60));
    let res = admin
        .call(
            Method::POST,
            &format!("/apps/{app}/app-codes"),
            Some(json!({"app_code": early})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    for c in [&code, &early] {
        assert_eq!(
            gateway_status(server.gateway, c).await,
            Some(StatusCode::OK)
        );
    }

    // While running (the WAL holds the latest writes) and after a clean stop.
    let check_files = |when: &str| {
        let mut checked = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for c in [&code, &early] {
                let found = bytes.windows(c.len()).any(|w| w == c.as_bytes());
                assert!(!found, "{when}: {} holds an AppCode", path.display());
            }
            checked += 1;
        }
        assert!(checked >= 1, "{when}: no database file");
    };
    assert!(dir.path().join("db-wal").exists());
    check_files("running");
    assert!(server.stop().await.success());
    check_files("stopped");

    let mut without_key = base_args(&upstream, dir.path());
    without_key.extend(["--admin-token".into(), TOKEN.into()]);
    let exited = Server::start(serve_command(&without_key))
        .await
        .err()
        .expect("started without the master key");
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("master key"), "{}", exited.stderr);

    let mut other_key = without_key.clone();
    other_key.extend(["--master-key".into(), "a5".repeat(32)]);
    let exited = Server::start(serve_command(&other_key))
        .await
        .err()
        .expect("started with another master key");
    assert!(!exited.status.success());
    assert!(exited.stderr.contains("master key"), "{}", exited.stderr);

    let server = start_with_token(&upstream, dir.path(), &["--master-key", &key]).await;
    assert_eq!(
        gateway_status(server.gateway, &code).await,
        Some(StatusCode::OK)
    );
}

// ---------------------------------------------------------------------------------------------
// 9. HTTPS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_gateway_accepts_an_appcode_over_https() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    let server = start_with_token(
        &upstream,
        dir.path(),
        &[
            "--gateway-tls-cert",
            cert.to_str().unwrap(),
            "--gateway-tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        server
            .stdout()
            .contains(&format!("gateway listening on https://{}", server.gateway)),
        "{}",
        server.stdout()
    );
    let (_, _, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("tls_app")
        .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.gateway).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(REQUEST_TIMEOUT, connector.connect(name, tcp))
        .await
        .unwrap()
        .expect("TLS handshake");
    let mut req = get("/secure");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    let res = send_over(tls, "localhost", req).await.unwrap();
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.upstream_headers()["x-forwarded-proto"], ["https"]);

    // Plain HTTP on the TLS listener gets no HTTP answer.
    assert!(try_send(server.gateway, get("/plain")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_https_refuses_plain_http_with_apig_0607() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &["--require-https"]).await;
    let (_, _, code) = Admin::new(server.admin, TOKEN).app_with_code("plain").await;
    let res = call_gateway(server.gateway, "/x", Some(&code)).await;
    res.assert_apig_error(StatusCode::BAD_REQUEST, "APIG.0607");
    assert_eq!(upstream.requests(), 0);
}
