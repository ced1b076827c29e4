//! Every forward and reject path of the layer, driven with `service_fn` and `tower_test::mock`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use tower::{service_fn, ServiceBuilder, ServiceExt};

use super::*;
use crate::cache::AppCodeCache;
use crate::code::AppCode;
use crate::identity::AppIdentity;
use crate::test_support::ScriptedProvider;

type Body = Bytes;

/// A cache holding one code of app `app-1`, loaded.
fn loaded_cache() -> (AppCodeCache, AppCode) {
    let cache = AppCodeCache::new();
    let code = AppCode::generate();
    cache.replace_all([(
        code.clone(),
        AppIdentity::new("app-1", "code-1").with_attribute("tier", "gold"),
    )]);
    (cache, code)
}

/// A provider with an empty snapshot that finds `code`, as `identity`, when asked for it.
fn finding(code: &AppCode, identity: AppIdentity) -> ScriptedProvider {
    let provider = ScriptedProvider::with_snapshot(Vec::new());
    let lookups = HashMap::from([(code.expose().to_owned(), identity)]);
    provider.set(|s| s.lookups = Some(lookups));
    provider
}

/// A builder over [`loaded_cache`], and the code it holds.
fn builder_with_code() -> (AppCodeAuthLayerBuilder, AppCode) {
    let (cache, code) = loaded_cache();
    (AppCodeAuthLayer::builder().cache(cache), code)
}

/// Echoes what the inner service saw: the identity and the headers, as text.
async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let id = req.extensions().get::<AppIdentity>().cloned();
    let mut seen = format!(
        "app={} code_id={}",
        id.as_ref().map_or("-", |i| i.app_id()),
        id.as_ref().map_or("-", |i| i.app_code_id())
    );
    for (name, value) in req.headers() {
        seen.push_str(&format!(" {name}={}", value.to_str().unwrap_or("?")));
    }
    Ok(Response::new(Bytes::from(seen)))
}

fn request(code: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri("/orders");
    if let Some(c) = code {
        b = b.header("x-apig-appcode", c);
    }
    b.body(Bytes::new()).unwrap()
}

type EchoFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

fn boxed_echo(req: Request<Body>) -> EchoFuture {
    Box::pin(echo(req))
}

async fn call(layer: &AppCodeAuthLayer, req: Request<Body>) -> Response<Body> {
    ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(boxed_echo))
        .oneshot(req)
        .await
        .unwrap()
}

fn json(res: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(res.body()).expect("APIG JSON body")
}

fn assert_apig(res: &Response<Body>, status: StatusCode, code: &str) {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = json(res);
    assert_eq!(body["error_code"], code);
    let rid = res.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(body["request_id"], rid);
}

/// `res` is APIG's answer to a bad AppCode, its message ending in `why`.
fn assert_401(res: &Response<Body>, why: &str) {
    assert_apig(res, StatusCode::UNAUTHORIZED, "APIG.0303");
    assert!(json(res)["error_msg"].as_str().unwrap().ends_with(why));
}

/// A layer over `provider`, its first load done.
async fn loaded_layer(provider: &ScriptedProvider) -> AppCodeAuthLayer {
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .build();
    layer.cache().loaded().await;
    layer
}

#[tokio::test]
async fn valid_code_is_forwarded_with_identity_and_without_the_header() {
    let (cache, code) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache);
    let res = call(&layer, request(Some(code.expose()))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = String::from_utf8(res.body().to_vec()).unwrap();
    assert!(seen.starts_with("app=app-1 code_id=code-1"), "{seen}");
    assert!(
        !seen.contains("x-apig-appcode"),
        "header reached the inner service: {seen}"
    );
    assert_eq!(layer.metrics().hits, 1);
}

#[tokio::test]
async fn a_kept_header_reaches_the_service_marked_sensitive() {
    let (builder, code) = builder_with_code();
    let layer = builder.strip_header(false).build();
    let svc =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|req: Request<Body>| async move {
                let v = req.headers().get("x-apig-appcode").expect("kept");
                let debug = format!("{:?}", req.headers());
                Ok::<_, Infallible>(Response::new(Bytes::from(format!(
                    "{} {debug}",
                    v.is_sensitive()
                ))))
            }));
    let seen = svc
        .oneshot(request(Some(code.expose())))
        .await
        .unwrap()
        .into_body();
    let seen = String::from_utf8(seen.to_vec()).unwrap();
    assert!(seen.starts_with("true "), "{seen}");
    assert!(
        !seen.contains(code.expose()),
        "Debug of the headers shows the code: {seen}"
    );
}

