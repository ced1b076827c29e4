//! Overhead of the AppCode layer over the bare service, per request.
//!
//! Run: `cargo bench --bench layer` (add `-- --quick` for a short run).
//!
//! Every case builds the same kind of request and drives `poll_ready` + `call` + one poll of the
//! response future on a no-op waker (every path here completes without waiting), so the difference
//! between a case and `bare` is what the layer adds. `tower_http_bearer` is tower-http's
//! `ValidateRequestHeaderLayer::bearer` (one token, plain `==`) as the in-ecosystem peer.
//! `floor` does only the three steps the design cannot skip, the plain way (see the `floor`
//! module): the layer's `valid` overhead above it is the layer's own.
//! `throttled` is `valid` with a [`ThrottleLayer`] behind the AppCode layer that every request
//! passes; `over_limit` is one app past its quota (answered 429).
//! Before the timings, the bench prints the memory the cache takes per code at 1 000 000 codes and
//! the latency of one cache miss on this machine.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use apig_appcode::throttle::{Quota, ThrottleLayer};
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

/// `n` codes of 1 000 apps loaded into a cache and into the floor's map, and the codes' header
/// values in random order.
fn cache_of(n: usize) -> (AppCodeCache, floor::Map, Vec<HeaderValue>) {
    let codes: Vec<AppCode> = (0..n).map(|_| AppCode::generate()).collect();
    let identity = |i: usize| AppIdentity::new(format!("{:032x}", i % 1000), format!("{i:032x}"));
    let cache = AppCodeCache::new();
    cache.replace_all(
        codes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), identity(i))),
    );
    let map = floor::Map::new(codes.iter().enumerate().map(|(i, c)| (c, identity(i))));
    // Requests come in an order unrelated to the order the cache was filled in (a real cache
    // is filled from a database): shuffle, so that whatever the cache allocated per code is not
    // walked in allocation order. The header values themselves are made in request order, as
    // a server parses them fresh for each request.
    let values = shuffled(n, 0x9e37_79b9_7f4a_7c15)
        .iter()
        .map(|&i| codes[i].to_header_value())
        .collect();
    (cache, map, values)
}

/// The three steps the design requires for a valid request, done the plain way: a keyed
/// BLAKE3 of the code, one dashmap probe whose key compare goes through `subtle`, and the
/// identity into the request's extensions. No validation, no header removal, no counters, no
/// response future: what is left of the layer's overhead above this is the layer's own.
mod floor {
    use std::convert::Infallible;
    use std::hash::{BuildHasherDefault, Hash, Hasher};
    use std::hint::black_box;
    use std::sync::Arc;

    use apig_appcode::{AppCode, AppIdentity};
    use bytes::Bytes;
    use dashmap::DashMap;
    use http::{HeaderName, Request, Response};
    use subtle::ConstantTimeEq;
    use tower::{service_fn, Service};

    #[derive(Clone, Copy)]
    struct Digest([u64; 4]);

    impl PartialEq for Digest {
        fn eq(&self, o: &Self) -> bool {
            let (a, b) = (&self.0, &o.0);
            (a[0].ct_eq(&b[0]) & a[1].ct_eq(&b[1]) & a[2].ct_eq(&b[2]) & a[3].ct_eq(&b[3])).into()
        }
    }

    impl Eq for Digest {}

    impl Hash for Digest {
        fn hash<H: Hasher>(&self, state: &mut H) {
            state.write_u64(self.0[0]);
        }
    }

    #[derive(Default)]
    struct PassThrough(u64);

