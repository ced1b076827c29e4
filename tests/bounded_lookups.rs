//! A flood of distinct unknown codes against a provider that never answers: the lookups it
//! starts are capped (`AppCodeAuthLayerBuilder::max_lookups`), so the memory they hold is too,
//! whatever the number of requests; past the cap a miss is answered `503` with `Retry-After` at
//! once, and once the lookups time out, misses are looked up again.
//!
//! The heap is measured by a counting global allocator: this test binary holds nothing else.

// The counting allocator is the one unsafe impl here (`GlobalAlloc` is an unsafe trait); it
// only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::Context;
use std::time::Duration;

use apig_appcode::{AppCode, AppCodeAuthLayer};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

#[path = "support/lookups.rs"]
mod lookups;
use lookups::{Answer, LookupsOnly};

/// Bytes allocated and not yet freed, by every thread of this binary.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call goes to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Knows no code, and never answers a lookup.
fn hanging() -> LookupsOnly<fn() -> Answer> {
    LookupsOnly(|| Box::pin(std::future::pending()))
}

const REQUESTS: usize = 20_000;
const MAX_LOOKUPS: usize = 256;

#[tokio::test(flavor = "current_thread")]
async fn abandoned_lookups_hold_bounded_memory_and_misses_past_the_cap_get_503() {
    let layer = AppCodeAuthLayer::builder()
        .provider(hanging())
        .max_lookups(MAX_LOOKUPS)
        .lookup_timeout(Duration::from_millis(200))
        .build();
    layer.cache().loaded().await;
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Bytes::new()))
        }));
    let codes: Vec<AppCode> = (0..REQUESTS).map(|_| AppCode::generate()).collect();
    let ask = |code: &AppCode| {
        Request::builder()
            .header("x-apig-appcode", code.expose())
            .body(())
            .unwrap()
    };
    let mut cx = Context::from_waker(std::task::Waker::noop());

    let before = LIVE.load(Ordering::Relaxed);
    for code in &codes {
        // Each request is sent, polled once (its lookup starts), then dropped: the client hung up.
        svc.ready().await.unwrap();
        let mut answer = Box::pin(svc.call(ask(code)));
        let _ = answer.as_mut().poll(&mut cx);
    }
    // The lookup tasks get to run: each asks the provider, which never answers.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    let metrics = layer.metrics();
    assert_eq!(metrics.provider_lookups, MAX_LOOKUPS as u64);
    assert_eq!(metrics.lookups_shed, (REQUESTS - MAX_LOOKUPS) as u64);
    // The lookups up hold about a kilobyte each; without the cap, every one of the 20 000
    // requests left one behind (about 15 MB).
    assert!(
        held < 2 << 20,
        "{REQUESTS} abandoned requests hold {held} bytes"
    );

    // A miss past the cap is told to come back.
    let busy = svc
        .ready()
        .await
        .unwrap()
        .call(ask(&AppCode::generate()))
        .await;
    let busy = busy.unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "1");

    // Once the lookups time out, their places are free: a miss is looked up again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while layer.metrics().provider_errors < MAX_LOOKUPS as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lookups never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = svc.ready().await.unwrap().call(ask(&AppCode::generate()));
    let answer = answer.await.unwrap();
    // Looked up, and timed out like the rest.
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(layer.metrics().provider_lookups, MAX_LOOKUPS as u64 + 1);
}
