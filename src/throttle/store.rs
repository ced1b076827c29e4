//! [`RateStore`]: per-app limit state kept outside the process, so that several gateway nodes
//! hold one limit between them; and [`Remote`], how the throttle asks it under a deadline and
//! answers from its own state when it cannot.
//!
//! A failed or late answer opens a breaker (see [`crate::remote`]): for [`STORE_RETRY`](crate::remote::STORE_RETRY) the
//! node counts on its own. The log gets one warning when the breaker opens and one line when it
//! closes, not one per request.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::quota::Quota;
use crate::remote::{Breaker, StoreLatency};

/// What a [`RateStore`] answers: `Ok(Ok(left))` the request passes and `left` more would pass
/// at once, `Ok(Err(wait))` it is over the limit and may come back after `wait`, `Err` the
/// store could not tell.
pub type RateCheck =
    Pin<Box<dyn Future<Output = Result<Result<u64, Duration>, RateStoreError>> + Send>>;

/// Per-app limit state shared by several throttles, possibly in other processes: set one with
/// [`ThrottleLayerBuilder::store`](super::ThrottleLayerBuilder::store).
///
/// [`check`](Self::check) charges one request of `app_id` to `quota`, atomically for every
/// node, with the GCRA of the local limiter (see [`Quota`]): an app's theoretical arrival time
/// moves by [`Quota::emission_interval`] per request, and a request passes while that time is
/// at most [`Quota::tolerance`] ahead of now. The throttle bounds each call by its
/// [`store_timeout`](super::ThrottleLayerBuilder::store_timeout) and drops the future past it.
///
/// ```
/// use apig_appcode::throttle::{Quota, RateCheck, RateStore, ThrottleLayer};
///
/// /// Admits everything: a stand-in for a store that another process shares.
/// #[derive(Debug)]
/// struct Open;
///
/// impl RateStore for Open {
///     fn check(&self, _app_id: &str, _quota: &Quota) -> RateCheck {
///         Box::pin(std::future::ready(Ok(Ok(u64::MAX))))
///     }
/// }
///
/// let layer = ThrottleLayer::builder()
///     .default_limit(Quota::per_second(10).unwrap())
///     .store(Open)
///     .build();
/// assert!(layer.has_store());
/// assert_eq!(layer.store_fallbacks(), 0);
/// ```
pub trait RateStore: fmt::Debug + Send + Sync + 'static {
    /// Charges one request of `app_id` under `quota`.
    fn check(&self, app_id: &str, quota: &Quota) -> RateCheck;

    /// Admits one request of `app_id` at once, without a round trip, when the store holds
    /// room for it already (requests it took earlier on this node's account): then how many it
    /// still holds. `None` sends the request to [`check`](Self::check). The default holds none.
    fn admit_held(&self, app_id: &str) -> Option<u64> {
        let _ = app_id;
        None
    }
}

/// Why a [`RateStore`] could not answer. Its message must hold no secret (a password in a URL):
/// the throttle logs it.
#[derive(Debug)]
pub struct RateStoreError(Box<dyn Error + Send + Sync>);

impl RateStoreError {
    /// An error with `cause`.
    pub fn new(cause: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self(cause.into())
    }
}

impl fmt::Display for RateStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for RateStoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

/// The default deadline of one store call: a few round trips on a local network, short enough
/// that a store in trouble adds little to a request's latency.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);

/// A store, its deadline and its breaker.
pub(crate) struct Remote {
    store: Arc<dyn RateStore>,
    timeout: Duration,
    breaker: Breaker,
}

impl Remote {
    pub(crate) fn new(store: Arc<dyn RateStore>, timeout: Duration) -> Self {
        Self {
            store,
            timeout,
            breaker: Breaker::new(),
        }
    }

    /// How the store answers this request.
    pub(crate) fn begin(&self, app_id: &str, quota: &Quota) -> Route {
        // Room the store already holds was counted in the shared state: usable even while the
        // store fails.
        if let Some(held) = self.store.admit_held(app_id) {
            return Route::Admitted(held);
        }
        if !self.breaker.may_ask() {
            return Route::Local;
        }
        Route::Ask(Asking {
            check: Box::pin(tokio::time::timeout(
                self.timeout,
                self.store.check(app_id, quota),
            )),
            started: Instant::now(),
        })
    }

    /// The verdict of a store call that ended (answered, failed or timed out); `None` when the
    /// caller must count the request locally.
    pub(crate) fn answered(
        &self,
        outcome: Result<Result<Result<u64, Duration>, RateStoreError>, tokio::time::error::Elapsed>,
        took: Duration,
    ) -> Option<Result<u64, Duration>> {
        let error = match outcome {
            Ok(Ok(verdict)) => {
                if self.breaker.answered(took) {
                    tracing::info!("rate limit store answers again; limits are shared again");
                }
                return Some(verdict);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        if self.breaker.failed(took) {
            tracing::warn!(
                error = %error,
                store = ?self.store,
                "rate limit store failed; counting each app's requests on this node alone \
                 until it answers again"
            );
        }
        None
    }

    pub(crate) fn fallbacks(&self) -> u64 {
        self.breaker.fallbacks()
    }

    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn latency(&self) -> StoreLatency {
        self.breaker.latency()
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateStore")
            .field("store", &self.store)
            .field("timeout", &self.timeout)
            .field("fallbacks", &self.fallbacks())
            .finish_non_exhaustive()
    }
}

/// How the store answers a request.
pub(crate) enum Route {
    /// From room it held: admitted at once; it holds this many more.
    Admitted(u64),
    /// Through a call, under way.
    Ask(Asking),
    /// Not asked while it recovers: the local state answers (a fallback, counted).
    Local,
}

/// A store call under way. Boxed with its deadline (a second allocation beside the store's, small
/// against a network round trip) so that the throttle's future stays `Unpin` like its inner
/// service's, as it was without a store.
pub(crate) struct Asking {
    pub(crate) check: Pin<Box<tokio::time::Timeout<RateCheck>>>,
    pub(crate) started: Instant,
}
