//! The `reverse_proxy` example as a process: a real upstream, a real codes file, real HTTP.
//!
//! The test runs `cargo build --example reverse_proxy` once itself: depending on the target
//! filter, `cargo test` leaves that binary unbuilt or stale.

#![cfg(feature = "gateway")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use apig_appcode::AppCode;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tempfile::TempDir;

#[path = "support/binary.rs"]
mod support;
use support::Upstream;

/// Bound on one request, and on the proxy's start.
const WAIT: Duration = Duration::from_secs(20);
/// Bound on a codes-file edit taking effect (the file is polled every second).
const RELOAD_WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// An address nothing listens on: a port the OS just handed out and took back.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// How long building the example may take (usually a relink, or nothing at all).
const BUILD_WAIT: Duration = Duration::from_secs(600);

/// The example binary, built (or found fresh) once per test run.
///
/// `cargo test --tests --examples` builds examples only as test harnesses, so the plain binary
/// in `<target>/<profile>/examples` may be missing or older than the source. Asking cargo is
/// the one reliable freshness check; it is a no-op when nothing changed, and cargo does not
/// hold its build lock while tests run.
async fn example_binary() -> &'static Path {
    static BIN: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BIN.get_or_init(build_example).await
}

async fn build_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/[<triple>/]<profile>/deps");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("no profile directory above {}", exe.display()),
    };
    let parent = profile_dir.parent().unwrap();
    // Cargo marks the root of every target directory with CACHEDIR.TAG; a directory in between
    // is a `--target` triple.
    let (target_dir, triple) = if parent.join("CACHEDIR.TAG").exists() {
        (parent, None)
    } else {
        (parent.parent().unwrap(), parent.file_name())
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = tokio::process::Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--example",
        "reverse_proxy",
        "--features",
        "gateway",
        "--profile",
        profile,
    ])
    .arg("--manifest-path")
    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
    .arg("--target-dir")
    .arg(target_dir)
    .stdin(Stdio::null())
    .kill_on_drop(true);
    if let Some(triple) = triple {
        cmd.arg("--target").arg(triple);
    }
    let status = tokio::time::timeout(BUILD_WAIT, cmd.status())
        .await
        .expect("building the example finishes in time")
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build --example reverse_proxy failed"
    );
    let bin = profile_dir
        .join("examples")
        .join(format!("reverse_proxy{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}

/// The running proxy; killed when dropped, so a failed assertion does not leave it behind.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts the proxy on a free port and returns once it printed the address it listens on.
    async fn start(upstream: SocketAddr, codes: &Path) -> Proxy {
        let mut child = Command::new(example_binary().await)
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("http://{upstream}"))
            .arg("--codes")
            .arg(codes)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let stdout = child.stdout.take().unwrap();
        // Built before the first await, so a timeout below still kills the child.
        let mut proxy = Proxy {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Keep draining, so the proxy never blocks on a full pipe.
            for _ in lines {}
        });
        let line = tokio::time::timeout(WAIT, rx)
            .await
            .expect("the proxy prints its address in time")
            .unwrap()
            .expect("the proxy printed a line before exiting");
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        proxy.addr = addr.parse().unwrap();
        proxy
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

type TestClient = Client<HttpConnector, Empty<Bytes>>;

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: StatusCode,
    request_id: Option<String>,
    body: Value,
}

async fn send(client: &TestClient, req: http::request::Builder) -> Answer {
    let res = tokio::time::timeout(WAIT, client.request(req.body(Empty::new()).unwrap()))
        .await
        .expect("answer in time")
        .expect("request sent");
    read(res).await
}

async fn read(res: Response<Incoming>) -> Answer {
    let status = res.status();
    let request_id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = tokio::time::timeout(WAIT, res.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        request_id,
        body,
    }
}

fn get(url: &str, code: Option<&AppCode>) -> http::request::Builder {
    let req = Request::builder().uri(url);
    match code {
        Some(code) => req.header("x-apig-appcode", code.expose()),
        None => req,
    }
}

