//! The `/metrics` exposition (OpenMetrics text, with `prometheus-client`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `apig_appcode_gateway_requests_total` | counter | `class` (`2xx` … `5xx`) |
//! | `apig_appcode_upstream_latency_seconds` | histogram | — |
//! | `apig_appcode_open_connections` | gauge | `listener` (`gateway`, `admin`) |
//! | `apig_appcode_refused_connections_total` | counter | `listener` |
//! | `apig_appcode_worker_connections` | gauge | `worker` (`0`, `1`, …; with [`Exposition::workers`]) |
//! | `apig_appcode_rejections_total` | counter | `reason` |
//! | `apig_appcode_throttled_total` | counter | — (with [`Exposition::throttle`]) |
//! | `apig_appcode_rate_limit_store_fallbacks_total` | counter | — (with a rate limit store) |
//! | `apig_appcode_rate_limit_store_latency_seconds` | histogram | — (with a rate limit store) |
//! | `apig_appcode_quota_count_fallbacks_total` | counter | — (quota calls counted one by one) |
//! | `apig_appcode_quota_count_latency_seconds` | histogram | — (quota calls counted one by one) |
//! | `apig_appcode_hits_total`, `_misses_total`, `_provider_lookups_total`, `_lookups_shed_total`, `_provider_errors_total`, `_snapshots_loaded_total`, `_deltas_applied_total`, `_changes_applied_total`, `_anti_entropy_repairs_total` | counter | — |
//! | `apig_appcode_cache_size`, `_snapshot_age_seconds`, `_ready`, `_quota_calls_unflushed` | gauge | — |
//! | `apig_appcode_signed_body_bytes_held` | gauge | — (with [`Exposition::signed_bodies`]) |
//!
//! A request costs one uncontended atomic add for its status class, and two more for its
//! latency when it went upstream: each worker thread has counters of its own, summed at scrape
//! time like everything else (the cache's counters, the listeners' connections).
//!
//! # Example
//!
//! ```
//! use apig_appcode::AppCodeCache;
//! use apig_appcode::gateway::listener::OpenConnections;
//! use apig_appcode::gateway::metrics::{Exposition, GatewayMetrics};
//!
//! let cache = AppCodeCache::new();
//! let exposition = Exposition::new(
//!     cache,
//!     &GatewayMetrics::new(),
//!     [("gateway", OpenConnections::default())],
//! );
//! let text = exposition.render();
//! assert!(text.contains("apig_appcode_cache_size 0"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabel, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::listener::OpenConnections;
use super::WorkerConnections;
use crate::layer::AppCodeAuthLayer;
use crate::remote::{StoreLatency, STORE_LATENCY_BOUNDS_NS};
use crate::throttle::ThrottleLayer;
use crate::AppCodeCache;

/// The content type of [`Exposition::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the upstream latency buckets: 0.5 ms doubling to about 16 s.
const LATENCY_BOUNDS_NS: [u64; 16] = {
    let mut b = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        b[i] = 500_000 << i;
        i += 1;
    }
    b
};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The gateway's request counters: one set per worker thread, summed when scraped, so that
/// workers never write to the same cache line.
#[derive(Clone, Debug, Default)]
pub struct GatewayMetrics {
    workers: Arc<Mutex<Vec<Arc<WorkerCounts>>>>,
}

impl GatewayMetrics {
    /// Counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new worker's own counters, included in every later scrape.
    pub(crate) fn worker(&self) -> WorkerMetrics {
        let counts = Arc::new(WorkerCounts::default());
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&counts));
        WorkerMetrics(counts)
    }

    fn total(&self) -> Totals {
        let mut t = Totals::default();
        for w in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for (sum, c) in t.classes.iter_mut().zip(&w.classes) {
                *sum += c.load(Ordering::Relaxed);
            }
            for (sum, c) in t.latency.iter_mut().zip(&w.latency) {
                *sum += c.load(Ordering::Relaxed);
            }
            t.latency_sum_ns += w.latency_sum_ns.load(Ordering::Relaxed);
        }
        t
    }
}

#[derive(Debug, Default)]
struct WorkerCounts {
    classes: [AtomicU64; 5],
    /// Per bucket (not cumulative); the last is above every bound.
    latency: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    latency_sum_ns: AtomicU64,
}

#[derive(Debug, Default)]
struct Totals {
    classes: [u64; 5],
    latency: [u64; LATENCY_BOUNDS_NS.len() + 1],
    latency_sum_ns: u64,
}

/// What one worker counts per request.
#[derive(Clone, Debug)]
pub(crate) struct WorkerMetrics(Arc<WorkerCounts>);