#[tokio::test]
async fn missing_and_empty_headers_are_401_missing() {
    let (cache, _) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache);
    for req in [request(None), request(Some(""))] {
        let res = call(&layer, req).await;
        assert_401(&res, "AppCode missing");
        assert_eq!(res.headers()["www-authenticate"], "AppCode");
    }
    assert_eq!(layer.metrics().rejected_missing, 2);
}

#[tokio::test]
async fn repeated_header_is_401_invalid_even_if_one_is_valid() {
    let (cache, code) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache);
    let mut req = request(Some(code.expose()));
    req.headers_mut().append(
        "x-apig-appcode",
        HeaderValue::from_str(code.expose()).unwrap(),
    );
    let res = call(&layer, req).await;
    assert_401(&res, "AppCode invalid");
}

#[tokio::test]
async fn malformed_and_unknown_codes_get_the_same_answer_and_never_reach_the_provider() {
    let provider = ScriptedProvider::with_snapshot(Vec::new());
    provider.set(|s| s.lookups = Some(HashMap::new()));
    let layer = loaded_layer(&provider).await;
    let malformed: Vec<Vec<u8>> = vec![
        b"short".to_vec(),
        vec![b'a'; 181],
        [&b"="[..], &[b'a'; 70][..]].concat(),
        [&[b'a'; 70][..], &b"*"[..]].concat(),
        [&[b'a'; 70][..], &[0x80u8, 0xff][..]].concat(), // obs-text bytes
        [&[b'a'; 70][..], &b" b"[..]].concat(),
    ];
    let mut bodies = Vec::new();
    for raw in malformed {
        let mut req = request(None);
        req.headers_mut()
            .insert("x-apig-appcode", HeaderValue::from_bytes(&raw).unwrap());
        let res = call(&layer, req).await;
        assert_apig(&res, StatusCode::UNAUTHORIZED, "APIG.0303");
        bodies.push(json(&res)["error_msg"].clone());
    }
    assert_eq!(
        provider.lookup_calls(),
        0,
        "a malformed code reached the provider"
    );
    let res = call(&layer, request(Some(AppCode::generate().expose()))).await;
    assert_apig(&res, StatusCode::UNAUTHORIZED, "APIG.0303");
    assert!(
        bodies.iter().all(|m| *m == json(&res)["error_msg"]),
        "messages differ: {bodies:?}"
    );
    assert_eq!(provider.lookup_calls(), 1);
}

#[tokio::test]
async fn without_lookup_support_a_miss_is_rejected_locally() {
    let provider = ScriptedProvider::with_snapshot(Vec::new());
    let layer = loaded_layer(&provider).await;
    let res = call(&layer, request(Some(AppCode::generate().expose()))).await;
    assert_apig(&res, StatusCode::UNAUTHORIZED, "APIG.0303");
    assert_eq!(provider.lookup_calls(), 0);
    assert_eq!(layer.metrics().misses, 1);
    assert_eq!(layer.metrics().rejected_invalid, 1);
}