/// Polls until `req()` is answered with `want`, and returns that answer; panics after `limit`.
async fn until_status(
    client: &TestClient,
    want: StatusCode,
    limit: Duration,
    req: impl Fn() -> http::request::Builder,
) -> Answer {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let attempt =
            tokio::time::timeout(POLL * 20, client.request(req().body(Empty::new()).unwrap()));
        let last = match attempt.await {
            Ok(Ok(res)) if res.status() == want => return read(res).await,
            Ok(Ok(res)) => format!("status {}", res.status()),
            Ok(Err(e)) => format!("error {e}"),
            Err(_) => "no answer".to_owned(),
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {want} within {limit:?}; last: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn codes_json(codes: &[(&str, &str, &AppCode)]) -> String {
    let apps: Vec<Value> = codes
        .iter()
        .map(|(app, id, code)| json!({ "id": app, "app_codes": [{ "id": id, "value": code.expose() }] }))
        .collect();
    json!({ "apps": apps }).to_string()
}

/// Replaces the file in one step, so the proxy never reads half of it.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A temp dir with `codes.json` holding one code of app `shop`, AppCode ID `c1`.
fn codes_file(code: &AppCode) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codes.json");
    write_atomically(&path, &codes_json(&[("shop", "c1", code)]));
    (dir, path)
}

/// The proxy in front of a fresh upstream, with a codes file holding `code` (app `shop`, code
/// `c1`), a client and the file's path. First, what must outlive the proxy: bound first, it is
/// dropped after it.
async fn proxied(code: &AppCode) -> ((Upstream, TempDir), Proxy, TestClient, PathBuf) {
    let (dir, codes) = codes_file(code);
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(upstream.addr, &codes).await;
    ((upstream, dir), proxy, client(), codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_code_is_forwarded_with_identity_and_without_the_appcode() {
    let code = AppCode::generate();
    let (_keep, proxy, client, _codes) = proxied(&code).await;
    until_status(&client, StatusCode::OK, WAIT, || {
        get(&proxy.url("/"), Some(&code))
    })
    .await;

    let req = get(&proxy.url("/orders/7?full=1"), Some(&code))
        .header("x-apig-app-id", "forged")
        .header("x-request-id", "trace-1")
        .header("connection", "x-hop")
        .header("x-hop", "1");
    let res = send(&client, req).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.request_id.as_deref(), Some("trace-1"));
    let seen = &res.body["headers"];
    assert_eq!(res.body["path"], "/orders/7?full=1");
    assert_eq!(seen["x-apig-app-id"], json!(["shop"]));
    assert_eq!(seen["x-apig-appcode-id"], json!(["c1"]));
    assert_eq!(seen["x-request-id"], json!(["trace-1"]));
    assert_eq!(seen["x-forwarded-proto"], json!(["http"]));
    assert!(seen.get("x-apig-appcode").is_none(), "{seen}");
    assert!(
        seen.get("x-hop").is_none(),
        "hop-by-hop header forwarded: {seen}"
    );
    assert!(!res.body.to_string().contains(code.expose()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_code_is_401_apig_0303() {
    let code = AppCode::generate();
    let (_keep, proxy, client, _codes) = proxied(&code).await;
    // 503 until the codes are loaded, 401 after.
    let missing = until_status(&client, StatusCode::UNAUTHORIZED, WAIT, || {
        get(&proxy.url("/"), None)
    })
    .await;
    assert_eq!(missing.body["error_code"], "APIG.0303");
    assert_eq!(
        missing.body["request_id"].as_str(),
        missing.request_id.as_deref()
    );

    let unknown = send(&client, get(&proxy.url("/"), Some(&AppCode::generate()))).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.body["error_code"], "APIG.0303");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_502_apig_0201() {
    let code = AppCode::generate();
    let (_dir, codes) = codes_file(&code);
    let proxy = Proxy::start(closed_port().await, &codes).await;
    let client = client();
    let res = until_status(&client, StatusCode::BAD_GATEWAY, WAIT, || {
        get(&proxy.url("/"), Some(&code)).header("x-request-id", "trace-502")
    })
    .await;
    assert_eq!(res.body["error_code"], "APIG.0201");
    assert_eq!(res.body["error_msg"], "Backend unavailable");
    assert_eq!(res.body["request_id"], "trace-502");
    assert_eq!(res.request_id.as_deref(), Some("trace-502"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_added_to_the_file_works_without_a_restart() {
    let (old, new) = (AppCode::generate(), AppCode::generate());
    let (_keep, proxy, client, codes) = proxied(&old).await;
    until_status(&client, StatusCode::OK, WAIT, || {
        get(&proxy.url("/"), Some(&old))
    })
    .await;
    assert_eq!(
        send(&client, get(&proxy.url("/"), Some(&new))).await.status,
        StatusCode::UNAUTHORIZED
    );

    write_atomically(
        &codes,
        &codes_json(&[("shop", "c1", &old), ("mobile", "m1", &new)]),
    );
    let res = until_status(&client, StatusCode::OK, RELOAD_WAIT, || {
        get(&proxy.url("/"), Some(&new))
    })
    .await;
    assert_eq!(res.body["headers"]["x-apig-app-id"], json!(["mobile"]));
    assert_eq!(
        send(&client, get(&proxy.url("/"), Some(&old))).await.status,
        StatusCode::OK
    );
}