impl WorkerMetrics {
    /// Counts one answered request.
    pub(crate) fn answered(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.0.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long the upstream took to answer with headers.
    pub(crate) fn upstream_answered(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(LATENCY_BOUNDS_NS.len());
        self.0.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Everything `/metrics` shows, in one registry.
pub struct Exposition {
    registry: Registry,
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposition").finish_non_exhaustive()
    }
}

impl Exposition {
    /// The cache's counters and state, the gateway's request counters, and the open
    /// connections of each named listener.
    pub fn new(
        cache: AppCodeCache,
        gateway: &GatewayMetrics,
        listeners: impl IntoIterator<Item = (&'static str, OpenConnections)>,
    ) -> Self {
        let mut registry = Registry::with_prefix("apig_appcode");
        registry.register_collector(Box::new(GatewayCollector(gateway.clone())));
        registry.register_collector(Box::new(CacheCollector(cache)));
        registry.register_collector(Box::new(ListenerCollector(listeners.into_iter().collect())));
        Self { registry }
    }

    /// Also exposes `apig_appcode_worker_connections`: the connections each gateway worker
    /// serves now, labelled by `worker` (its index).
    pub fn workers(mut self, workers: WorkerConnections) -> Self {
        self.registry
            .register_collector(Box::new(WorkerCollector(workers)));
        self
    }

    /// Also exposes `apig_appcode_throttled_total`: the requests `throttle` answered `429`.
    /// A metric of its own rather than a `reason` of `rejections_total`, which counts the
    /// AppCode layer's refusals only.
    pub fn throttle(mut self, throttle: &ThrottleLayer) -> Self {
        self.registry
            .register_collector(Box::new(ThrottleCollector(throttle.clone())));
        self
    }

    /// Also exposes `apig_appcode_quota_count_fallbacks_total` and
    /// `apig_appcode_quota_count_latency_seconds` when `auth` counts each quota call in the
    /// shared counts ([`count_each_quota_call`](crate::layer::AppCodeAuthLayerBuilder::count_each_quota_call)).
    pub fn quota_counts(mut self, auth: &AppCodeAuthLayer) -> Self {
        if auth.quota_count_latency().is_some() {
            self.registry
                .register_collector(Box::new(QuotaCountCollector(auth.clone())));
        }
        self
    }

    /// Also exposes `apig_appcode_signed_body_bytes_held`: the bytes the signed bodies `auth`
    /// reads hold now, against its
    /// [`max_held_signed_bodies`](crate::layer::AppCodeAuthLayerBuilder::max_held_signed_bodies).
    pub fn signed_bodies(mut self, auth: &AppCodeAuthLayer) -> Self {
        self.registry
            .register_collector(Box::new(SignedBodiesCollector(auth.clone())));
        self
    }

    /// The OpenMetrics text, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The workers' counters, summed at scrape time.
#[derive(Debug)]
struct GatewayCollector(GatewayMetrics);

impl Collector for GatewayCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let t = self.0.total();
        labelled(
            &mut e,
            "gateway_requests",
            "Requests the gateway answered, by status class.",
            MetricType::Counter,
            CLASSES
                .iter()
                .zip(t.classes)
                .map(|(class, value)| (("class", *class), ConstCounter::new(value))),
        )?;
        histogram(
            &mut e,
            "upstream_latency_seconds",
            "Time from sending a request upstream to its response headers.",
            &LATENCY_BOUNDS_NS,
            &t.latency,
            t.latency_sum_ns,
        )
    }
}

/// The cache's counters and state, read at scrape time.
#[derive(Debug)]
struct CacheCollector(AppCodeCache);

/// The throttle's count of `429` answers.
#[derive(Debug)]
struct ThrottleCollector(ThrottleLayer);

impl Collector for ThrottleCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        counter(
            &mut e,
            "throttled",
            "Requests answered 429 APIG.0308 by the per-app rate limit.",
            self.0.throttled(),
        )?;
        let Some(latency) = self.0.store_latency() else {
            return Ok(());
        };
        counter(
            &mut e,
            "rate_limit_store_fallbacks",
            "Requests counted on this node alone because the rate limit store failed, was late, \
             or was left alone while it recovers.",
            self.0.store_fallbacks(),
        )?;
        store_latency(
            &mut e,
            "rate_limit_store_latency_seconds",
            "Round trips to the rate limit store, up to their deadline.",
            &latency,
        )
    }
}

/// The AppCode layer's round trips to the shared quota counts, when it counts each call there.
#[derive(Debug)]
struct QuotaCountCollector(AppCodeAuthLayer);

