//! Prometheus text exposition of the layer's counters.

use std::fmt::Write;

use crate::cache::CacheStatus;
use crate::metrics::Metrics;

/// Renders `m` (and the cache status) in the Prometheus text format, version 0.0.4.
///
/// ```
/// use apig_appcode::AppCodeCache;
/// use apig_appcode::gateway::metrics::render;
///
/// let cache = AppCodeCache::new();
/// let text = render(&cache.metrics(), cache.status());
/// assert!(text.contains("apig_appcode_cache_size 0"));
/// ```
pub fn render(m: &Metrics, status: CacheStatus) -> String {
    let mut out = String::with_capacity(2048);
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP apig_appcode_{name} {help}\n# TYPE apig_appcode_{name} counter\napig_appcode_{name} {value}");
    };
    counter(
        "hits_total",
        "Requests whose AppCode was found in the cache.",
        m.hits,
    );
    counter(
        "misses_total",
        "Requests with a well-formed AppCode the cache did not hold.",
        m.misses,
    );
    counter(
        "provider_lookups_total",
        "Point lookups sent to the provider.",
        m.provider_lookups,
    );
    counter(
        "provider_errors_total",
        "Failed provider calls.",
        m.provider_errors,
    );
    counter(
        "snapshots_loaded_total",
        "Full snapshots applied to the cache.",
        m.snapshots_loaded,
    );
    counter(
        "changes_applied_total",
        "Change events applied to the cache.",
        m.changes_applied,
    );
    let _ = writeln!(
        out,
        "# HELP apig_appcode_rejections_total Rejected requests by reason.\n# TYPE apig_appcode_rejections_total counter"
    );
    for (reason, value) in [
        ("missing", m.rejected_missing),
        ("invalid", m.rejected_invalid),
        ("forbidden", m.rejected_forbidden),
        ("unavailable", m.rejected_unavailable),
        ("https_required", m.rejected_https_required),
    ] {
        let _ = writeln!(
            out,
            "apig_appcode_rejections_total{{reason=\"{reason}\"}} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP apig_appcode_cache_size AppCodes in the cache.\n# TYPE apig_appcode_cache_size gauge\napig_appcode_cache_size {}",
        m.cache_size
    );
    let age = m.snapshot_age.map_or(-1.0, |d| d.as_secs_f64());
    let _ = writeln!(
        out,
        "# HELP apig_appcode_snapshot_age_seconds Age of the last full snapshot (-1 before the first).\n# TYPE apig_appcode_snapshot_age_seconds gauge\napig_appcode_snapshot_age_seconds {age:.3}"
    );
    let ready = u8::from(status.admits());
    let _ = writeln!(
        out,
        "# HELP apig_appcode_ready Whether the gateway admits requests (1) or answers 503 (0).\n# TYPE apig_appcode_ready gauge\napig_appcode_ready {ready}"
    );
    out
}
