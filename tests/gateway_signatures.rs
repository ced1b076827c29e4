//! App authentication by signature at the binary: requests signed by the official SDK core's
//! `Signer` (huaweicloudsdkcore) with an app's key and secret pass through `serve --app-auth
//! appcode,signature` to the upstream as the app; tampered, stale or malformed ones are
//! refused; a secret reset and an app deletion refuse the old signature at once; the trace log
//! holds no secret. The Python side is `tests/sdk/signed_requests.py`.
//!
//! Run: `cargo test --features gateway --test gateway_signatures` (the SDK is installed in a
//! virtual environment under `target/sdk-venv` on first use).
#![cfg(all(feature = "gateway", unix))]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

#[path = "support/binary.rs"]
mod support;
use support::*;

#[path = "support/sdk_python.rs"]
mod sdk_python;
use sdk_python::{run_sdk_script, sdk_python};

/// Runs `signed_requests.py mode` with the key and secret; its output, after asserting success.
async fn run_script(
    python: &Path,
    mode: &str,
    server: &Server,
    verify: SocketAddr,
    app: &str,
    key: &str,
    secret: &str,
) -> String {
    let env = [
        ("APIG_GATEWAY", &*server.gateway.to_string()),
        ("APIG_VERIFY", &*verify.to_string()),
        ("APIG_APP_ID", app),
        ("APIG_APP_KEY", key),
        ("APIG_APP_SECRET", secret),
    ];
    let limit = Duration::from_secs(120);
    let out = run_sdk_script(python, "signed_requests.py", &[mode], &env, limit).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "signed_requests.py {mode} failed ({}):\n{stdout}",
        out.status
    );
    stdout
}