impl Collector for QuotaCountCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(latency) = self.0.quota_count_latency() else {
            return Ok(());
        };
        counter(
            &mut e,
            "quota_count_fallbacks",
            "App quota calls counted on this node alone because the shared quota counts failed, \
             were late, or were left alone while they recover.",
            self.0.quota_count_fallbacks(),
        )?;
        store_latency(
            &mut e,
            "quota_count_latency_seconds",
            "Round trips to the shared quota counts, one per call under a quota, up to their \
             deadline.",
            &latency,
        )
    }
}

/// A histogram of a store's round trips.
fn store_latency(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    latency: &StoreLatency,
) -> fmt::Result {
    histogram(
        e,
        name,
        help,
        &STORE_LATENCY_BOUNDS_NS,
        &latency.buckets,
        latency.sum_ns,
    )
}

/// A histogram in seconds of times counted in nanoseconds: the buckets' upper `bounds`, and
/// `counts` of each (not cumulative) then of those above them all.
fn histogram(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    bounds: &[u64],
    counts: &[u64],
    sum_ns: u64,
) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .map(|&b| b as f64 / 1e9)
        .chain([f64::MAX])
        .zip(counts.iter().copied())
        .collect();
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, counts.iter().sum(), &buckets, None)
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<N>(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: N) -> fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Metric `name` of `kind`, with a sample for each label in `samples`.
fn labelled<L, M>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result
where
    L: EncodeLabel,
    M: EncodeMetric,
{
    let mut family = e.encode_descriptor(name, help, None, kind)?;
    for (label, metric) in samples {
        metric.encode(family.encode_family(&[label])?)?;
    }
    Ok(())
}

impl Collector for CacheCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let m = self.0.metrics();
        for (name, help, value) in [
            (
                "hits",
                "Requests whose AppCode was found in the cache.",
                m.hits,
            ),
            (
                "misses",
                "Requests with a well-formed AppCode the cache did not hold.",
                m.misses,
            ),
            (
                "provider_lookups",
                "Point lookups sent to the provider.",
                m.provider_lookups,
            ),
            (
                "lookups_shed",
                "Misses answered 503 without a lookup: the most lookups the node runs at a time \
                 were up.",
                m.lookups_shed,
            ),
            (
                "provider_errors",
                "Failed provider calls.",
                m.provider_errors,
            ),
            (
                "snapshots_loaded",
                "Full snapshots applied to the cache.",
                m.snapshots_loaded,
            ),
            (
                "deltas_applied",
                "Refreshes that applied the changes since a revision instead of a snapshot.",
                m.deltas_applied,
            ),
            (
                "changes_applied",
                "Change events applied to the cache.",
                m.changes_applied,
            ),
            (
                "anti_entropy_repairs",
                "Full reloads after the cache's codes were found to differ from the store's.",
                m.anti_entropy_repairs,
            ),
        ] {
            counter(&mut e, name, help, value)?;
        }
        let mut family = e.encode_descriptor(
            "rejections",
            "Rejected requests by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("missing", m.rejected_missing),
            ("invalid", m.rejected_invalid),
            ("forbidden", m.rejected_forbidden),
            ("unavailable", m.rejected_unavailable),
            ("https_required", m.rejected_https_required),
            ("ip_denied", m.rejected_ip_denied),
            ("unknown_client_ip", m.rejected_unknown_client_ip),
            ("quota", m.rejected_quota),
            ("signature", m.rejected_signature),
            ("body", m.rejected_body),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        gauge(
            &mut e,
            "cache_size",
            "AppCodes in the cache.",
            m.cache_size as i64,
        )?;
        let age = m.snapshot_age.map_or(-1.0, |d| d.as_secs_f64());
        gauge(
            &mut e,
            "snapshot_age_seconds",
            "Time since the cache last caught up with its provider (-1 before the first snapshot).",
            age,
        )?;
        let ready = i64::from(self.0.status().admits());
        gauge(
            &mut e,
            "ready",
            "Whether the gateway admits requests (1) or answers 503 (0).",
            ready,
        )?;
        let unflushed = i64::try_from(self.0.quota_calls_unflushed()).unwrap_or(i64::MAX);
        gauge(
            &mut e,
            "quota_calls_unflushed",
            "Calls counted against app quotas here, not yet added to the counts nodes share.",
            unflushed,
        )
    }
}

/// The bytes of signed bodies being read, read at scrape time.
#[derive(Debug)]
struct SignedBodiesCollector(AppCodeAuthLayer);

impl Collector for SignedBodiesCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        gauge(
            &mut e,
            "signed_body_bytes_held",
            "Bytes the signed bodies being read hold now (at most --signed-body-memory).",
            i64::try_from(self.0.signed_bodies_held()).unwrap_or(i64::MAX),
        )
    }
}

