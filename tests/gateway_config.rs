//! How the `apig-appcode` binary is configured: environment variables, the TOML file, bad flag
//! values, and secrets given as flags that never reach its output.
//!
//! Run: `cargo test --features gateway --test gateway_config`.

use apig_appcode::gateway::config::DEFAULT_PROJECT_ID;
use http::{Method, StatusCode};
use serde_json::{json, Value};

#[path = "support/binary.rs"]
mod support;
use support::*;

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
    let cases: [(&[&str], &str); 7] = [
        (
            &["--upstream", up, "--gateway-listen", "nowhere"],
            "--gateway-listen",
        ),
        // Neither a gateway nor a verify listener: nothing to serve.
        (&[], "--verify-listen"),
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
async fn a_host_name_as_a_listen_address_is_refused_with_the_form_expected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apig.toml");
    std::fs::write(
        &file,
        "upstream = \"http://127.0.0.1:9\"\nadmin_listen = \"localhost:8081\"\n",
    )
    .unwrap();
    let up = "http://127.0.0.1:9";
    let flag = |name: &'static str| serve_command(&["--upstream", up, name, "localhost:8080"]);
    let mut from_env = serve_command(&["--upstream", up]);
    from_env.env("APIG_VERIFY_LISTEN", "localhost:8082");
    let cases = [
        (flag("--gateway-listen"), "--gateway-listen"),
        (flag("--admin-listen"), "--admin-listen"),
        (flag("--verify-listen"), "--verify-listen"),
        (from_env, "--verify-listen"),
        (
            serve_command(&["--config", file.to_str().unwrap()]),
            "admin_listen",
        ),
    ];
    for (mut cmd, setting) in cases {
        cmd.current_dir(dir.path());
        let (status, _, stderr) = run_to_exit(cmd).await;
        assert_eq!(status.code(), Some(2), "{setting}: {stderr}");
        assert!(
            stderr.contains(setting)
                && stderr.contains("expects an IP address and port, such as 127.0.0.1:8080")
                && stderr.contains("host names are not resolved"),
            "{setting}: {stderr}"
        );
    }
}

/// Whatever stops a start (a port taken, unusable TLS files), with any log format: one plain
/// line `apig-appcode: ...` on stderr, exit status 1, no log line for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_says_why_in_one_plain_line() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Held until the end: the admin port the server cannot have.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let cases: [(&[(&str, &str)], String); 2] = [
        (
            &[("--admin-listen", &taken_addr)],
            format!("apig-appcode: cannot listen on {taken_addr} (admin): "),
        ),
        (
            &[
                ("--gateway-tls-cert", missing),
                ("--gateway-tls-key", missing),
            ],
            "apig-appcode: TLS: ".to_owned(),
        ),
    ];
    for (flags, want) in cases {
        for format in ["text", "json"] {
            let mut args = base_args(&upstream, dir.path());
            args.extend(["--admin-token", TOKEN, "--log-format", format].map(String::from));
            for (flag, value) in flags {
                match args.iter().position(|a| a == flag) {
                    Some(at) => args[at + 1] = value.to_string(),
                    None => args.extend([flag.to_string(), value.to_string()]),
                }
            }
            let (status, stdout, stderr) = run_to_exit(serve_command(&args)).await;
            assert_eq!(status.code(), Some(1), "{flags:?} {format}: {stderr}");
            let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&want)).collect();
            assert_eq!(said.len(), 1, "{flags:?} {format}: {stderr}");
            assert!(
                !stderr.contains("ERROR"),
                "{flags:?} {format}: logged as well:\n{stderr}"
            );
            assert!(!stdout.contains("gateway listening"), "{stdout}");
        }
    }
    drop(taken);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_keyed_by_an_app_name_is_warned_about() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("apig.toml");
    std::fs::write(&config, "[rate_limits]\nshop = \"10/s\"\n").unwrap();
    let mut args = base_args(&upstream, dir.path());
    args.extend(["--config".to_owned(), config.display().to_string()]);
    let server = Server::start(serve_command(&args)).await.unwrap();
    let log = server
        .stderr_containing(&["app_id=shop", "are app IDs, not names"])
        .await;
    assert!(log.contains("10/s"), "{log}");
}

/// A stdout that cannot be written (a full disk here; a supervisor that closed its end of the
/// pipe is the same failed write) does not stop the server: the startup lines are dropped and
/// it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_that_cannot_be_written_does_not_stop_the_server() {
    let Ok(full) = std::fs::File::options().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full here");
        return;
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Its ports cannot be read from its output: free ones, chosen here.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (gateway, admin) = (free(), free());
    let mut child = serve_command(&[
        "--upstream",
        &upstream.url(),
        "--gateway-listen",
        &gateway.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--database",
        &database_url(dir.path()),
    ])
    .stdin(std::process::Stdio::null())
    .stdout(full)
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut health = None;
    for _ in 0..200 {
        if let Ok(res) = try_send(admin, get("/healthz")).await {
            health = Some(res.status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(exited, None, "the server exited");
    assert_eq!(health, Some(StatusCode::OK), "/healthz");
}
