//! A revocation reaches a node whose gateway is saturated, within a bound asserted as the
//! node's state.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::Value;

use super::binary::{wait_until, Server, PROPAGATION_TIMEOUT, REQUEST_TIMEOUT};
use super::load::{self, Load};
use super::pg::TestDb;
use super::{two_nodes, Http};

/// Connections of the load on B's gateway: more than its workers can serve at once, so that a
/// request is always waiting for one of them.
const LOAD_CONNECTIONS: usize = 32;
/// Codes created and revoked while B is saturated: at least this many, ...
const REVOCATIONS: usize = 20;
/// ... and for at least this long: three of the change listener's heartbeats (every 5 s), the
/// query that, left unanswered under load, makes the listener reconnect.
const PHASE: Duration = Duration::from_secs(15);
/// The pause between revocations, as an operator's (the benchmark's): a tight loop would be a
/// load on A and the database of its own.
const PACE: Duration = Duration::from_millis(100);
/// How long after A acknowledged a deletion (answered 204) B's gateway may still accept the
/// code. What is asserted is B's state once the bound has passed (rejected), not a delay.
///
/// The target is a p99 below 20 ms (the benchmark under load, `propagation_bench
/// --under-load` in BENCHMARKS.md, measured p99s of 0.7-31.5 ms). A bound near it would make
/// this test flaky: it runs debug builds on shared machines (two cores here, shared with builds
/// and the other tests) with B saturated on purpose, where a scheduling hiccup alone costs
/// tens of milliseconds. 2 s is 100 times the target, yet far below what a stalled listener
/// costs: a deletion on A not enforced on B for 10 s while the database stalls and the
/// listener, its heartbeat unanswered, reconnects and resyncs (a full snapshot, seconds with a
/// million codes); and never, if deletions are not relayed (the nodes refresh only once an
/// hour here). A revocation held up for seconds by such a stall must fail this test, not be
/// waited out.
const REVOCATION_BOUND: Duration = Duration::from_secs(2);
/// Times each revoked code is asked for again, to see that it stays rejected.
const RESAMPLES: usize = 3;
/// A well-formed AppCode no one holds: the load's rejected requests.
const UNKNOWN_CODE: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// What B logs when its change listener loses its connection (`src/store/postgres/listen.rs`):
/// announcements were missed, and only a resync makes up for them.
const LISTENER_LOST: &str = "change listener lost its connection";

/// A management call on A during the revocation phase: answered within the harness's request
/// timeout, with `expected` (so never a 5xx). Returns the body and how long the call took.
async fn managed(
    http: &Http,
    node: &Server,
    method: Method,
    path: &str,
    expected: StatusCode,
) -> (Value, Duration) {
    let sent = Instant::now();
    let answer = tokio::time::timeout(
        REQUEST_TIMEOUT,
        http.admin(node, method.clone(), path, None),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path} unanswered after {REQUEST_TIMEOUT:?}"));
    let took = sent.elapsed();
    assert!(
        !answer.status.is_server_error(),
        "{method} {path}: {} {}",
        answer.status,
        answer.body
    );
    assert_eq!(answer.status, expected, "{method} {path}: {}", answer.body);
    (answer.body, took)
}