/// Open connections per listener, read at scrape time.
#[derive(Debug)]
struct ListenerCollector(Vec<(&'static str, OpenConnections)>);

impl Collector for ListenerCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        labelled(
            &mut e,
            "open_connections",
            "Connections open now, by listener.",
            MetricType::Gauge,
            self.0.iter().map(|(listener, open)| {
                (("listener", *listener), ConstGauge::new(open.get() as i64))
            }),
        )?;
        labelled(
            &mut e,
            "refused_connections",
            "Connections refused at the listener's cap, by listener.",
            MetricType::Counter,
            self.0.iter().map(|(listener, open)| {
                (("listener", *listener), ConstCounter::new(open.refused()))
            }),
        )
    }
}

/// Connections per gateway worker, read at scrape time.
#[derive(Debug)]
struct WorkerCollector(WorkerConnections);

impl Collector for WorkerCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        labelled(
            &mut e,
            "worker_connections",
            "Connections each gateway worker serves now, by worker.",
            MetricType::Gauge,
            self.0
                .get()
                .into_iter()
                .enumerate()
                .map(|(worker, serving)| {
                    (
                        ("worker", worker.to_string()),
                        ConstGauge::new(serving as i64),
                    )
                }),
        )
    }
}

// The tests read the exposition as the binary's tests do.
#[cfg(test)]
#[path = "../../tests/support/prometheus.rs"]
mod prometheus;

#[cfg(test)]
mod tests {
    use super::prometheus::sample;
    use super::*;

    #[test]
    fn status_classes_latency_and_listeners_are_exposed() {
        let gateway = GatewayMetrics::new();
        let (one, two) = (gateway.worker(), gateway.worker());
        for s in [200, 401, 101] {
            one.answered(StatusCode::from_u16(s).unwrap());
        }
        for s in [204, 502] {
            two.answered(StatusCode::from_u16(s).unwrap());
        }
        one.upstream_answered(Duration::from_millis(3));
        two.upstream_answered(Duration::from_secs(100));
        let open = OpenConnections::default();
        let text = Exposition::new(AppCodeCache::new(), &gateway, [("gateway", open)]).render();
        let class = |c: &str| {
            sample(
                &text,
                &format!("apig_appcode_gateway_requests_total{{class=\"{c}\"}}"),
            )
        };
        assert_eq!(class("2xx"), 2.0);
        assert_eq!(class("4xx"), 1.0);
        assert_eq!(class("5xx"), 1.0);
        assert_eq!(class("1xx"), 1.0);
        assert_eq!(class("3xx"), 0.0);
        let latency = "apig_appcode_upstream_latency_seconds";
        assert_eq!(sample(&text, &format!("{latency}_count")), 2.0);
        assert_eq!(sample(&text, &format!("{latency}_sum")), 100.003);
        for (le, count) in [
            ("0.002", 0.0),
            ("0.004", 1.0),
            ("16.384", 1.0),
            ("+Inf", 2.0),
        ] {
            let bucket = format!("{latency}_bucket{{le=\"{le}\"}}");
            assert_eq!(sample(&text, &bucket), count, "{bucket}");
        }
        for zero in [
            "apig_appcode_open_connections{listener=\"gateway\"}",
            "apig_appcode_rejections_total{reason=\"missing\"}",
            "apig_appcode_ready",
        ] {
            assert_eq!(sample(&text, zero), 0.0, "{zero}");
        }
        assert!(text.contains("# TYPE apig_appcode_hits counter"), "{text}");
    }

    #[test]
    fn a_rate_limit_store_adds_its_fallbacks_and_latency() {
        use crate::throttle::{Quota, RateCheck, RateStore};

        #[derive(Debug)]
        struct Never;
        impl RateStore for Never {
            fn check(&self, _: &str, _: &Quota) -> RateCheck {
                Box::pin(std::future::pending())
            }
        }
        let expose = |throttle: &ThrottleLayer| {
            Exposition::new(AppCodeCache::new(), &GatewayMetrics::new(), [])
                .throttle(throttle)
                .render()
        };
        let local = expose(&ThrottleLayer::new(Quota::per_second(1).unwrap()));
        assert!(!local.contains("rate_limit_store"), "{local}");
        let shared = ThrottleLayer::builder()
            .default_limit(Quota::per_second(1).unwrap())
            .store(Never)
            .build();
        let text = expose(&shared);
        assert_eq!(
            sample(&text, "apig_appcode_rate_limit_store_fallbacks_total"),
            0.0
        );
        let latency = "apig_appcode_rate_limit_store_latency_seconds";
        assert_eq!(sample(&text, &format!("{latency}_count")), 0.0);
        assert_eq!(
            sample(&text, &format!("{latency}_bucket{{le=\"0.00005\"}}")),
            0.0
        );
    }
}
