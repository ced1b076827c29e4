//! Benchmark of several gateway nodes on one PostgreSQL database (not a test: it measures time).
//!
//! Run with
//! ```text
//! cargo build --release --features gateway --bin apig-appcode --example propagation_bench
//! target/release/examples/propagation_bench postgres://postgres@127.0.0.1:5432/test
//! ```
//! (optional after the URL: `--revocations N` (default 200), `--codes N` (default 1000000),
//! `--idle SECONDS` (default 60), `--cold-only true`, `--under-load SECONDS`, `--rounds N`
//! (default 1), `--schema NAME`).
//!
//! 1. Revocation delay: two `apig-appcode serve` processes A and B; an AppCode is created
//!    through A's management API and, once B accepts it, deleted through A. The delay runs from
//!    the DELETE's response on A to the first request B rejects (B is asked in a tight loop).
//!    The nodes reload their caches only once an hour, so every revocation travels by
//!    LISTEN/NOTIFY. Prints p50, p90, p99 and max.
//! 2. Cold start: `--codes` AppCodes (5 per app) are written straight into the tables, in clear
//!    (the store's format without a master key), and a node is started on them. Prints the time
//!    from spawning the process to `/readyz` answering 200 (the cache loaded), and the node's
//!    resident memory then and at its peak. This node keeps the binary's default refresh
//!    interval; it is then left idle for `--idle` seconds, and the CPU it and every `postgres`
//!    process of the machine spent meanwhile is printed as a share of one core (from
//!    `/proc/*/stat`), with its memory after. With `--cold-only true`, part 1 is skipped.
//!    With `--rounds N`, N nodes are started one after the other on the same tables (each
//!    stopped once ready, the last one measured idle as above), for a median. With `--schema
//!    NAME`, the tables are those of schema NAME: filled once and kept, so that later runs skip
//!    writing millions of rows (minutes at ten million).
//!
//! 3. With `--under-load SECONDS`, instead of 1 and 2: wrk (Debian's package) saturates both
//!    gateways with rejected requests (one thread, 16 connections each) for SECONDS, in three
//!    rounds of two passes: first alone, then while codes are created and revoked through A,
//!    one every 100 ms (as in 1).
//!    Prints the revocation delay, the slowest management calls, the listener reconnects the
//!    nodes logged, and each gateway's requests/s in both passes of each round with the
//!    median change. Probes outside the nodes
//!    ([`probe`]) time the database and the scheduler meanwhile, so that a stall can be placed.
//!
//! Each part works in a schema of its own, dropped at the end. The binary is expected beside the
//! example's directory (`target/release/apig-appcode`), as the command above builds it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apig_appcode::gateway::config::{DEFAULT_INSTANCE_ID, DEFAULT_PROJECT_ID};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

#[path = "../../tests/support/admin_request.rs"]
mod admin_request;
#[path = "../../tests/support/pg_schema.rs"]
mod pg_schema;
mod probe;

use admin_request::admin_request;
use probe::Probes;

const TOKEN: &str = "propagation-bench-admin-token";
/// Bound on any one wait (a start, a propagation).
const WAIT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("propagation_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: propagation_bench POSTGRES_URL [--revocations N] [--codes N]")?;
    let (mut revocations, mut codes, mut under_load) = (200usize, 1_000_000u64, None);
    let (mut idle, mut only_cold) = (Duration::from_secs(60), false);
    let (mut rounds, mut kept) = (1usize, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or("a flag without its value")?;
        match flag.as_str() {
            "--revocations" => revocations = value.parse()?,
            "--codes" => codes = value.parse()?,
            "--under-load" => under_load = Some(Duration::from_secs(value.parse()?)),
            "--idle" => idle = Duration::from_secs(value.parse()?),
            "--cold-only" => only_cold = value.parse()?,
            "--rounds" => rounds = value.parse::<usize>()?.max(1),
            "--schema" => kept = Some(value),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("apig-appcode"))
        .filter(|p| p.exists())
        .ok_or(
            "build the binary too: cargo build --release --features gateway --bin apig-appcode",
        )?;

    if let Some(seconds) = under_load {
        println!("== revocation under load, {seconds:?} per pass");
        let schema = Schema::create(&url).await?;
        revocation_under_load(&bin, &schema, seconds).await?;
        schema.drop().await?;
        return Ok(());
    }
    if !only_cold {
        println!("== revocation delay, {revocations} revocations");
        let schema = Schema::create(&url).await?;
        revocation_delay(&bin, &schema, revocations).await?;
        schema.drop().await?;
    }

    let Some(name) = kept else {
        println!("== cold start with {codes} AppCodes");
        let schema = Schema::create(&url).await?;
        fill(&schema, codes).await?;
        cold_start(&bin, &schema, rounds, idle).await?;
        return schema.drop().await;
    };
    let (schema, existed) = Schema::open(&url, &name).await?;
    if existed {
        println!("== cold start on schema {name}, kept from an earlier run as it is");
    } else {
        println!("== cold start with {codes} AppCodes, kept in schema {name}");
        fill(&schema, codes).await?;
    }
    cold_start(&bin, &schema, rounds, idle).await
}

