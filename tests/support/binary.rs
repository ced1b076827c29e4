//! The harness of the tests that run the `apig-appcode` binary: the child process, an echo
//! upstream, plain HTTP/1 clients, and the management API.
//!
//! Every wait polls against a deadline; nothing asserts on elapsed time.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

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

#[path = "client.rs"]
mod client;
#[path = "finished.rs"]
mod finished;
#[path = "management.rs"]
mod management;
#[path = "process.rs"]
mod process;
#[path = "quota.rs"]
mod quota;
#[path = "raw_http1.rs"]
mod raw_http1;
#[path = "server.rs"]
mod server;
#[path = "upstream.rs"]
mod upstream;
#[path = "wait.rs"]
mod wait;

// Each test crate uses its own part of the harness.
#[allow(unused_imports)]
pub(crate) use self::{
    client::{
        call_gateway, gateway_status, get, is_refused, request, send, send_over, try_send, Resp,
    },
    finished::Finished,
    management::{apps_path, metrics, sample, serve_with_code, signed_call, Admin},
    process::{collect, run_to_exit, Proc},
    quota::admitted_until_refused,
    raw_http1::{idle_waits_between_requests, read_response_from},
    server::{
        base_args, database_path, database_url, listening, self_signed, serve_args, serve_command,
        start_refused, start_with_token, start_without_token, Exited, Server,
    },
    upstream::{
        echo, Upstream, BIG_LEN, BIG_PATH, LOAD_ANSWER, LOAD_PATH, STALL_DECLARED, STALL_PATH,
        THINK_PATH, THINK_TIME,
    },
    wait::wait_until,
};
