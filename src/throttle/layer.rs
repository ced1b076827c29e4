//! [`ThrottleLayer`] and its builder.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::limiter::Limiter;
use super::quota::Quota;
use super::service::Throttle;
use super::shared::Shared;
use super::store::{RateStore, Remote, DEFAULT_STORE_TIMEOUT};
use crate::layer::ApigJson;
use crate::remote::StoreLatency;

/// Wraps a service in [`Throttle`]. Clones share the limits and the per-app state, so one
/// layer given to several workers enforces one limit per app across them.
///
/// A throttled request gets `R`'s answer to a [`RejectionKind::Throttled`] rejection that
/// carries the wait: APIG's JSON `429 APIG.0308` with `Retry-After` by default, and gRPC's
/// `RESOURCE_EXHAUSTED` with [`GrpcStatus`](crate::layer::GrpcStatus) (see
/// [`on_reject`](Self::on_reject)).
///
/// [`RejectionKind::Throttled`]: crate::layer::RejectionKind::Throttled
#[derive(Clone)]
pub struct ThrottleLayer<R = ApigJson> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) reject: R,
}

impl<R> fmt::Debug for ThrottleLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.shared, f)
    }
}

impl<R> ThrottleLayer<R> {
    /// The same limits and state, answering throttled requests with `reject`: any
    /// [`RejectResponse`](crate::layer::RejectResponse), such as
    /// [`GrpcStatus`](crate::layer::GrpcStatus) for a gRPC service, or a closure.
    ///
    /// ```
    /// use apig_appcode::layer::GrpcStatus;
    /// use apig_appcode::throttle::{Quota, ThrottleLayer};
    ///
    /// let layer = ThrottleLayer::new(Quota::per_second(100).unwrap()).on_reject(GrpcStatus);
    /// assert!(layer.is_active());
    /// ```
    pub fn on_reject<R2>(self, reject: R2) -> ThrottleLayer<R2> {
        ThrottleLayer {
            shared: self.shared,
            reject,
        }
    }

    /// Whether any limit is set; without one the layer only passes requests on.
    pub fn is_active(&self) -> bool {
        self.shared.default.is_some() || !self.shared.apps.is_empty()
    }

    /// The quota `app_id` is held to: its own, else the default.
    pub fn limit_of(&self, app_id: &str) -> Option<Quota> {
        self.shared.quota(app_id).copied()
    }

    /// Requests answered `429` so far, by this layer and every service it made.
    pub fn throttled(&self) -> u64 {
        self.shared.throttled.load(Ordering::Relaxed)
    }

    /// Whether the limits are kept in a [`RateStore`] shared with other nodes.
    pub fn has_store(&self) -> bool {
        self.shared.remote.is_some()
    }

    /// Requests counted on this node alone because the [`RateStore`] failed, did not answer in
    /// time, or was not asked while it recovers (0 without a store).
    pub fn store_fallbacks(&self) -> u64 {
        self.shared.remote.as_ref().map_or(0, Remote::fallbacks)
    }

    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn store_latency(&self) -> Option<StoreLatency> {
        self.shared.remote.as_ref().map(Remote::latency)
    }
}

impl ThrottleLayer {
    /// Every app held to `quota`.
    ///
    /// ```
    /// use apig_appcode::throttle::{Quota, ThrottleLayer};
    ///
    /// let layer = ThrottleLayer::new(Quota::per_second(100).unwrap());
    /// assert!(layer.is_active());
    /// ```
    pub fn new(quota: Quota) -> Self {
        Self::builder().default_limit(quota).build()
    }

    /// A builder with no limit at all (a layer that lets everything through).
    ///
    /// ```
    /// use apig_appcode::throttle::{Quota, ThrottleLayer};
    ///
    /// let layer = ThrottleLayer::builder()
    ///     .default_limit("10/s".parse().unwrap())
    ///     .app_limit("batch-app", Quota::per_second(1).unwrap())
    ///     .build();
    /// assert_eq!(layer.limit_of("batch-app"), Some(Quota::per_second(1).unwrap()));
    /// assert_eq!(layer.limit_of("other"), Some("10/s".parse().unwrap()));
    /// ```
    pub fn builder() -> ThrottleLayerBuilder {
        ThrottleLayerBuilder::default()
    }
}

impl<S, R: Clone> Layer<S> for ThrottleLayer<R> {
    type Service = Throttle<S, R>;

    fn layer(&self, inner: S) -> Throttle<S, R> {
        Throttle::new(inner, self.clone())
    }
}

// Throttle's constructors from a layer live here, beside the layer, so that the service needs
// only the shared state and nothing imports back up.
impl<S, R> Throttle<S, R> {
    /// `inner`, throttled as `layer` says (sharing its state).
    pub fn new(inner: S, layer: ThrottleLayer<R>) -> Self {
        Self::with_shared(inner, layer.shared, layer.reject)
    }
}

impl<S> Throttle<S> {
    /// [`ThrottleLayer::new`] for one quota.
    pub fn layer(quota: Quota) -> ThrottleLayer {
        ThrottleLayer::new(quota)
    }
}

/// Builds a [`ThrottleLayer`]: a default quota for all apps and quotas for some.
#[derive(Debug, Clone)]
pub struct ThrottleLayerBuilder {
    default: Option<Quota>,
    apps: HashMap<Box<str>, Quota>,
    store: Option<Arc<dyn RateStore>>,
    store_timeout: Duration,
}

impl Default for ThrottleLayerBuilder {
    fn default() -> Self {
        Self {
            default: None,
            apps: HashMap::new(),
            store: None,
            store_timeout: DEFAULT_STORE_TIMEOUT,
        }
    }
}

impl ThrottleLayerBuilder {
    /// The quota of every app without one of its own. Without it, such apps are not limited.
    pub fn default_limit(mut self, quota: Quota) -> Self {
        self.default = Some(quota);
        self
    }

    /// `app_id`'s own quota, above or below the default. Set twice, the last one wins.
    pub fn app_limit(mut self, app_id: impl Into<String>, quota: Quota) -> Self {
        self.apps.insert(app_id.into().into_boxed_str(), quota);
        self
    }

    /// Keeps the limits in `store`, shared with every node that uses it, instead of in this
    /// process. While it fails or answers late, requests are counted on this node alone (see
    /// [`store_timeout`](Self::store_timeout)). Without it, each node holds each app to the
    /// whole limit.
    ///
    /// Needs a tokio runtime with its timer, for the deadline of each call.
    pub fn store(mut self, store: impl RateStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// How long one call to the [`store`](Self::store) may take before the request is counted
    /// locally [default: 50 ms]. The node then counts locally for a second
    /// ([`STORE_RETRY`](super::STORE_RETRY)) before it asks the store again.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The layer.
    pub fn build(self) -> ThrottleLayer {
        let timeout = self.store_timeout;
        ThrottleLayer {
            shared: Arc::new(Shared {
                default: self.default,
                apps: self.apps,
                limiter: Limiter::new(),
                remote: self.store.map(|store| Remote::new(store, timeout)),
                throttled: AtomicU64::new(0),
            }),
            reject: ApigJson,
        }
    }
}