/// A server accepting AppCodes and signatures, with `extra`. First, the upstream and the
/// server's directory: bound first, they are dropped after the server.
async fn signing_server(extra: &[&str]) -> ((Upstream, tempfile::TempDir), Server) {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let args = [&["--app-auth", "appcode,signature"], extra].concat();
    let server = start_with_token(&upstream, dir.path(), &args).await;
    ((upstream, dir), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_by_the_official_sdk_pass_and_every_forgery_is_refused() {
    let Some(python) = sdk_python() else { return };
    let (_keep, server) =
        signing_server(&["--verify-listen", "127.0.0.1:0", "--log", "trace"]).await;
    let verify = listening(&server.stdout(), "verify listening on ")
        .unwrap_or_else(|| panic!("no verify listener announced:\n{}", server.stdout()));
    let admin = Admin::new(server.admin, TOKEN);
    let created = admin
        .call(Method::POST, "/apps", Some(json!({"name": "signing_app"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let app = created.json();
    let (id, key, secret) = (
        app["id"].as_str().unwrap().to_owned(),
        app["app_key"].as_str().unwrap().to_owned(),
        app["app_secret"].as_str().unwrap().to_owned(),
    );
    let run = |mode, secret: &str| {
        let (python, server, id, key, secret) = (&python, &server, &id, &key, secret.to_owned());
        async move { run_script(python, mode, server, verify, id, key, &secret).await }
    };
    run("accept", &secret).await;

    // AppCodes still work beside signatures.
    let (code_id, code) = admin.generate_code(&id).await;
    let res = call_gateway(server.gateway, "/orders", Some(&code)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.upstream_headers()["x-apig-appcode-id"], [code_id]);

    // A secret reset refuses the old secret at once, and the new one passes.
    let reset = admin
        .call(Method::PUT, &format!("/apps/secret/{id}"), None)
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text());
    let new_secret = reset.json()["app_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    run("refused", &secret).await;
    run("get", &new_secret).await;

    // A deleted app's signature is refused at once.
    let deleted = admin
        .call(Method::DELETE, &format!("/apps/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    run("refused", &new_secret).await;

    // The trace log holds the requests' outcomes, and neither secret.
    let log = format!("{}{}", server.stdout(), server.stderr());
    assert!(log.contains("signature refused"), "no trace of refusals");
    for leaked in [&secret, &new_secret] {
        assert!(!log.contains(leaked.as_str()), "a secret in the log");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_accepts_appcodes_only_and_the_flag_is_checked() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_to_exit(serve_command(
        &[
            base_args(&upstream, dir.path()),
            vec!["--app-auth".into(), "bearer".into()],
        ]
        .concat(),
    ))
    .await;
    assert!(!status.success());
    assert!(stderr.contains("appcode"), "{stderr}");

    let server = start_with_token(&upstream, dir.path(), &[]).await;
    let mut req = get("/orders");
    req.headers_mut().insert(
        "authorization",
        "SDK-HMAC-SHA256 Access=k, SignedHeaders=host;x-sdk-date, Signature=00"
            .parse()
            .unwrap(),
    );
    let res = send(server.gateway, req).await;
    res.assert_apig_error(StatusCode::UNAUTHORIZED, "APIG.0303");
    assert_eq!(
        res.json()["error_msg"],
        "Incorrect app authentication information: AppCode missing"
    );
    server.stop().await;
}

/// A signed upload's head, with `key` and a signature that does not verify, announcing `len`
/// bytes of body.
fn upload_head(key: &str, len: usize) -> Vec<u8> {
    format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nX-Sdk-Date: 20261207T000000Z\r\n\
         Authorization: SDK-HMAC-SHA256 Access={key}, SignedHeaders=host;x-sdk-date, \
         Signature={}\r\nContent-Length: {len}\r\n\r\n",
        "0".repeat(64)
    )
    .into_bytes()
}

/// The status and `Retry-After` of a signed upload of `len` bytes, sent whole.
async fn upload(gateway: SocketAddr, key: &str, len: usize) -> (StatusCode, String) {
    use tokio::io::AsyncWriteExt;
    let mut conn = tokio::net::TcpStream::connect(gateway).await.unwrap();
    conn.write_all(&upload_head(key, len)).await.unwrap();
    // The gateway may answer before the end and drain the rest: a failed write is no error.
    let _ = conn.write_all(&vec![b'x'; len]).await;
    let (status, head, _) = read_response_from(&mut conn, &mut Vec::new()).await;
    (status, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_bodies_being_read_share_a_memory_cap_and_a_client_that_leaves_frees_its_share() {
    use tokio::io::AsyncWriteExt;
    // The least allowed: one signed body of the largest size (12 MiB).
    let (_keep, server) = signing_server(&["--signed-body-memory", "12582912"]).await;
    let admin = Admin::new(server.admin, TOKEN);
    let created = admin
        .call(
            Method::POST,
            "/apps",
            Some(json!({"name": "uploading_app"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let key = created.json()["app_key"].as_str().unwrap().to_owned();

    // The app key is no secret: a client holding only it sends 8 MB of a 12 MB body, then
    // stalls.
    let mut stalled = tokio::net::TcpStream::connect(server.gateway)
        .await
        .unwrap();
    stalled
        .write_all(&upload_head(&key, 12_000_000))
        .await
        .unwrap();
    stalled.write_all(&vec![b'x'; 8_000_000]).await.unwrap();

    // Once the gateway holds those 8 MB (its gauge says so), another 5 MB body does not fit
    // beside them.
    let held = || async {
        let res = send(server.admin, get("/metrics")).await;
        sample(&res.text(), "apig_appcode_signed_body_bytes_held")
    };
    wait_until(PROPAGATION_TIMEOUT, "the stalled body held", || async {
        (held().await >= 8_000_000.0).then_some(())
    })
    .await;
    let (status, head) = upload(server.gateway, &key, 5_000_000).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );

    // The stalled client leaves: its share is given back, and the body is read (then refused
    // for its signature).
    drop(stalled);
    wait_until(
        PROPAGATION_TIMEOUT,
        "the stalled body given back",
        || async { (held().await == 0.0).then_some(()) },
    )
    .await;
    let (status, head) = upload(server.gateway, &key, 5_000_000).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{head}");
    server.stop().await;
}