async fn revocation_delay(bin: &PathBuf, schema: &Schema, n: usize) -> Result<(), BoxError> {
    let http = Http::new();
    let (a, b, codes_path) = two_nodes(&http, bin, schema).await?;

    let (mut created, mut revoked) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let one = revoke_once(&http, &a, &b, &codes_path).await?;
        created.push(one.created);
        revoked.push(one.revoked);
    }
    report(
        "revocation (DELETE answered on A -> first 401 on B)",
        &mut revoked,
    );
    report(
        "creation (PUT answered on A -> first 200 on B)",
        &mut created,
    );
    Ok(())
}

/// Rounds of part 3: each a pass of wrk alone, then one with revocations.
const ROUNDS: usize = 3;

/// Part 3: revocations while wrk saturates both gateways; see the module docs.
async fn revocation_under_load(
    bin: &PathBuf,
    schema: &Schema,
    seconds: Duration,
) -> Result<(), BoxError> {
    probe::scheduling_note();
    let http = Http::new();
    let (a, b, codes_path) = two_nodes(&http, bin, schema).await?;

    let mut trips = Trips::default();
    // Per round, for A and B: requests/s alone and with revocations. The machine's noise shifts
    // whole passes, so each round compares two neighbouring passes.
    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        println!("-- round {round}, pass 1: wrk alone");
        let probes = Probes::start(&schema.url);
        let alone = tokio::try_join!(wrk(a.gateway, seconds), wrk(b.gateway, seconds))?;
        probes.finish();

        println!("-- round {round}, pass 2: wrk while codes are created and revoked");
        let probes = Probes::start(&schema.url);
        let (gateway_a, gateway_b) = (a.gateway, b.gateway);
        let load = tokio::spawn(async move {
            tokio::try_join!(wrk(gateway_a, seconds), wrk(gateway_b, seconds))
        });
        let calls_before = trips.calls.len();
        // Paced, as an operator revokes: a tight loop would be a load of its own.
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        while !load.is_finished() {
            pace.tick().await;
            let began = Instant::now();
            let at = probes.since_start(began);
            match revoke_once(&http, &a, &b, &codes_path).await {
                Ok(one) => trips.record(&one, at),
                // A failed call is a result of this pass, not the end of the run.
                Err(e) => trips
                    .failures
                    .push(format!("round {round}, {:.1} s: {e}", at.as_secs_f64())),
            }
        }
        let with = load.await??;
        probe::summary(
            "slowest management call of each round trip",
            &trips.calls[calls_before..],
        );
        probes.finish();
        rounds.push([(alone.0, with.0), (alone.1, with.1)]);
    }

    println!("-- {ROUNDS} rounds");
    report(
        "revocation under load (DELETE answered on A -> first 401 on B)",
        &mut trips.revoked,
    );
    report(
        "creation under load (PUT answered on A -> first 200 on B)",
        &mut trips.created,
    );
    probe::summary("slowest management call of each round trip", &trips.calls);
    println!("failed round trips: {}", trips.failures.len());
    for failure in &trips.failures {
        println!("  {failure}");
    }
    println!(
        "listener reconnects logged: A {}, B {}",
        a.reconnects(),
        b.reconnects()
    );
    for (gateway, name) in ["A", "B"].into_iter().enumerate() {
        let pairs: Vec<(f64, f64)> = rounds.iter().map(|round| round[gateway]).collect();
        let mut changes: Vec<f64> = pairs
            .iter()
            .map(|(alone, with)| (with / alone - 1.0) * 100.0)
            .collect();
        changes.sort_by(f64::total_cmp);
        let each: Vec<String> = pairs
            .iter()
            .map(|(alone, with)| format!("{alone:.0} -> {with:.0}"))
            .collect();
        println!(
            "gateway {name}: req/s alone -> with revocations, per round: {}; median change {:+.1} %",
            each.join(", "),
            changes[changes.len() / 2]
        );
    }
    Ok(())
}

