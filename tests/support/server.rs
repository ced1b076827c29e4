//! A running `apig-appcode serve`: its command line, its start (both listeners reported,
//! `/readyz` answering) and its stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use http::StatusCode;

use super::client::{get, try_send};
use super::process::Proc;
use super::upstream::Upstream;
use super::{wait_until, BIN, EXIT_TIMEOUT, LOG_TIMEOUT, START_TIMEOUT, TOKEN};

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

/// `serve` with `args`, which must fail to start (`case` says how it was started, for the
/// failure message if it does start); how it exited.
pub(crate) async fn start_refused<S: AsRef<std::ffi::OsStr>>(args: &[S], case: &str) -> Exited {
    match Server::start(serve_command(args)).await {
        Ok(_) => panic!("the server started {case}"),
        Err(exited) => exited,
    }
}

/// Server without `--admin-token`: on its first run it writes a token file beside its database.
pub(crate) async fn start_without_token(upstream: &Upstream, dir: &Path) -> Server {
    Server::start(serve_command(&base_args(upstream, dir)))
        .await
        .unwrap()
}

/// Server with `--admin-token TOKEN` plus `extra` flags.
pub(crate) async fn start_with_token(upstream: &Upstream, dir: &Path, extra: &[&str]) -> Server {
    let mut args = base_args(upstream, dir);
    args.extend(["--admin-token".into(), TOKEN.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start(serve_command(&args)).await.unwrap()
}
