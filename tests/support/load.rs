//! A load generator for the tests that saturate a gateway: keep-alive HTTP/1.1 connections,
//! each sending one request after another as fast as the gateway answers, on a runtime (and
//! thread) of their own, so that the test's own requests are not queued behind its tasks.
//!
//! It measures nothing the tests assert on: its rate is for information only.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Bound on one connect or one exchange; past it the connection is dropped and a new one made.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the load's requests got so far.
#[derive(Debug, Default)]
struct Counts {
    ok: AtomicU64,
    unauthorized: AtomicU64,
    other: AtomicU64,
    /// Connects, handshakes or exchanges that failed or timed out.
    errors: AtomicU64,
    /// Connections opened (one per connection task, more if the gateway closed some).
    connections: AtomicU64,
}

/// A snapshot of the counts, and how long the load had run then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) unauthorized: u64,
    pub(crate) other: u64,
    pub(crate) errors: u64,
    pub(crate) connections: u64,
    pub(crate) elapsed: Duration,
}

impl Tally {
    /// Requests answered (whatever the status).
    pub(crate) fn answered(&self) -> u64 {
        self.ok + self.unauthorized + self.other
    }

    /// What happened between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &Tally) -> Tally {
        Tally {
            ok: self.ok - earlier.ok,
            unauthorized: self.unauthorized - earlier.unauthorized,
            other: self.other - earlier.other,
            errors: self.errors - earlier.errors,
            connections: self.connections - earlier.connections,
            elapsed: self.elapsed.saturating_sub(earlier.elapsed),
        }
    }

    /// Answered requests per second (for information only).
    pub(crate) fn per_second(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered in {:.1} s ({:.0} req/s): {} × 200, {} × 401, {} other; {} errors, {} connections",
            self.answered(),
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.ok,
            self.unauthorized,
            self.other,
            self.errors,
            self.connections,
        )
    }
}

/// A running load; stopped (and its thread joined) when dropped.
#[derive(Debug)]
pub(crate) struct Load {
    counts: Arc<Counts>,
    started: Instant,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts `connections` connections to `target`, each sending `GET /load` (which the
    /// shared `Upstream` of `support/binary.rs` answers cheaply: its `LOAD_PATH`) with
    /// `X-Apig-AppCode: codes[i % codes.len()]` (connection `i`) for as long as the load runs.
    /// `threads` worker threads drive them.
    pub(crate) fn start(
        target: SocketAddr,
        connections: usize,
        codes: &[String],
        threads: usize,
    ) -> Self {
        assert!(!codes.is_empty(), "the load needs at least one code");
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("load")
            .enable_all()
            .build()
            .expect("the load's runtime");
        let codes: Vec<String> = codes.to_vec();
        let shared = Arc::clone(&counts);
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                for i in 0..connections {
                    let code = codes[i % codes.len()].clone();
                    tokio::spawn(hammer(target, code, Arc::clone(&shared)));
                }
                // Until stopped, or until the `Load` is gone.
                let _ = stopped.await;
            });
            // The connection tasks are dropped mid-request: nothing waits for an answer.
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        Self {
            counts,
            started: Instant::now(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The counts so far.
    pub(crate) fn tally(&self) -> Tally {
        let c = &self.counts;
        Tally {
            ok: c.ok.load(Ordering::Relaxed),
            unauthorized: c.unauthorized.load(Ordering::Relaxed),
            other: c.other.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
        }
    }

    /// Stops the load; returns its final counts.
    pub(crate) fn stop(mut self) -> Tally {
        self.shut_down();
        self.tally()
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// One connection after another to `target`, each kept alive for as many requests as the
/// gateway allows.
async fn hammer(target: SocketAddr, code: String, counts: Arc<Counts>) {
    let host = target.to_string();
    loop {
        let connected = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
            let stream = TcpStream::connect(target).await?;
            stream.set_nodelay(true)?;
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)
        })
        .await;
        let Ok(Ok((mut sender, connection))) = connected else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let connection = tokio::spawn(connection);
        loop {
            let request = Request::get("/load")
                .header(http::header::HOST, &host)
                .header("x-apig-appcode", &code)
                .body(Empty::new())
                .unwrap();
            let exchange = async {
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                Ok::<_, hyper::Error>(status)
            };
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                Ok(Ok(status)) => {
                    let counter = match status {
                        StatusCode::OK => &counts.ok,
                        StatusCode::UNAUTHORIZED => &counts.unauthorized,
                        _ => &counts.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // Closed by the gateway, or no answer in time: a new connection.
                _ => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        connection.abort();
    }
}

/// The CPU time process `pid` has used so far (user and system), where `/proc` tells it.
/// For information only.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces: state is
    // the first of them, utime the 12th and stime the 13th (fields 14 and 15 of proc(5)).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(100);
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}