    impl Hasher for PassThrough {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, _: &[u8]) {
            unreachable!("only digests are hashed")
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }
    }

    #[derive(Clone)]
    pub(crate) struct Map {
        key: [u8; 32],
        map: Arc<DashMap<Digest, AppIdentity, BuildHasherDefault<PassThrough>>>,
    }

    impl Map {
        pub(crate) fn new<'a>(entries: impl Iterator<Item = (&'a AppCode, AppIdentity)>) -> Self {
            let key = *blake3::hash(b"floor").as_bytes();
            let map = DashMap::default();
            for (code, identity) in entries {
                map.insert(digest(&key, code.expose().as_bytes()), identity);
            }
            Self {
                key,
                map: Arc::new(map),
            }
        }
    }

    fn digest(key: &[u8; 32], code: &[u8]) -> Digest {
        let hash = blake3::keyed_hash(key, code);
        let b = hash.as_bytes();
        Digest(std::array::from_fn(|i| {
            u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        }))
    }

    pub(crate) fn service(
        map: Map,
    ) -> impl Service<Request<Bytes>, Response = Response<Bytes>, Error = Infallible> {
        let name = HeaderName::from_static("x-apig-appcode");
        service_fn(move |mut req: Request<Bytes>| {
            let found = req.headers().get(&name).and_then(|v| {
                let digest = digest(&map.key, v.as_bytes());
                map.map.get(&digest).map(|e| e.value().clone())
            });
            if let Some(identity) = found {
                req.extensions_mut().insert(identity);
            }
            black_box(&req);
            std::future::ready(Ok::<_, Infallible>(Response::new(Bytes::new())))
        })
    }
}

fn overhead(c: &mut Criterion) {
    let waker = Waker::from(Arc::new(Noop));
    let mut group = c.benchmark_group("per_request");
    for n in sizes() {
        let (cache, map, values) = cache_of(n);
        let unknown = AppCode::generate().to_header_value();
        let mut svc = AppCodeAuthLayer::new(cache.clone()).layer(bare());
        // The throttle behind the layer, with a quota no app reaches: the cost of the check
        // on a request that passes (one map read and one compare-and-swap).
        let roomy = Quota::per_second(1_000_000).unwrap();
        let mut throttled =
            AppCodeAuthLayer::new(cache.clone()).layer(ThrottleLayer::new(roomy).layer(bare()));
        // One app over a 1/day quota: every request but the first is answered 429.
        let mut over = AppCodeAuthLayer::new(cache).layer(
            ThrottleLayer::new(Quota::new(1, Duration::from_secs(86_400)).unwrap()).layer(bare()),
        );
        let mut plain = bare();
        let mut least = floor::service(map);

        let mut i = 0usize;
        let mut next = || {
            i = (i + 1) % values.len();
            &values[i]
        };
        group.bench_function(BenchmarkId::new("bare", n), |b| {
            b.iter(|| drive(&mut plain, &waker, request("x-apig-appcode", next())))
        });
        group.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter(|| drive(&mut least, &waker, request("x-apig-appcode", next())))
        });
        group.bench_function(BenchmarkId::new("valid", n), |b| {
            b.iter(|| {
                let res = drive(&mut svc, &waker, request("x-apig-appcode", next()));
                debug_assert_eq!(res.status(), 200);
                res
            })
        });
        group.bench_function(BenchmarkId::new("throttled", n), |b| {
            b.iter(|| {
                let res = drive(&mut throttled, &waker, request("x-apig-appcode", next()));
                debug_assert_eq!(res.status(), 200);
                res
            })
        });
        let first = values[0].clone();
        group.bench_function(BenchmarkId::new("over_limit", n), |b| {
            b.iter(|| drive(&mut over, &waker, request("x-apig-appcode", &first)))
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

/// Time of one load that depends on the previous one, over a working set the size of the
/// 1 000 000-code table: what each cache miss of a lookup costs on this machine.
fn load_latency() {
    let lines = 128 << 20 >> 6; // 128 MiB of 64-byte lines
    let order = shuffled(lines, 0x2545_f491_4f6c_dd1d);
    // One cycle through every line, in random order: each load's address is the last load's
    // value, so no two loads overlap.
    let mut next = vec![[0usize; 8]; lines];
    for w in 0..lines {
        next[order[w]][0] = order[(w + 1) % lines];
    }
    let steps = 2_000_000;
    let mut at = 0;
    let start = std::time::Instant::now();
    for _ in 0..steps {
        at = next[at][0];
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(steps);
    black_box(at);
    println!("latency: {ns:.0} ns per dependent load over 128 MiB");
}

/// `0..n` in a fixed pseudo-random order (Fisher–Yates driven by xorshift from `seed`).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
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
        load_latency();
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