/// What the round trips of part 3 measured.
#[derive(Default)]
struct Trips {
    revoked: Vec<Duration>,
    created: Vec<Duration>,
    calls: Vec<probe::Sample>,
    failures: Vec<String>,
}

impl Trips {
    fn record(&mut self, one: &RoundTrip, at: Duration) {
        self.created.push(one.created);
        self.revoked.push(one.revoked);
        self.calls.push(probe::Sample {
            at,
            took: one.slowest_call,
        });
    }
}

/// Two nodes on `schema`, ready, and the AppCode path of an app created on the first.
async fn two_nodes(
    http: &Http,
    bin: &PathBuf,
    schema: &Schema,
) -> Result<(Node, Node, String), BoxError> {
    let upstream = start_upstream().await?;
    // Caches refresh once an hour: every change travels by LISTEN/NOTIFY.
    let hourly = Some(Duration::from_secs(3600));
    let a = Node::start(bin, schema, upstream, hourly)?;
    let b = Node::start(bin, schema, upstream, hourly)?;
    http.ready(&a).await?;
    http.ready(&b).await?;
    let app = http
        .admin(
            &a,
            Method::POST,
            "/apps",
            Some(json!({ "name": "bench_app" })),
        )
        .await?;
    let app_id = app["id"].as_str().ok_or("no app id")?.to_owned();
    Ok((a, b, format!("/apps/{app_id}/app-codes")))
}

/// One code's round trip: created on `a` until `b` accepts it, then deleted on `a` until `b`
/// rejects it.
struct RoundTrip {
    created: Duration,
    revoked: Duration,
    slowest_call: Duration,
}

async fn revoke_once(
    http: &Http,
    a: &Node,
    b: &Node,
    codes_path: &str,
) -> Result<RoundTrip, BoxError> {
    let sent = Instant::now();
    let code = http.admin(a, Method::PUT, codes_path, None).await?;
    let put_took = sent.elapsed();
    let accepted_from = Instant::now();
    let (id, value) = (
        code["id"].as_str().ok_or("no code id")?.to_owned(),
        code["app_code"].as_str().ok_or("no code")?.to_owned(),
    );
    let created = http.first(b, &value, StatusCode::OK, accepted_from).await?;
    let sent = Instant::now();
    http.admin(a, Method::DELETE, &format!("{codes_path}/{id}"), None)
        .await?;
    let delete_took = sent.elapsed();
    let revoked = http
        .first(b, &value, StatusCode::UNAUTHORIZED, Instant::now())
        .await?;
    Ok(RoundTrip {
        created,
        revoked,
        slowest_call: put_took.max(delete_took),
    })
}

