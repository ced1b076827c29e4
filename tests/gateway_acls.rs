//! App ACLs at the binary: an ACL set through the management API refuses a client's address on
//! the gateway and on the verify listener with `403 APIG.0402`, reads the client's address from
//! `X-Forwarded-For` only when the peer is a `--trusted-proxy`, and never from `X-Real-IP`.
//!
//! Run: `cargo test --features gateway --test gateway_acls`.
#![cfg(all(feature = "gateway", unix))]

use std::net::SocketAddr;

use http::{Method, StatusCode};
use serde_json::json;

#[path = "support/binary.rs"]
mod support;
use support::*;

/// A server with `extra` flags and a verify listener; its app, its code, and the verify address.
async fn acl_server(
    upstream: &Upstream,
    dir: &std::path::Path,
    extra: &[&str],
) -> (Server, SocketAddr, String, String) {
    let mut flags = vec!["--verify-listen", "127.0.0.1:0"];
    flags.extend_from_slice(extra);
    let server = start_with_token(upstream, dir, &flags).await;
    let verify = listening(&server.stdout(), "verify listening on ")
        .unwrap_or_else(|| panic!("no verify listener announced:\n{}", server.stdout()));
    let (app, _, code) = Admin::new(server.admin, TOKEN)
        .app_with_code("acl_app")
        .await;
    (server, verify, app, code)
}

async fn set_acl(server: &Server, app: &str, kind: &str, values: &[&str]) {
    let res = Admin::new(server.admin, TOKEN)
        .call(
            Method::PUT,
            &format!("/apps/{app}/app-acl"),
            Some(json!({"app_acl_type": kind, "app_acl_values": values})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
}

/// The answer of `addr` to a request with `code` and the extra `headers`.
async fn answer(addr: SocketAddr, code: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = get("/orders");
    req.headers_mut()
        .insert("x-apig-appcode", code.parse().unwrap());
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    send(addr, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_refuses_the_peer_on_both_listeners_and_forged_headers_do_not_help() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, verify, app, code) = acl_server(&upstream, dir.path(), &[]).await;
    for addr in [server.gateway, verify] {
        assert_eq!(answer(addr, &code, &[]).await.status, StatusCode::OK);
    }

    // The test's own address is the one refused.
    set_acl(&server, &app, "DENY", &["127.0.0.0/8", "::1"]).await;
    for addr in [server.gateway, verify] {
        answer(addr, &code, &[])
            .await
            .assert_apig_error(StatusCode::FORBIDDEN, "APIG.0402");
        // Claiming another address, as a client may, changes nothing: no proxy is trusted.
        let forged = [("x-forwarded-for", "192.0.2.1"), ("x-real-ip", "192.0.2.1")];
        answer(addr, &code, &forged)
            .await
            .assert_apig_error(StatusCode::FORBIDDEN, "APIG.0402");
    }
    let m = metrics(&server).await;
    assert_eq!(
        sample(&m, "apig_appcode_rejections_total{reason=\"ip_denied\"}"),
        4.0,
        "{m}"
    );

    // Only the listed addresses: the test's is one.
    set_acl(&server, &app, "PERMIT", &["127.0.0.1", "::1"]).await;
    for addr in [server.gateway, verify] {
        assert_eq!(answer(addr, &code, &[]).await.status, StatusCode::OK);
    }
    // Not listed any more, then the ACL removed: open again, on both listeners.
    set_acl(&server, &app, "PERMIT", &["192.0.2.1"]).await;
    answer(server.gateway, &code, &[])
        .await
        .assert_apig_error(StatusCode::FORBIDDEN, "APIG.0402");
    let res = Admin::new(server.admin, TOKEN)
        .call(Method::DELETE, &format!("/apps/{app}/app-acl"), None)
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    for addr in [server.gateway, verify] {
        assert_eq!(answer(addr, &code, &[]).await.status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_checked() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The test connects from the loopback: it plays the trusted proxy.
    let (server, verify, app, code) =
        acl_server(&upstream, dir.path(), &["--trusted-proxy", "127.0.0.1/32"]).await;
    set_acl(&server, &app, "PERMIT", &["192.0.2.0/24"]).await;
    for addr in [server.gateway, verify] {
        // The proxy's client is permitted.
        let via = [("x-forwarded-for", "192.0.2.7")];
        assert_eq!(answer(addr, &code, &via).await.status, StatusCode::OK);
        // A client that put a permitted address in front of its own: the proxy appended the
        // real one, which is what counts.
        let prefixed = [("x-forwarded-for", "192.0.2.7, 203.0.113.9")];
        answer(addr, &code, &prefixed)
            .await
            .assert_apig_error(StatusCode::FORBIDDEN, "APIG.0402");
        // X-Real-IP is not read, even from the proxy; nor is a second field in front.
        let real_ip = [
            ("x-real-ip", "192.0.2.7"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        answer(addr, &code, &real_ip)
            .await
            .assert_apig_error(StatusCode::FORBIDDEN, "APIG.0402");
        // What the proxy forwarded is not an address: the client is unknown.
        let garbage = [("x-forwarded-for", "unknown")];
        answer(addr, &code, &garbage)
            .await
            .assert_apig_error(StatusCode::FORBIDDEN, "APIG.0401");
        // No header: the proxy itself is the client, and it is not permitted.
        answer(addr, &code, &[])
            .await
            .assert_apig_error(StatusCode::FORBIDDEN, "APIG.0402");
    }
}
