//! The `apig-appcode` binary and HTTPS: a TLS gateway, and `--require-https` on plain HTTP.
//!
//! Run: `cargo test --features gateway --test gateway_https`.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::HandshakeKind;

#[path = "support/binary.rs"]
mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_gateway_accepts_an_appcode_over_https_and_resumes_sessions() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, generated) = self_signed(dir.path());
    let server = start_with_token(
        &upstream,
        dir.path(),
        &[
            "--gateway-tls-cert",
            cert.to_str().unwrap(),
            "--gateway-tls-key",
            key.to_str().unwrap(),
            "--header-timeout",
            "2",
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

    // Each config keeps the sessions it can resume: one per client.
    let client = || {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(generated.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    let connect = |connector: tokio_rustls::TlsConnector| async move {
        let tcp = TcpStream::connect(server.gateway).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(REQUEST_TIMEOUT, connector.connect(name, tcp))
            .await
            .unwrap()
            .expect("TLS handshake")
    };
    let returning = client();
    let tls = connect(returning.clone()).await;
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
    let mut req = get("/secure");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    let res = send_over(tls, "localhost", req).await.unwrap();
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.upstream_headers()["x-forwarded-proto"], ["https"]);

    // Many other clients come and go; then the first one returns and resumes its session
    // (TLS 1.3, with a ticket the first connection received) however many came between: the
    // server keeps no state per session that they could push out.
    for _ in 0..300 {
        let other = connect(client()).await;
        drop(other);
    }
    let tls = connect(returning).await;
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    let mut req = get("/again");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    let res = send_over(tls, "localhost", req).await.unwrap();
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // A keep-alive connection with waits between its requests.
    let mut tls = connect(client()).await;
    idle_waits_between_requests(&mut tls, &code).await;

    // A client that connects and never says hello is closed at the header deadline.
    let mut silent = TcpStream::connect(server.gateway).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent client was not closed: {read:?}"
    );

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
