//! The `X-Apig-AppCode` header through a whole `AppCodeAuthLayer` call.
//!
//! Input: the header value's bytes. A leading NUL (never valid in a header value) instead sends
//! the rest twice, the repeated-header path. Asserts: no panic, the status is one APIG can
//! answer (200/400/401/403/503), 200 exactly when the value is one of the known codes, and a
//! refusal carries APIG's JSON error body.
#![no_main]

use std::convert::Infallible;

use apig_appcode::provider::StaticProvider;
use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::util::BoxCloneService;
use tower::{service_fn, Layer, ServiceExt};

/// The codes the layer knows; the seed corpus holds them too, so the fuzzer starts from hits.
const KNOWN: [&str; 3] = [
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "+Zx/Base64LikeCode==AppCode_with!@#$%-chars0123456789-and-some-more=",
    "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
];

type Svc = BoxCloneService<Request<()>, Response<Bytes>, Infallible>;

struct Harness {
    rt: Runtime,
    svc: Svc,
}

thread_local! {
    // libFuzzer calls the target from one thread; the boxed service is `Send` but not `Sync`.
    static HARNESS: Harness = harness();
}

fn harness() -> Harness {
    {
        // One current-thread runtime for all runs: building one per input would dominate.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut provider = StaticProvider::builder();
        for (i, code) in KNOWN.iter().enumerate() {
            let code = AppCode::parse(code).expect("KNOWN holds valid AppCodes");
            provider = provider.app_code("app-1", &format!("code-{i}"), code);
        }
        let svc = rt.block_on(async {
            let layer = AppCodeAuthLayer::builder()
                .provider(provider.build())
                .build();
            layer.cache().loaded().await;
            let inner = service_fn(|req: Request<()>| async move {
                // An admitted request always carries the caller's identity.
                let id = req.extensions().get::<AppIdentity>().expect("identity");
                Ok::<_, Infallible>(Response::new(Bytes::from(id.app_code_id().to_owned())))
            });
            BoxCloneService::new(layer.layer(inner))
        });
        let h = Harness { rt, svc };
        // The harness is only worth running if a known code gets through.
        for code in KNOWN {
            assert_eq!(call(&h, code.as_bytes(), false), StatusCode::OK, "{code}");
        }
        h
    }
}

fn call(h: &Harness, value: &[u8], twice: bool) -> StatusCode {
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return StatusCode::BAD_REQUEST; // not a request hyper would have parsed
    };
    let mut req = Request::new(());
    req.headers_mut().append("x-apig-appcode", value.clone());
    if twice {
        req.headers_mut().append("x-apig-appcode", value);
    }
    let res = h.rt.block_on(h.svc.clone().oneshot(req)).unwrap();
    let status = res.status();
    if status != StatusCode::OK {
        let body: serde_json::Value =
            serde_json::from_slice(res.body()).expect("a refusal is APIG's JSON error body");
        assert!(body["error_code"]
            .as_str()
            .is_some_and(|c| c.starts_with("APIG.")));
        assert!(body["error_msg"].is_string() && body["request_id"].is_string());
    }
    status
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| run(h, data));
});

fn run(h: &Harness, data: &[u8]) {
    let (value, twice) = match data.split_first() {
        Some((0, rest)) => (rest, true),
        _ => (data, false),
    };
    if HeaderValue::from_bytes(value).is_err() {
        return;
    }
    let status = call(h, value, twice);
    assert!(
        [200, 400, 401, 403, 503].contains(&status.as_u16()),
        "unexpected status {status}"
    );
    let known = KNOWN.iter().any(|k| k.as_bytes() == value);
    // Admitted exactly when the value is a known code sent once.
    assert_eq!(status == StatusCode::OK, known && !twice, "status {status}");
}
