//! Per-call quota counting (Huawei's "high precision"): each call of an app with a quota is
//! added to the counts the nodes share (Redis, in one atomic script) before the request goes
//! on, and the total that comes back decides it. The cluster then admits at most the quota.
//!
//! The node's own count stays the fallback. A call is reserved there first, so that a node
//! that knows the window used up refuses without a round trip. A failed or late answer opens a
//! [`Breaker`]: the call, and every call until the shared counts answer again, is counted here
//! and added to the shared counts by the flusher, as in batched counting. A request that goes
//! away before the answer gives its reservation back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::{timeout, Instant};

use super::quotas::Charge;
use super::AppCodeCache;
use crate::provider::BoxFuture;
use crate::quota::{AppQuota, QuotaCount, QuotaCounts, SharedQuotaCounts};
use crate::remote::Breaker;

/// The shared counts each call is asked of, the deadline of one ask, and its breaker.
pub(crate) struct QuotaCalls {
    shared: Arc<dyn SharedQuotaCounts>,
    timeout: Duration,
    pub(crate) breaker: Breaker,
}

impl QuotaCalls {
    pub(crate) fn new(shared: Arc<dyn SharedQuotaCounts>, timeout: Duration) -> Self {
        Self {
            shared,
            timeout,
            breaker: Breaker::new(),
        }
    }
}

/// How a call's quota is charged: at once, or by an ask under way.
pub(crate) enum QuotaCharge {
    Now(Charge),
    Asking(QuotaAsking),
}

/// One call's ask of the shared counts, with its deadline.
pub(crate) type QuotaAsking = BoxFuture<'static, Charge>;

impl AppCodeCache {
    /// Charges a call of `app_id` to its quota through `calls`, unless what this node knows
    /// refuses it, or the breaker keeps the shared counts out of it (then it is counted here).
    pub(crate) fn charge_quota_per_call(
        &self,
        app_id: &str,
        calls: &Arc<QuotaCalls>,
    ) -> QuotaCharge {
        let Some(quota) = self.app_quota(app_id) else {
            return QuotaCharge::Now(Charge::NoQuota);
        };
        let counts = &self.inner.quota_counts;
        let asked = match counts.begin_ask(app_id, &quota, SystemTime::now()) {
            Ok(asked) => asked,
            Err(wait) => return QuotaCharge::Now(Charge::UsedUp { quota, wait }),
        };
        if !calls.breaker.may_ask() {
            let left = counts.fail_ask(&asked, &quota);
            return QuotaCharge::Now(Charge::Counted { quota, left });
        }
        let ask = ask(self.clone(), Arc::clone(calls), quota, asked);
        QuotaCharge::Asking(Box::pin(ask))
    }
}

/// Adds `asked` to the shared counts and makes the answer a charge.
async fn ask(
    cache: AppCodeCache,
    calls: Arc<QuotaCalls>,
    quota: Arc<AppQuota>,
    asked: QuotaCount,
) -> Charge {
    let counts = &cache.inner.quota_counts;
    let mut reservation = Reservation {
        counts,
        asked: &asked,
        held: true,
    };
    let started = Instant::now();
    let answer = timeout(calls.timeout, calls.shared.add(vec![asked.clone()])).await;
    let took = started.elapsed();
    reservation.held = false;
    let error = match answer {
        Ok(Ok(totals)) if totals.len() == 1 => {
            if calls.breaker.answered(took) {
                tracing::info!("app quota counts answer again; each call is counted there again");
            }
            return match counts.answer_ask(&asked, totals[0], &quota, SystemTime::now()) {
                Ok(left) => Charge::Counted { quota, left },
                Err(wait) => Charge::UsedUp { quota, wait },
            };
        }
        Ok(Ok(totals)) => format!("the shared counts answered {} counts for 1", totals.len()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {:?}", calls.timeout),
    };
    if calls.breaker.failed(took) {
        tracing::warn!(
            %error,
            "app quota counts failed; calls are counted on this node and added to the shared \
             counts once they answer"
        );
    }
    let left = counts.fail_ask(&asked, &quota);
    Charge::Counted { quota, left }
}

/// A call reserved in this node's count while it is asked: given back if the ask is dropped
/// before its answer (the request went away).
struct Reservation<'a> {
    counts: &'a QuotaCounts,
    asked: &'a QuotaCount,
    held: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            self.counts.drop_ask(self.asked);
        }
    }
}