/// An AppCode no node holds: every request gets 401 from the negative cache.
const UNKNOWN_CODE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Runs wrk (one thread, 16 connections, rejected requests) against `gateway`; its requests/s.
async fn wrk(gateway: SocketAddr, seconds: Duration) -> Result<f64, String> {
    let out = tokio::process::Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{}s", seconds.as_secs())])
        .args(["-H", &format!("X-Apig-AppCode: {UNKNOWN_CODE}")])
        .arg(format!("http://{gateway}/load"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec from wrk: {text}"))
}

/// Writes `codes` AppCodes (5 per app) into the tables of `schema`, as a restore would.
async fn fill(schema: &Schema, codes: u64) -> Result<(), BoxError> {
    // Let the store create its tables, then fill them in bulk.
    let store = apig_appcode::store::PostgresStore::connect(
        &schema.url,
        apig_appcode::store::PostgresOptions::new(),
    )
    .await?;
    drop(store);
    let apps = codes.div_ceil(5);
    let started = Instant::now();
    let client = pg_schema::connect(&schema.url).await?;
    client
        .batch_execute(&format!(
            // As a restore writes them: straight into the tables, the change-log triggers off
            // (a node reads them with its first snapshot, not from the log).
            "SET session_replication_role = replica;
             INSERT INTO apps (project_id, instance_id, id, name, remark, creator, app_key,
                               app_secret, register_time, update_time, status)
             SELECT '{DEFAULT_PROJECT_ID}', '{DEFAULT_INSTANCE_ID}', lpad(to_hex(g), 32, '0'),
                    'app_' || g, '', 'USER', 'key_' || lpad(g::text, 28, '0'),
                    convert_to('secret_' || g, 'UTF8'), 0, 0, 1
             FROM generate_series(1, {apps}) g;
             INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
             SELECT a.seq, a.instance_id, lpad(to_hex(a.seq * 8 + k), 32, '0'), v.value,
                    sha256(v.value), 0
             FROM apps a CROSS JOIN generate_series(0, 4) k
             CROSS JOIN LATERAL (SELECT convert_to(encode(sha256(convert_to(a.id || ':' || k,
                                 'UTF8')), 'hex'), 'UTF8') AS value) v
             ORDER BY a.seq, k
             LIMIT {codes};
             ANALYZE apps; ANALYZE app_codes;
             RESET session_replication_role;"
        ))
        .await?;
    println!(
        "loaded {codes} codes in {apps} apps in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Starts `rounds` nodes on `schema` one after the other, each timed from its spawn to
/// `/readyz` 200; the last one is then watched idle for `idle`.
async fn cold_start(
    bin: &PathBuf,
    schema: &Schema,
    rounds: usize,
    idle: Duration,
) -> Result<(), BoxError> {
    let upstream = start_upstream().await?;
    let http = Http::new();
    let mut times = Vec::new();
    let node = loop {
        let spawned = Instant::now();
        // The binary's default refresh: what an idle node costs as users run it.
        let node = Node::start(bin, schema, upstream, None)?;
        http.ready(&node).await?;
        let ready = spawned.elapsed();
        let at_ready = memory(node.child.id())?;
        println!(
            "ready (cache loaded) {:.2} s after spawning the process; RSS {} MiB, peak {} MiB",
            ready.as_secs_f64(),
            at_ready.0 / 1024,
            at_ready.1 / 1024
        );
        times.push(ready);
        if times.len() == rounds {
            break node;
        }
        drop(node);
    };
    if rounds > 1 {
        times.sort();
        println!(
            "median of {rounds}: ready {:.2} s",
            times[rounds / 2].as_secs_f64()
        );
    }
    // Settled: whatever the start allocated and freed is behind.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (rss, peak) = memory(node.child.id())?;
    println!(
        "15 s later: RSS {} MiB, peak RSS {} MiB",
        rss / 1024,
        peak / 1024
    );

    // Idle: nothing is written, nobody calls. What the node and PostgreSQL spend anyway.
    let pid = node.child.id();
    let (node_before, pg_before) = (cpu_ticks(pid)?, postgres_ticks()?);
    let began = Instant::now();
    tokio::time::sleep(idle).await;
    let wall = began.elapsed().as_secs_f64();
    let (node_after, pg_after) = (cpu_ticks(pid)?, postgres_ticks()?);
    let share = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / wall * 100.0;
    let (rss, peak) = memory(pid)?;
    println!(
        "idle {wall:.0} s: node {:.2} % of a core, PostgreSQL (every postgres process of the \
         machine) {:.2} %; RSS {} MiB, peak RSS {} MiB",
        share(node_after - node_before),
        share(pg_after.saturating_sub(pg_before)),
        rss / 1024,
        peak / 1024
    );
    Ok(())
}

/// `sysconf(_SC_CLK_TCK)` on Linux: the unit of the CPU times in `/proc/*/stat`.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').ok_or("unexpected /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok(fields.get(11).ok_or("no utime")?.parse::<u64>()?
        + fields.get(12).ok_or("no stime")?.parse::<u64>()?)
}

/// CPU time of every `postgres` process now running, in clock ticks.
fn postgres_ticks() -> Result<u64, BoxError> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "postgres");
        if is_postgres {
            // A process that exits meanwhile is simply not counted.
            total += cpu_ticks(pid).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Resident and peak resident memory of a process, in KiB.
fn memory(pid: u32) -> Result<(u64, u64), BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64, BoxError> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or("no such field")?;
        Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    println!(
        "{what}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
}

/// A schema of its own on the database, named by the connection's `search_path`.
struct Schema {
    admin_url: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create(admin_url: &str) -> Result<Self, BoxError> {
        let name = pg_schema::create_random(admin_url, "apig_bench").await?;
        Ok(Self::at(admin_url, &name))
    }

    /// The schema `name` of the database at `admin_url`, reached by its `search_path`.
    fn at(admin_url: &str, name: &str) -> Self {
        Self {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            url: pg_schema::schema_url(admin_url, name),
        }
    }

    /// The schema `name`, created if it does not exist; whether it existed.
    async fn open(admin_url: &str, name: &str) -> Result<(Self, bool), BoxError> {
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err("a schema name of lowercase letters, digits and _".into());
        }
        let client = pg_schema::connect(admin_url).await?;
        let existed = client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
            .await?
            .is_some();
        if !existed {
            client
                .batch_execute(&format!("CREATE SCHEMA {name}"))
                .await?;
        }
        Ok((Self::at(admin_url, name), existed))
    }

    async fn drop(self) -> Result<(), BoxError> {
        pg_schema::drop(&self.admin_url, &self.name).await
    }
}

async fn start_upstream() -> Result<SocketAddr, BoxError> {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                    Bytes::from_static(b"upstream"),
                )))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(addr)
}

