//! Overhead of the AppCode layer over the bare service, per request.
//!
//! Run: `cargo bench --bench layer` (add `-- --quick` for a short run).
//!
//! Every case builds the same kind of request and drives `poll_ready` + `call` + one poll of the
//! response future on a no-op waker (every path here completes without waiting), so the difference
//! between a case and `bare` is what the layer adds. `tower_http_bearer` is tower-http's
//! `ValidateRequestHeaderLayer::bearer` (one token, plain `==`) as the in-ecosystem peer.
//! Before the timings, the bench prints the memory the cache takes per code at 1 000 000 codes.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity};
use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion};
use http::{HeaderValue, Request, Response};
use tower::{service_fn, Layer, Service};
use tower_http::validate_request::ValidateRequestHeaderLayer;

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// One request through `svc`, which must complete on the first poll.
fn drive<S>(svc: &mut S, waker: &Waker, req: Request<Bytes>) -> Response<Bytes>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Infallible>,
{
    let mut cx = Context::from_waker(waker);
    assert!(svc.poll_ready(&mut cx).is_ready());
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => unreachable!("every benchmarked path completes at once"),
    }
}

fn request(header: &'static str, value: &HeaderValue) -> Request<Bytes> {
    let mut req = Request::new(Bytes::new());
    req.headers_mut().insert(header, value.clone());
    req
}

fn bare() -> impl Service<Request<Bytes>, Response = Response<Bytes>, Error = Infallible> + Clone {
    service_fn(|req: Request<Bytes>| {
        black_box(&req);
        std::future::ready(Ok::<_, Infallible>(Response::new(Bytes::new())))
    })
}

/// A loaded cache of `n` codes of 1 000 apps, and the codes' header values in random order.
fn cache_of(n: usize) -> (AppCodeCache, Vec<HeaderValue>) {
    let apps: Vec<Arc<str>> = (0..1000)
        .map(|i| Arc::from(format!("{i:032x}").as_str()))
        .collect();
    let codes: Vec<AppCode> = (0..n).map(|_| AppCode::generate()).collect();
    let cache = AppCodeCache::new();
    cache.replace_all(codes.iter().enumerate().map(|(i, c)| {
        (
            c.clone(),
            AppIdentity::new(Arc::clone(&apps[i % apps.len()]), format!("{i:032x}")),
        )
    }));
    // Codes were random, so their order already is.
    let values = codes.iter().map(AppCode::to_header_value).collect();
    (cache, values)
}

fn overhead(c: &mut Criterion) {
    let waker = Waker::from(Arc::new(Noop));
    let mut group = c.benchmark_group("per_request");
    for n in sizes() {
        let (cache, values) = cache_of(n);
        let unknown = AppCode::generate().to_header_value();
        let mut svc = AppCodeAuthLayer::new(cache).layer(bare());
        let mut plain = bare();

        let mut i = 0usize;
        let mut next = || {
            i = (i + 1) % values.len();
            &values[i]
        };
        group.bench_function(BenchmarkId::new("bare", n), |b| {
            b.iter(|| drive(&mut plain, &waker, request("x-apig-appcode", next())))
        });
        group.bench_function(BenchmarkId::new("valid", n), |b| {
            b.iter(|| {
                let res = drive(&mut svc, &waker, request("x-apig-appcode", next()));
                debug_assert_eq!(res.status(), 200);
                res
            })
        });
        group.bench_function(BenchmarkId::new("unknown", n), |b| {
            b.iter(|| drive(&mut svc, &waker, request("x-apig-appcode", &unknown)))
        });
        group.bench_function(BenchmarkId::new("missing", n), |b| {
            b.iter(|| drive(&mut svc, &waker, request("x-other", &unknown)))
        });
    }
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    #[allow(deprecated)] // `bearer` is deprecated in favour of custom validators; it is the peer.
    let mut peer =
        ValidateRequestHeaderLayer::bearer(token).layer(service_fn(|req: Request<Bytes>| {
            black_box(&req);
            std::future::ready(Ok::<_, Infallible>(Response::new(Bytes::new())))
        }));
    group.bench_function("tower_http_bearer", |b| {
        b.iter(|| drive(&mut peer, &waker, request("authorization", &bearer)))
    });
    group.finish();
}

/// Resident memory per cached code at 1 000 000 codes: growth of the process's RSS around a
/// `replace_all` that generates its input on the fly, so it counts all the cache holds (table,
/// identities, code IDs) plus the allocator's own overhead.
fn memory() {
    let n = 1_000_000;
    let apps: Vec<Arc<str>> = (0..1000)
        .map(|i| Arc::from(format!("{i:032x}").as_str()))
        .collect();
    let cache = AppCodeCache::new();
    let before = rss_bytes();
    cache.replace_all((0..n).map(|i| {
        (
            AppCode::generate(),
            AppIdentity::new(Arc::clone(&apps[i % 1000]), format!("{i:032x}")),
        )
    }));
    let after = rss_bytes();
    let per_code = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "memory: {per_code:.0} bytes of RSS per cached code at {n} codes (cache len {})",
        cache.len()
    );
}

/// Cache sizes to run, from `BENCH_SIZES` (comma-separated; default `1000,1000000`), so a
/// profiler run can skip the large setup.
fn sizes() -> Vec<usize> {
    std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

criterion_group!(benches, overhead);

fn main() {
    // Memory first, while the heap is small and fresh: the timing setup allocates far more.
    if sizes().contains(&1_000_000) {
        memory();
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