/// Asks `node`'s gateway for `code` until it rejects it (401). Fails on any other status, or
/// if it still accepts the code when asked once `bound` has passed since `revoked`. Returns how
/// many times it was accepted first, and when the first rejection arrived (for information).
async fn rejected_within(
    http: &Http,
    node: &Server,
    code: &str,
    revoked: Instant,
    bound: Duration,
) -> (usize, Duration) {
    let deadline = revoked + bound;
    let mut accepted = 0;
    loop {
        let sent = Instant::now();
        match http.call(node, code).await {
            StatusCode::UNAUTHORIZED => return (accepted, revoked.elapsed()),
            StatusCode::OK => {
                assert!(
                    sent < deadline,
                    "B still accepts a revoked AppCode when asked {bound:?} after A \
                     acknowledged its deletion ({accepted} earlier requests accepted it too)"
                );
                accepted += 1;
            }
            other => panic!("B answered {other} for a revoked AppCode"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Issue 12: B's gateway is saturated for the whole phase while codes are created and revoked
/// through A; each revocation must be enforced by B within [`REVOCATION_BOUND`], stay enforced,
/// and cost neither a failed management call nor a listener reconnect on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_a_saturated_node() {
    let Some(db) = TestDb::create("a_revocation_reaches_a_saturated_node").await else {
        return;
    };
    let (http, _upstream, a, b) = two_nodes(&db).await;
    // The load's valid code (proxied to the upstream), never revoked; the others' are unknown
    // (rejected by B's cache).
    let (app_id, _, steady) = http.shared_code(&a, &b, "saturated_app").await;
    let codes_path = format!("/apps/{app_id}/app-codes");

    let load = Load::start(
        b.gateway,
        LOAD_CONNECTIONS,
        &[steady.clone(), UNKNOWN_CODE.to_owned()],
        2,
    );
    // Under way on every connection before the first revocation.
    wait_until(
        PROPAGATION_TIMEOUT,
        "the load's requests are answered",
        || {
            let tally = load.tally();
            let under_way = tally.connections >= LOAD_CONNECTIONS as u64
                && tally.answered() >= 10 * LOAD_CONNECTIONS as u64;
            async move { under_way.then_some(()) }
        },
    )
    .await;
    let (before, b_cpu_before) = (load.tally(), load::cpu_time(b.proc.child.id()));
    let own_cpu_before = load::cpu_time(std::process::id());

    let (mut revoked, mut slowest, mut accepted_after) = (Vec::new(), Duration::ZERO, 0);
    let mut latest_rejection = Duration::ZERO;
    let phase = Instant::now();
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while revoked.len() < REVOCATIONS || phase.elapsed() < PHASE {
        pace.tick().await;
        let (body, took) = managed(&http, &a, Method::PUT, &codes_path, StatusCode::CREATED).await;
        slowest = slowest.max(took);
        let id = body["id"].as_str().unwrap().to_owned();
        let code = body["app_code"].as_str().unwrap().to_owned();
        wait_until(PROPAGATION_TIMEOUT, "B accepts a code created on A", || {
            let (http, b, code) = (&http, &b, &code);
            async move { (http.call(b, code).await == StatusCode::OK).then_some(()) }
        })
        .await;

        let path = format!("{codes_path}/{id}");
        let (_, took) = managed(&http, &a, Method::DELETE, &path, StatusCode::NO_CONTENT).await;
        let acknowledged = Instant::now();
        slowest = slowest.max(took);
        let (accepted, rejected_after) =
            rejected_within(&http, &b, &code, acknowledged, REVOCATION_BOUND).await;
        accepted_after += accepted;
        latest_rejection = latest_rejection.max(rejected_after);
        // No late event (a creation's read-back, a resync) brings it back.
        for _ in 0..RESAMPLES {
            assert_eq!(http.call(&b, &code).await, StatusCode::UNAUTHORIZED);
        }
        revoked.push(code);
    }

    // Still rejected once every revocation is done, on both nodes, while the load goes on.
    for _ in 0..RESAMPLES {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for code in &revoked {
            for node in [&a, &b] {
                assert_eq!(http.call(node, code).await, StatusCode::UNAUTHORIZED);
            }
        }
    }
    assert_eq!(http.call(&b, &steady).await, StatusCode::OK);
    let during = load.tally().since(&before);
    let cores = |from: Option<Duration>, pid: u32| {
        let used = load::cpu_time(pid)?.checked_sub(from?)?;
        Some(used.as_secs_f64() / during.elapsed.as_secs_f64())
    };
    let (b_cpu, own_cpu) = (
        cores(b_cpu_before, b.proc.child.id()),
        cores(own_cpu_before, std::process::id()),
    );
    let total = load.stop();

    // For information only: the load reached, B's CPU, the slowest management call.
    eprintln!("load on B during the revocation phase: {during}");
    eprintln!("load on B in all: {total}");
    if let (Some(b_cpu), Some(own_cpu)) = (b_cpu, own_cpu) {
        eprintln!(
            "CPU during the revocation phase: B {b_cpu:.2} cores, the test process (load, \
             upstream, checks) {own_cpu:.2} cores"
        );
    }
    eprintln!(
        "{} revocations; B accepted a revoked code on {accepted_after} requests before \
         rejecting it; the latest first rejection came {latest_rejection:?} after the \
         deletion's acknowledgement; slowest management call: {slowest:?}",
        revoked.len()
    );
    // The load ran through the phase (else nothing was saturated).
    assert!(during.answered() > 0, "the load got no answers: {during}");
    let log = b.stderr();
    let lost: Vec<&str> = log.lines().filter(|l| l.contains(LISTENER_LOST)).collect();
    assert!(
        lost.is_empty(),
        "B's change listener reconnected during the run:\n{}",
        lost.join("\n")
    );
}