#[tokio::test]
async fn nothing_passes_before_the_first_load() {
    let provider = ScriptedProvider::default(); // snapshot fails
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .build();
    let code = AppCode::generate();
    let (mut mock, mut handle) = tower_test::mock::spawn_layer(layer.clone());
    handle.allow(1);
    let res = mock.call(request(Some(code.expose()))).await.unwrap();
    assert_apig(&res, StatusCode::SERVICE_UNAVAILABLE, "APIG.0202");
    assert_eq!(layer.metrics().rejected_unavailable, 1);
    // The inner service was never called.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), handle.next_request())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn point_lookup_admits_caches_and_coalesces() {
    let code = AppCode::generate();
    let provider = finding(&code, AppIdentity::new("late", "c9"));
    provider.set(|s| s.lookup_delay = Duration::from_millis(50));
    let layer = loaded_layer(&provider).await;
    let calls = (0..20).map(|_| call(&layer, request(Some(code.expose()))));
    for res in futures_join_all(calls).await {
        assert_eq!(res.status(), StatusCode::OK);
        assert!(String::from_utf8(res.body().to_vec())
            .unwrap()
            .starts_with("app=late"));
    }
    assert_eq!(
        provider.lookup_calls(),
        1,
        "concurrent misses were not coalesced"
    );
    let res = call(&layer, request(Some(code.expose()))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(provider.lookup_calls(), 1, "a found code was not cached");
    assert_eq!(layer.metrics().provider_lookups, 1);
}

#[tokio::test]
async fn unknown_codes_reach_the_provider_once_per_ttl() {
    let provider = ScriptedProvider::with_snapshot(Vec::new());
    provider.set(|s| s.lookups = Some(HashMap::new()));
    let cache = AppCodeCache::builder()
        .negative_ttl(Duration::from_secs(60))
        .build();
    let layer = AppCodeAuthLayer::builder()
        .cache(cache)
        .provider(provider.clone())
        .build();
    layer.cache().loaded().await;
    let unknown = AppCode::generate();
    for _ in 0..5 {
        let res = call(&layer, request(Some(unknown.expose()))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(provider.lookup_calls(), 1);
}

#[tokio::test]
async fn provider_lookup_failure_and_timeout_are_503() {
    let provider = ScriptedProvider::with_snapshot(Vec::new());
    provider.set(|s| {
        s.lookups = Some(HashMap::new());
        s.lookup_fails = true;
    });
    let layer = loaded_layer(&provider).await;
    let res = call(&layer, request(Some(AppCode::generate().expose()))).await;
    assert_apig(&res, StatusCode::SERVICE_UNAVAILABLE, "APIG.0202");
    assert_eq!(layer.metrics().provider_errors, 1);

    provider.set(|s| {
        s.lookup_fails = false;
        s.lookup_delay = Duration::from_secs(3600);
    });
    let layer = AppCodeAuthLayer::builder()
        .provider(provider.clone())
        .lookup_timeout(Duration::from_millis(30))
        .build();
    layer.cache().loaded().await;
    let res = call(&layer, request(Some(AppCode::generate().expose()))).await;
    assert_apig(&res, StatusCode::SERVICE_UNAVAILABLE, "APIG.0202");
    assert_eq!(layer.metrics().provider_errors, 1);
}

#[tokio::test]
async fn plain_http_is_400_when_https_is_required() {
    let (builder, code) = builder_with_code();
    let layer = builder.https(HttpsPolicy::required()).build();
    let res = call(&layer, request(Some(code.expose()))).await;
    assert_apig(&res, StatusCode::BAD_REQUEST, "APIG.0607");
    let mut req = request(Some(code.expose()));
    req.extensions_mut().insert(ConnectionInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        tls: true,
    });
    assert_eq!(call(&layer, req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn authorization_hook_refuses_with_403() {
    let (cache, code) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache).authorize(|id: &AppIdentity, req: &Request<Body>| {
        id.attribute("tier") == Some("gold") && req.uri().path() != "/admin"
    });
    let svc = ServiceBuilder::new().layer(layer).service(service_fn(echo));
    let ok = svc
        .clone()
        .oneshot(request(Some(code.expose())))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let mut admin = request(Some(code.expose()));
    *admin.uri_mut() = "/admin".parse().unwrap();
    let res = svc.oneshot(admin).await.unwrap();
    assert_apig(&res, StatusCode::FORBIDDEN, "APIG.0304");
}

#[tokio::test]
async fn identity_headers_replace_whatever_the_client_sent() {
    let (builder, code) = builder_with_code();
    let layer = builder.identity_headers(IdentityHeaders::default()).build();
    let mut req = request(Some(code.expose()));
    req.headers_mut()
        .insert("x-apig-app-id", HeaderValue::from_static("spoofed"));
    req.headers_mut()
        .append("x-apig-app-id", HeaderValue::from_static("spoofed-too"));
    req.headers_mut()
        .insert("x-apig-appcode-id", HeaderValue::from_static("spoofed"));
    let seen = String::from_utf8(call(&layer, req).await.into_body().to_vec()).unwrap();
    assert!(seen.contains("x-apig-app-id=app-1"), "{seen}");
    assert!(seen.contains("x-apig-appcode-id=code-1"), "{seen}");
    assert!(!seen.contains("spoofed"), "{seen}");
}

#[tokio::test]
async fn custom_header_name() {
    let (builder, code) = builder_with_code();
    let layer = builder
        .header_name(http::HeaderName::from_static("x-api-key"))
        .build();
    let mut req = request(None);
    req.headers_mut()
        .insert("x-api-key", HeaderValue::from_str(code.expose()).unwrap());
    assert_eq!(call(&layer, req).await.status(), StatusCode::OK);
    assert_eq!(
        call(&layer, request(Some(code.expose()))).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn custom_rejection_replaces_the_apig_body() {
    let (cache, _) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache).on_reject(|r: &Rejection| {
        let mut res = Response::new(Bytes::from_static(b""));
        res.headers_mut()
            .insert("grpc-status", HeaderValue::from_static("16"));
        res.headers_mut()
            .insert("x-kind", HeaderValue::from_static(r.kind().as_str()));
        res
    });
    let res = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(echo))
        .oneshot(request(None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(res.headers()["x-kind"], "missing");
}

#[tokio::test]
async fn rejection_reuses_a_plain_incoming_request_id() {
    let (cache, _) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache);
    let mut req = request(None);
    req.headers_mut()
        .insert("x-request-id", HeaderValue::from_static("abc-123"));
    let res = call(&layer, req).await;
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    assert_eq!(json(&res)["request_id"], "abc-123");
}

#[tokio::test]
async fn inner_errors_pass_through() {
    let (cache, code) = loaded_cache();
    let svc = ServiceBuilder::new()
        .layer(AppCodeAuthLayer::new(cache))
        .service(service_fn(|_: Request<Body>| async {
            Err::<Response<Body>, _>("boom")
        }));
    assert_eq!(
        svc.oneshot(request(Some(code.expose()))).await.unwrap_err(),
        "boom"
    );
}

#[tokio::test]
async fn the_clone_polled_ready_is_the_one_called_on_a_lookup() {
    // tower-test's mock panics if a clone that was not polled ready is called.
    let code = AppCode::generate();
    let provider = finding(&code, AppIdentity::new("a", "c"));
    let layer = loaded_layer(&provider).await;
    let (mut svc, mut handle) =
        tower_test::mock::spawn_layer::<Request<Body>, Response<Body>, _>(layer);
    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
    let response = tokio::spawn(svc.call(request(Some(code.expose()))));
    let (req, send) = handle.next_request().await.expect("forwarded");
    assert_eq!(req.extensions().get::<AppIdentity>().unwrap().app_id(), "a");
    send.send_response(Response::new(Bytes::from_static(b"ok")));
    assert_eq!(response.await.unwrap().unwrap().into_body(), "ok");
}

#[tokio::test]
async fn inner_backpressure_is_respected() {
    let (cache, _) = loaded_cache();
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<Body>, Response<Body>, _>(
        AppCodeAuthLayer::new(cache),
    );
    handle.allow(0);
    assert!(svc.poll_ready().is_pending());
    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
}

async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    // Drive them concurrently on this task.
    let mut pending: Vec<_> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("completed")).collect()
}

// ---------------------------------------------------------------------------------------------
// App ACLs

/// A request with `code`, from TCP peer `peer`, carrying `X-Forwarded-For: xff` if given.
fn from_peer(code: &AppCode, peer: &str, xff: Option<&str>) -> Request<Body> {
    let mut req = request(Some(code.expose()));
    if let Some(v) = xff {
        req.headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
    }
    req.extensions_mut().insert(ConnectionInfo {
        peer: peer.parse().unwrap(),
        tls: true,
    });
    req
}

/// Like [`from_peer`], over plain HTTP, saying `X-Forwarded-Proto: https`.
fn forwarded_as_https(code: &AppCode, peer: &str, xff: Option<&str>) -> Request<Body> {
    let mut req = from_peer(code, peer, xff);
    req.extensions_mut().insert(ConnectionInfo {
        peer: peer.parse().unwrap(),
        tls: false,
    });
    req.headers_mut()
        .insert("x-forwarded-proto", HeaderValue::from_static("https"));
    req
}

/// A layer over `cache` that reads the client's address from what proxies in 10.0.0.0/8
/// forward.
fn behind_proxies(cache: &AppCodeCache) -> AppCodeAuthLayerBuilder {
    AppCodeAuthLayer::builder()
        .cache(cache.clone())
        .trusted_proxies(["10.0.0.0/8".parse().unwrap()])
}

fn acl(kind: crate::acl::AclType, values: &[&str]) -> std::sync::Arc<crate::acl::AppAcl> {
    std::sync::Arc::new(crate::acl::AppAcl::new(kind, values).unwrap())
}

#[tokio::test]
async fn an_acl_admits_listed_clients_and_refuses_the_rest_with_0402() {
    use crate::acl::AclType;
    let (cache, code) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache.clone());
    cache.set_app_acl("app-1", acl(AclType::Permit, &["192.0.2.0/24"]));

    let ok = call(&layer, from_peer(&code, "192.0.2.9:40000", None)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = call(&layer, from_peer(&code, "198.51.100.9:40000", None)).await;
    assert_apig(&refused, StatusCode::FORBIDDEN, "APIG.0402");

    cache.set_app_acl("app-1", acl(AclType::Deny, &["192.0.2.9"]));
    let refused = call(&layer, from_peer(&code, "192.0.2.9:40000", None)).await;
    assert_apig(&refused, StatusCode::FORBIDDEN, "APIG.0402");
    let ok = call(&layer, from_peer(&code, "198.51.100.9:40000", None)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(layer.metrics().rejected_ip_denied, 2);

    // Without its ACL the app is open again; another app's ACL does not touch it.
    cache.set_app_acl("app-2", acl(AclType::Deny, &["0.0.0.0/0", "::/0"]));
    assert!(cache.remove_app_acl("app-1"));
    let ok = call(&layer, from_peer(&code, "192.0.2.9:40000", None)).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_forged_forwarded_for_does_not_pass_an_acl() {
    use crate::acl::AclType;
    let (cache, code) = loaded_cache();
    let layer = behind_proxies(&cache).build();
    cache.set_app_acl("app-1", acl(AclType::Permit, &["192.0.2.1"]));

    // A client naming the permitted address itself, directly or through X-Real-IP.
    let mut forged = from_peer(&code, "203.0.113.5:1000", Some("192.0.2.1"));
    forged
        .headers_mut()
        .insert("x-real-ip", HeaderValue::from_static("192.0.2.1"));
    let res = call(&layer, forged).await;
    assert_apig(&res, StatusCode::FORBIDDEN, "APIG.0402");

    // Through the trusted proxy, which appends what it saw: the client's own prefix is not read.
    let via = from_peer(&code, "10.0.0.2:1000", Some("192.0.2.1, 203.0.113.5"));
    assert_apig(&call(&layer, via).await, StatusCode::FORBIDDEN, "APIG.0402");
    let via = from_peer(&code, "10.0.0.2:1000", Some("203.0.113.5, 192.0.2.1"));
    assert_eq!(call(&layer, via).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_acl_with_no_readable_client_address_is_0401() {
    use crate::acl::AclType;
    let (cache, code) = loaded_cache();
    let layer = behind_proxies(&cache).build();
    cache.set_app_acl("app-1", acl(AclType::Deny, &["192.0.2.1"]));
    let res = call(&layer, from_peer(&code, "10.0.0.2:1000", Some("unknown"))).await;
    assert_apig(&res, StatusCode::FORBIDDEN, "APIG.0401");
    // No connection facts at all (a server that does not insert them).
    let res = call(&layer, request(Some(code.expose()))).await;
    assert_apig(&res, StatusCode::FORBIDDEN, "APIG.0401");
    assert_eq!(layer.metrics().rejected_unknown_client_ip, 2);
    // The app leaves, and its ACL with it.
    cache.remove_app("app-1");
    assert!(cache.app_acl("app-1").is_none());
    assert_eq!(cache.app_acls(), 0);
}

// ---------------------------------------------------------------------------------------------
// App quotas

#[tokio::test]
async fn an_app_over_its_quota_gets_405_with_the_windows_end() {
    use crate::acl::AclType;
    use crate::quota::{AppQuota, TimeUnit};
    let (cache, code) = loaded_cache();
    let other = AppCode::generate();
    cache.upsert(&other, AppIdentity::new("app-2", "code-2"));
    let layer = AppCodeAuthLayer::new(cache.clone());
    let quota = std::sync::Arc::new(AppQuota::new(2, TimeUnit::Day, 1).unwrap());
    cache.set_app_quota("app-1", quota);

    // A call the app's ACL refuses does not use the quota.
    cache.set_app_acl("app-1", acl(AclType::Deny, &["192.0.2.9"]));
    let denied = call(&layer, from_peer(&code, "192.0.2.9:1000", None)).await;
    assert_apig(&denied, StatusCode::FORBIDDEN, "APIG.0402");
    for _ in 0..2 {
        let ok = call(&layer, from_peer(&code, "198.51.100.1:1000", None)).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let over = call(&layer, from_peer(&code, "198.51.100.1:1000", None)).await;
    assert_apig(&over, StatusCode::METHOD_NOT_ALLOWED, "APIG.0501");
    let wait: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&wait), "Retry-After {wait}");
    assert_eq!(layer.metrics().rejected_quota, 1);

    // Another app is not concerned; without its quota the app is free again.
    assert_eq!(
        call(&layer, request(Some(other.expose()))).await.status(),
        StatusCode::OK
    );
    assert!(cache.remove_app_quota("app-1"));
    let ok = call(&layer, from_peer(&code, "198.51.100.1:1000", None)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    // The app leaves with its quota.
    cache.set_app_quota(
        "app-1",
        std::sync::Arc::new(AppQuota::new(1, TimeUnit::Hour, 1).unwrap()),
    );
    cache.remove_app("app-1");
    assert!(cache.app_quota("app-1").is_none());
}

#[tokio::test]
async fn one_list_of_trusted_proxies_serves_the_https_policy_and_the_acl() {
    use crate::acl::AclType;
    let (cache, code) = loaded_cache();
    cache.set_app_acl("app-1", acl(AclType::Permit, &["192.0.2.1"]));
    // Trusted through the HTTPS policy: its X-Forwarded-For counts for the ACL too.
    let via_policy = AppCodeAuthLayer::builder()
        .cache(cache.clone())
        .https(HttpsPolicy::optional().trust_forwarded_proto_from("10.0.0.0/8".parse().unwrap()))
        .build();
    let req = from_peer(&code, "10.0.0.2:1000", Some("192.0.2.1"));
    assert_eq!(call(&via_policy, req).await.status(), StatusCode::OK);
    // Trusted through the builder, the policy set after: its X-Forwarded-Proto counts.
    let via_builder = behind_proxies(&cache)
        .https(HttpsPolicy::required())
        .build();
    let req = forwarded_as_https(&code, "10.0.0.2:1000", Some("192.0.2.1"));
    assert_eq!(call(&via_builder, req).await.status(), StatusCode::OK);
    let plain = forwarded_as_https(&code, "203.0.113.1:1000", None);
    assert_apig(
        &call(&via_builder, plain).await,
        StatusCode::BAD_REQUEST,
        "APIG.0607",
    );
}

#[tokio::test]
async fn a_debug_request_sees_its_apps_quota() {
    use crate::quota::{AppQuota, TimeUnit};
    let (cache, code) = loaded_cache();
    let layer = AppCodeAuthLayer::new(cache.clone());
    let debug = || {
        let mut req = request(Some(code.expose()));
        req.headers_mut()
            .insert("x-apig-mode", HeaderValue::from_static("DEBUG"));
        req
    };
    // Without a quota, or without debug mode, no such header.
    assert!(!call(&layer, debug())
        .await
        .headers()
        .contains_key("x-apig-quota-app"));
    let quota = AppQuota::new(2, TimeUnit::Hour, 3).unwrap();
    cache.set_app_quota("app-1", std::sync::Arc::new(quota));
    let plain = call(&layer, request(Some(code.expose()))).await;
    assert!(!plain.headers().contains_key("x-apig-quota-app"));

    let seen = call(&layer, debug()).await;
    assert_eq!(seen.status(), StatusCode::OK);
    assert_eq!(
        seen.headers()["x-apig-quota-app"],
        "remain:0,limit:2,time:3 hour"
    );
    let over = call(&layer, debug()).await;
    assert_apig(&over, StatusCode::METHOD_NOT_ALLOWED, "APIG.0501");
    assert_eq!(
        over.headers()["x-apig-quota-app"],
        "remain:0,limit:2,time:3 hour"
    );
}