/// One `apig-appcode serve` process, killed when dropped.
struct Node {
    child: Child,
    reconnects: Arc<AtomicUsize>,
    gateway: SocketAddr,
    admin: SocketAddr,
}

impl Node {
    /// A node that refreshes its cache every `refresh` (the binary's default without one).
    fn start(
        bin: &PathBuf,
        schema: &Schema,
        upstream: SocketAddr,
        refresh: Option<Duration>,
    ) -> Result<Self, BoxError> {
        let mut command = Command::new(bin);
        command.args(["serve", "--database", &schema.url]);
        if let Some(refresh) = refresh {
            command.args(["--refresh-interval", &refresh.as_secs().to_string()]);
        }
        let mut child = command
            .args([
                "--gateway-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--upstream", &format!("http://{upstream}")])
            .args(["--admin-token", TOKEN])
            .args(["--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let reconnects = Arc::new(AtomicUsize::new(0));
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let count = Arc::clone(&reconnects);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("change listener lost its connection") {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                eprintln!("{line}");
            }
        });
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                for (prefix, which) in [
                    ("gateway listening on http://", 0),
                    ("admin listening on http://", 1),
                ] {
                    if let Some(addr) = line.strip_prefix(prefix) {
                        let _ = tx.send((which, addr.to_owned()));
                    }
                }
            }
        });
        let mut addrs: [Option<SocketAddr>; 2] = [None, None];
        while addrs.iter().any(Option::is_none) {
            let (which, addr) = rx.recv_timeout(WAIT).map_err(|_| {
                let _ = child.kill();
                "the node did not start"
            })?;
            addrs[which] = Some(addr.parse()?);
        }
        Ok(Self {
            child,
            reconnects,
            gateway: addrs[0].ok_or("no gateway address")?,
            admin: addrs[1].ok_or("no admin address")?,
        })
    }
}

impl Node {
    /// How many times the node logged that its change listener lost its connection.
    fn reconnects(&self) -> usize {
        self.reconnects.load(Ordering::Relaxed)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), BoxError> {
        let response = tokio::time::timeout(WAIT, self.0.request(request)).await??;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    async fn admin(
        &self,
        node: &Node,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BoxError> {
        let request = admin_request(node.admin, TOKEN, method, path, body)?;
        let (status, bytes) = self.send(request).await?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {}", String::from_utf8_lossy(&bytes)).into());
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Asks `node`'s gateway with `code` in a tight loop until it answers `expected`; returns
    /// the time from `since` to that answer.
    async fn first(
        &self,
        node: &Node,
        code: &str,
        expected: StatusCode,
        since: Instant,
    ) -> Result<Duration, BoxError> {
        loop {
            let request = Request::builder()
                .uri(format!("http://{}/bench", node.gateway))
                .header("x-apig-appcode", code)
                .body(Full::new(Bytes::new()))?;
            if self.send(request).await?.0 == expected {
                return Ok(since.elapsed());
            }
            if since.elapsed() > WAIT {
                return Err(format!("no {expected} within {WAIT:?}").into());
            }
        }
    }

    async fn ready(&self, node: &Node) -> Result<(), BoxError> {
        let since = Instant::now();
        loop {
            let request = Request::builder()
                .uri(format!("http://{}/readyz", node.admin))
                .body(Full::new(Bytes::new()))?;
            if self.send(request).await?.0 == StatusCode::OK {
                return Ok(());
            }
            if since.elapsed() > WAIT {
                return Err("the node did not get ready".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
