//! `apig-appcode apps`, `app-codes` and `quotas` against a running `apig-appcode serve`:
//! the whole cycle in tables and JSON (an app's update and secret reset included), the
//! one-line errors (server down, a refused token, APIG errors, bad arguments, a 200 that is
//! not the API's answer) with their exit statuses, shell completions and the help's examples.
//!
//! Run: `cargo test --features gateway --test cli`.
#![cfg(all(feature = "gateway", unix))]

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use http::StatusCode;
use serde_json::{json, Value};

#[path = "support/binary.rs"]
mod support;
use support::*;

impl Finished {
    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// `apig-appcode ARGS` with no `APIG_*` variable of ours leaking in.
fn bare_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("APIG_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A command line's words.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `serve` with the admin token on a store of its own (kept, with its upstream, in the last
/// value), and its management API's URL.
async fn served() -> (Server, String, (Upstream, tempfile::TempDir)) {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let api = url(server.admin);
    (server, api, (upstream, dir))
}

/// `apig-appcode ARGS` against `api` with the admin token in the environment.
async fn with_token(api: &str, args: &[&str]) -> Finished {
    cli(api, Auth::Env(TOKEN), args, None).await
}

/// [`with_token`], with `stdin` as the run's input.
async fn with_token_and_stdin(api: &str, args: &[&str], stdin: &str) -> Finished {
    cli(api, Auth::Env(TOKEN), args, Some(stdin)).await
}

/// How a run gets its admin token.
enum Auth<'a> {
    Env(&'a str),
    None,
}

/// `apig-appcode ARGS` against `server`, with no `APIG_*` variable of ours leaking in, the
/// token per `auth`, and `stdin` as its input. The CLI bounds its own calls, so waiting for
/// its exit is bounded too.
async fn cli(server: &str, auth: Auth<'_>, args: &[&str], stdin: Option<&str>) -> Finished {
    let mut cmd = bare_command(args);
    cmd.arg("--server").arg(server);
    if let Auth::Env(token) = auth {
        cmd.env("APIG_ADMIN_TOKEN", token);
    }
    let stdin = stdin.map(str::to_owned);
    let out: Output = tokio::task::spawn_blocking(move || {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting apig-appcode");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    finished(&out)
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The cells of the first row of `table` that holds `needle`.
fn row<'a>(table: &'a str, needle: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle} in:\n{table}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_and_codes_from_creation_to_deletion() {
    let (server, api, _keep) = served().await;

    // Create, as a table and as JSON.
    let created = with_token(&api, &["apps", "create", "shop", "--remark", "the shop"]).await;
    let table = created.ok();
    assert!(table.starts_with("ID "), "{table}");
    let app = row(table, "shop")[0].to_owned();
    let json = with_token(&api, &["apps", "create", "depot", "--json"])
        .await
        .json();
    assert_eq!(json["name"], "depot");

    // Generate: the value is printed, and the gateway takes it.
    let generated = with_token(&api, &["app-codes", "generate", &app]).await;
    let cells = row(generated.ok(), &app);
    let (code_id, code) = (cells[0].to_owned(), cells[3].to_owned());
    assert_eq!(code.len(), 64, "{}", generated.stdout);
    let gateway = server.gateway;
    wait_until(PROPAGATION_TIMEOUT, "the generated code works", || {
        let code = code.clone();
        async move { (gateway_status(gateway, &code).await == Some(StatusCode::OK)).then_some(()) }
    })
    .await;

    // Create with a value from stdin (never from the command line).
    let own = format!("own{}", "0123456789".repeat(7));
    let created =
        with_token_and_stdin(&api, &["app-codes", "create", &app], &format!("{own}\n")).await;
    assert!(created.ok().contains(&own), "{}", created.stdout);

    // Lists: tables with the counts, no values; JSON as the API sent it.
    let apps = with_token(&api, &["apps", "list"]).await;
    let header: Vec<&str> = apps
        .ok()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["ID", "NAME", "STATUS", "CODES", "CREATED"]);
    assert_eq!(row(&apps.stdout, &app)[1..4], ["shop", "valid", "2"]);
    assert!(apps.stdout.contains("depot"));
    let listed = with_token(&api, &["apps", "list", "--json"]).await.json();
    assert_eq!(listed["total"], 2);
    let codes = with_token(&api, &["app-codes", "list", &app]).await;
    assert!(codes.ok().contains(&code_id), "{}", codes.stdout);
    assert!(!codes.stdout.contains(&code) && !codes.stdout.contains(&own));
    let codes = with_token(&api, &["app-codes", "list", &app, "--json"])
        .await
        .json();
    assert_eq!(codes["total"], 2);

    // Show.
    let shown = with_token(&api, &["apps", "show", &app]).await;
    assert!(shown.ok().contains("the shop"), "{}", shown.stdout);
    let shown = with_token(&api, &["app-codes", "show", &app, &code_id, "--json"])
        .await
        .json();
    assert_eq!(shown["app_code"], code.as_str());

    // Past the five-code limit the server says so (403 APIG.3131): not a token problem.
    for _ in 0..3 {
        with_token(&api, &["app-codes", "generate", &app])
            .await
            .ok();
    }
    let sixth = with_token(&api, &["app-codes", "generate", &app]).await;
    sixth.failed("APIG.3131");
    assert!(!sixth.stderr.contains("admin token"), "{}", sixth.stderr);

    // Delete the code: the gateway refuses it; then the app.
    let deleted = with_token(&api, &["app-codes", "delete", &app, &code_id]).await;
    assert!(deleted.ok().contains(&code_id));
    assert_eq!(
        gateway_status(gateway, &code).await,
        Some(StatusCode::UNAUTHORIZED)
    );
    with_token(&api, &["apps", "delete", &app]).await.ok();

    // An APIG error: `error_code: error_msg`, exit 1.
    let gone = with_token(&api, &["apps", "show", &app]).await;
    gone.failed("APIG.3004: ");

    // No AppCode value reached the server's log (what it wrote up to its exit).
    let mut server = server;
    server.proc.signal("TERM");
    server.proc.wait_exit(EXIT_TIMEOUT).await;
    let log = server.stderr();
    assert!(!log.contains(&code) && !log.contains(&own), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_acl_is_set_shown_and_removed() {
    let (server, api, _keep) = served().await;
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("acl_cli").await;
    let none = with_token(&api, &["apps", "acl", "show", &app]).await;
    assert_eq!(none.ok().trim(), format!("app {app} has no ACL"));

    // The test's own address denied: the gateway refuses the code.
    let deny = format!("apps acl set {app} --type deny 127.0.0.1 ::1");
    let set = with_token(&api, &words(&deny)).await;
    let table = set.ok();
    assert_eq!(row(table, "127.0.0.1"), [app.as_str(), "DENY", "127.0.0.1"]);
    assert_eq!(row(table, "::1"), [app.as_str(), "DENY", "::1"]);
    let res = call_gateway(server.gateway, "/", Some(&code)).await;
    res.assert_apig_error(StatusCode::FORBIDDEN, "APIG.0402");

    let shown = with_token(&api, &["apps", "acl", "show", &app, "--json"])
        .await
        .json();
    assert_eq!(shown["app_acl_type"], "DENY");
    assert_eq!(
        shown["app_acl_values"],
        serde_json::json!(["127.0.0.1", "::1"])
    );

    // A bad value is the API's error, in one line, exit 1.
    let bad = format!("apps acl set {app} --type PERMIT 10.0.0.0/99");
    with_token(&api, &words(&bad)).await.failed("APIG.2012");
    // A type that is neither, or no value at all, is refused before any call.
    for bad in [
        &["apps", "acl", "set", &app, "--type", "ALLOW", "10.0.0.1"][..],
        &["apps", "acl", "set", &app, "--type", "DENY"],
    ] {
        assert_eq!(with_token(&api, bad).await.code, Some(2));
    }

    let removed = with_token(&api, &["apps", "acl", "delete", &app]).await;
    assert_eq!(removed.ok().trim(), format!("removed the ACL of app {app}"));
    assert_eq!(
        call_gateway(server.gateway, "/", Some(&code)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_is_created_bound_shown_and_deleted() {
    let (server, api, _keep) = served().await;
    let admin = Admin::new(server.admin, TOKEN);
    let (app, _, code) = admin.app_with_code("quota_cli").await;
    let created = with_token(
        &api,
        &[
            "quotas",
            "create",
            "one_a_day",
            "--calls",
            "1",
            "--unit",
            "day",
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(created["time_unit"], "DAY");
    let quota = created["app_quota_id"].as_str().unwrap().to_owned();
    let listed = with_token(&api, &["quotas", "list", "--name", "a_day"]).await;
    assert_eq!(
        row(listed.ok(), &quota),
        [
            quota.as_str(),
            "one_a_day",
            "1/1",
            "DAY",
            "at",
            "binding",
            "0"
        ]
    );

    let bound = with_token(&api, &["quotas", "bind", &quota, &app]).await;
    assert_eq!(row(bound.ok(), &app)[..2], [app.as_str(), quota.as_str()]);
    let gateway = || call_gateway(server.gateway, "/", Some(&code));
    assert_eq!(gateway().await.status, StatusCode::OK);
    gateway()
        .await
        .assert_apig_error(StatusCode::METHOD_NOT_ALLOWED, "APIG.0501");
    let shown = with_token(&api, &["quotas", "show", &quota]).await;
    let table = shown.ok();
    assert_eq!(row(table, "one_a_day").last(), Some(&"1"), "{table}");
    assert_eq!(row(table, &app)[1], "quota_cli", "{table}");

    // A second binding of the app elsewhere is the API's error, one line, exit 1.
    let other = with_token(
        &api,
        &[
            "quotas",
            "create",
            "ten_a_day",
            "--calls",
            "10",
            "--unit",
            "DAY",
            "--json",
        ],
    )
    .await
    .json();
    let other = other["app_quota_id"].as_str().unwrap().to_owned();
    with_token(&api, &["quotas", "bind", &other, &app])
        .await
        .failed("APIG.3326");
    // An update raises the limit: one more call.
    with_token(
        &api,
        &[
            "quotas",
            "update",
            &quota,
            "one_a_day",
            "--calls",
            "2",
            "--unit",
            "DAY",
        ],
    )
    .await
    .ok();
    assert_eq!(gateway().await.status, StatusCode::OK);

    let unbound = with_token(&api, &["quotas", "unbind", &quota, &app]).await;
    assert_eq!(
        unbound.ok().trim(),
        format!("unbound app {app} from app quota {quota}")
    );
    assert_eq!(gateway().await.status, StatusCode::OK);
    let deleted = with_token(&api, &["quotas", "delete", &quota]).await;
    assert_eq!(deleted.ok().trim(), format!("deleted app quota {quota}"));
    with_token(&api, &["quotas", "show", &quota])
        .await
        .failed("APIG.3093");
    // A unit that is not one is refused before any call.
    let bad = with_token(
        &api,
        &[
            "quotas", "create", "x_quota", "--calls", "1", "--unit", "WEEK",
        ],
    )
    .await;
    assert_eq!(bad.code, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_token_file_is_found_beside_the_database() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_without_token(&upstream, dir.path()).await;
    let database = database_url(dir.path());
    let listed = cli(
        &url(server.admin),
        Auth::None,
        &["apps", "list", "--database", &database],
        None,
    )
    .await;
    assert!(listed.ok().starts_with("ID "), "{}", listed.stdout);

    // Elsewhere: the message names the file it looked for.
    let other = tempfile::tempdir().unwrap();
    let missing = cli(
        &url(server.admin),
        Auth::None,
        &["apps", "list", "--database", &database_url(other.path())],
        None,
    )
    .await;
    missing.failed(&format!(
        "{}.admin-token",
        database_path(other.path()).display()
    ));
    assert!(
        missing.stderr.contains("APIG_ADMIN_TOKEN"),
        "{}",
        missing.stderr
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_named_by_its_source_never_shown() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let wrong = "wrong-admin-token-0123456789";
    let refused = cli(
        &url(server.admin),
        Auth::Env(wrong),
        &["apps", "list"],
        None,
    )
    .await;
    refused.failed("refused the admin token from the environment variable APIG_ADMIN_TOKEN");
    assert!(!refused.stderr.contains(wrong) && !refused.stdout.contains(wrong));

    // From a file: the message names the file.
    let file = dir.path().join("token");
    std::fs::write(&file, wrong).unwrap();
    let file_arg = file.display().to_string();
    let token_file = ["app-codes", "generate", "any", "--token-file", &file_arg];
    let refused = with_token(&url(server.admin), &token_file).await;
    refused.failed(&format!("from the file {file_arg}"));
    assert!(!refused.stderr.contains(wrong));

    // The gateway's address by mistake: said so, not taken for a refused token.
    let gateway = with_token(&url(server.gateway), &["apps", "list"]).await;
    gateway.failed("is the AppCode gateway");
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_is_down_is_named() {
    // A port that nothing listens on any more.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let down = cli(&url(addr), Auth::Env(TOKEN), &["apps", "list"], None).await;
    down.failed(&format!("cannot connect to {}", url(addr)));
    assert!(
        down.stderr.contains("may not be running"),
        "{}",
        down.stderr
    );
    assert!(!down.stderr.contains(TOKEN));
}

#[tokio::test]
async fn bad_arguments_exit_2() {
    let server = "http://127.0.0.1:1";
    for args in [
        &["apps", "create"][..],
        &["app-codes", "show", "app-only"],
        &["apps", "frobnicate"],
    ] {
        let run = cli(server, Auth::Env(TOKEN), args, None).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
    }
    // An empty stdin for `app-codes create` is a usage error too, found before any call.
    let run = with_token_and_stdin(server, &["app-codes", "create", "app"], "").await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("stdin"), "{}", run.stderr);
    // A URL that is neither http:// nor https://, or has a path.
    for server in ["ftp://127.0.0.1:1", "https://127.0.0.1:1/v2"] {
        let run = cli(server, Auth::Env(TOKEN), &["apps", "list"], None).await;
        assert_eq!(run.code, Some(2), "{}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_https_to_a_management_listener_with_tls() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path());
    let mut args = base_args(&upstream, dir.path());
    args.extend(["--admin-token".into(), TOKEN.into()]);
    args.extend(["--admin-tls-cert".into(), cert.display().to_string()]);
    args.extend(["--admin-tls-key".into(), key.display().to_string()]);
    let serve = Proc::spawn(serve_command(&args));
    let admin = wait_until(START_TIMEOUT, "the TLS admin listener", || {
        let found = listening(&serve.stdout(), "admin listening on ");
        async move { found }
    })
    .await;
    assert!(serve.stdout().contains("admin listening on https://"));
    let server = format!("https://localhost:{}", admin.port());
    let list = |ca: Option<&Path>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["apps", "list", "--server", &server]);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("APIG_") || name.starts_with("SSL_CERT") {
                cmd.env_remove(&*name);
            }
        }
        cmd.env("APIG_ADMIN_TOKEN", TOKEN);
        if let Some(ca) = ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        cmd
    };
    // The certificate checked against SSL_CERT_FILE, as against the system's roots.
    let (status, stdout, stderr) = run_to_exit(list(Some(&cert))).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("ID "), "{stdout}");
    // A certificate no root vouches for: refused, in one line.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let (status, _, stderr) = run_to_exit(list(Some(&other_ca))).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_is_updated_and_its_secret_reset_or_set() {
    let (server, api, _keep) = served().await;
    let created = with_token(&api, &["apps", "create", "shop", "--json"])
        .await
        .json();
    let app = created["id"].as_str().unwrap().to_owned();
    let old_secret = created["app_secret"].as_str().unwrap().to_owned();

    // Only the remark: the name is kept.
    let updated = with_token(&api, &["apps", "update", &app, "--remark", "the new shop"]).await;
    let cells = row(updated.ok(), &app);
    assert_eq!(cells[1..3], ["shop", "valid"]);
    assert!(
        updated.stdout.contains("the new shop"),
        "{}",
        updated.stdout
    );
    let renamed = with_token(
        &api,
        &[
            "apps",
            "update",
            &app,
            "--name",
            "shop_eu",
            "--app-key",
            "shop-eu-key-01",
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(
        (&renamed["name"], &renamed["app_key"], &renamed["remark"]),
        (
            &json!("shop_eu"),
            &json!("shop-eu-key-01"),
            &json!("the new shop")
        )
    );
    with_token(&api, &["apps", "update", &app, "--name", "x"])
        .await
        .failed("APIG.2012");

    // A generated secret is printed once, and is the app's.
    let reset = with_token(&api, &["apps", "reset-secret", &app]).await;
    let cells = row(reset.ok(), &app);
    let secret = cells[3].to_owned();
    assert_eq!(secret.len(), 32, "{}", reset.stdout);
    assert_ne!(secret, old_secret);
    let shown = with_token(&api, &["apps", "show", &app, "--json"])
        .await
        .json();
    assert_eq!(shown["app_secret"], secret.as_str());

    // One of our own from stdin: set, and not echoed.
    let own = "MyOwnSecret_0123456789";
    let set = with_token_and_stdin(
        &api,
        &["apps", "reset-secret", &app, "--stdin"],
        "MyOwnSecret_0123456789\n",
    )
    .await;
    assert_eq!(set.ok().trim(), format!("set the secret of app {app}"));
    assert!(!set.stderr.contains(own));
    let shown = with_token(&api, &["apps", "show", &app, "--json"])
        .await
        .json();
    assert_eq!(shown["app_secret"], own);
    // An empty stdin is a usage error, found before any call.
    let empty = with_token_and_stdin(&api, &["apps", "reset-secret", &app, "--stdin"], "").await;
    assert_eq!(empty.code, Some(2), "{}", empty.stderr);
    server.stop().await;
}

/// `apig-appcode ARGS` with no server, no `APIG_*` variable, no stdin.
fn offline(args: &[&str]) -> Finished {
    let out = bare_command(args)
        .stdin(Stdio::null())
        .output()
        .expect("starting apig-appcode");
    finished(&out)
}

fn finished(out: &Output) -> Finished {
    Finished::new(
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef apig-appcode"),
        ("fish", "complete -c apig-appcode"),
    ] {
        let run = offline(&["completions", shell]);
        let script = run.ok();
        assert!(script.contains(marker), "{shell}:\n{script}");
        for command in ["reset-secret", "import", "app-codes"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    assert_eq!(offline(&["completions", "tcsh"]).code, Some(2));
}

/// A script that cannot be written (a full disk here; a reader gone is the same error path)
/// is one line and exit 1, not a panic.
#[test]
fn completions_that_cannot_be_written_fail_in_one_line() {
    let Ok(full) = std::fs::File::options().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full here");
        return;
    };
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .expect("starting apig-appcode");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("apig-appcode: "), "{stderr}");
}

#[test]
fn every_command_shows_examples_in_its_help() {
    for command in [
        &["apps", "create"][..],
        &["apps", "list"],
        &["apps", "show"],
        &["apps", "update"],
        &["apps", "reset-secret"],
        &["apps", "delete"],
        &["apps", "acl", "set"],
        &["apps", "acl", "show"],
        &["apps", "acl", "delete"],
        &["app-codes", "create"],
        &["app-codes", "generate"],
        &["app-codes", "list"],
        &["app-codes", "show"],
        &["app-codes", "delete"],
        &["quotas", "create"],
        &["quotas", "list"],
        &["quotas", "show"],
        &["quotas", "update"],
        &["quotas", "delete"],
        &["quotas", "bind"],
        &["quotas", "unbind"],
        &["import"],
        &["completions"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = offline(&args);
        let help = run.ok();
        assert!(help.contains("Example"), "{command:?}:\n{help}");
        assert!(
            help.contains(&format!("apig-appcode {}", command.join(" "))),
            "{command:?}:\n{help}"
        );
    }
}

/// A server on 127.0.0.1 port 0 answering every request `200` with `body`.
async fn answering_200(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(move || async move { body });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_success_whose_body_is_not_the_apis_answer_is_an_error() {
    let html = answering_200("<html>welcome</html>").await;
    let empty = answering_200("{}").await;
    for (server, args, needle) in [
        (&html, &["apps", "list"][..], "not JSON"),
        (&empty, &["apps", "list"], "no `apps` list"),
        (&empty, &["apps", "show", "a1"], "no `id`"),
        (&empty, &["app-codes", "generate", "a1"], "no `id`"),
        (&empty, &["quotas", "show", "q1"], "no `app_quota_id`"),
        (&empty, &["apps", "reset-secret", "a1"], "no `id`"),
        (&empty, &["apps", "list", "--json"], "no `apps` list"),
    ] {
        let run = cli(server, Auth::Env(TOKEN), args, None).await;
        run.failed(needle);
        assert!(
            run.stderr.contains("unexpected answer from"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}
