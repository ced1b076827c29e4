//! [`AppCodeAuthLayer`] and its builder, and the shortcuts of [`AppCodeAuth`] that build one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use tower_layer::Layer;

use super::authorize::AllowAll;
use super::headers::{IdentityHeaders, X_APIG_APPCODE};
use super::held_bodies::{HeldBodies, DEFAULT_MAX_HELD_BODIES};
use super::https::HttpsPolicy;
use super::rejection::ApigJson;
use super::service::AppCodeAuth;
use super::shared::Shared;
use super::signed::{AppAuth, SignaturePolicy};
use super::signed_body::SignedBodyLayer;
use crate::cache::refresher::{AfterSnapshot, RefreshPolicy};
use crate::cache::{AppCodeCache, LookupBounds, ReadThrough};
use crate::metrics::Metrics;
use crate::network::IpNetwork;
use crate::provider::AppCodeProvider;
use crate::quota::SharedQuotaCounts;
use crate::signature::DEFAULT_MAX_SKEW;

/// How many point lookups a layer runs at a time unless told otherwise
/// ([`AppCodeAuthLayerBuilder::max_lookups`]): far above what codes created a moment ago and not
/// yet pushed to the node ask for, and about a megabyte at most.
pub const DEFAULT_MAX_LOOKUPS: usize = 1024;

/// Applies [`AppCodeAuth`] to a service: APIG simple authentication with `X-Apig-AppCode`.
///
/// See the [module docs](crate::layer) for an example. `R` builds rejections
/// ([`ApigJson`] by default), `A` decides per route ([`AllowAll`] by default).
pub struct AppCodeAuthLayer<R = ApigJson, A = AllowAll> {
    shared: Arc<Shared>,
    reject: R,
    authorize: A,
}

impl<R: Clone, A: Clone> Clone for AppCodeAuthLayer<R, A> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            reject: self.reject.clone(),
            authorize: self.authorize.clone(),
        }
    }
}

impl<R, A> fmt::Debug for AppCodeAuthLayer<R, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCodeAuthLayer")
            .field("header", &self.shared.header)
            .field("cache", self.shared.codes.cache())
            .finish_non_exhaustive()
    }
}

impl AppCodeAuthLayer {
    /// A layer checking codes against `cache`, which the caller fills (no provider, no refresher).
    /// Until the cache is loaded once (by [`AppCodeCache::replace_all`]) every request gets 503.
    ///
    /// ```
    /// use apig_appcode::{AppCode, AppCodeAuthLayer, AppCodeCache, AppIdentity};
    ///
    /// let cache = AppCodeCache::new();
    /// cache.replace_all([(AppCode::generate(), AppIdentity::new("app", "code"))]);
    /// let layer = AppCodeAuthLayer::new(cache);
    /// ```
    pub fn new(cache: AppCodeCache) -> Self {
        Self::builder().cache(cache).build()
    }

    /// A builder for every option.
    pub fn builder() -> AppCodeAuthLayerBuilder {
        AppCodeAuthLayerBuilder {
            cache: None,
            provider: None,
            header: X_APIG_APPCODE,
            strip_header: true,
            identity_headers: None,
            https: HttpsPolicy::optional(),
            trusted_proxies: Vec::new(),
            refresh: RefreshPolicy::default(),
            lookups: LookupBounds {
                timeout: Duration::from_secs(5),
                max_in_flight: DEFAULT_MAX_LOOKUPS,
            },
            shared_quota_counts: None,
            quota_per_call: None,
            app_auth: AppAuth::AppCode,
            max_skew: DEFAULT_MAX_SKEW,
            max_held_bodies: DEFAULT_MAX_HELD_BODIES,
        }
    }
}

impl<R, A> AppCodeAuthLayer<R, A> {
    /// Answers rejections with `reject` instead of APIG JSON (see
    /// [`RejectResponse`](super::RejectResponse)).
    pub fn on_reject<R2>(self, reject: R2) -> AppCodeAuthLayer<R2, A> {
        AppCodeAuthLayer {
            shared: self.shared,
            reject,
            authorize: self.authorize,
        }
    }

    /// Lets `authorize` refuse a verified app on a route with `403 APIG.0304` (see
    /// [`AuthorizeApp`](super::AuthorizeApp)).
    pub fn authorize<A2>(self, authorize: A2) -> AppCodeAuthLayer<R, A2> {
        AppCodeAuthLayer {
            shared: self.shared,
            reject: self.reject,
            authorize,
        }
    }

    /// The cache the layer verifies against: fill it, or apply changes to it directly.
    pub fn cache(&self) -> &AppCodeCache {
        self.shared.codes.cache()
    }

    /// The [`SignedBodyLayer`] to place outside this layer: it reads a signed body only for a
    /// key this layer's cache holds or its provider may find, and none when this layer accepts
    /// no signature.
    ///
    /// ```
    /// use apig_appcode::{AppCodeAuthLayer, AppCodeCache};
    /// use apig_appcode::layer::AppAuth;
    ///
    /// let auth = AppCodeAuthLayer::builder().app_auth(AppAuth::Signature).build();
    /// let body = auth.signed_body_layer();
    /// // tower::ServiceBuilder::new().layer(body).layer(auth).service(...)
    /// # let _ = body;
    /// ```
    pub fn signed_body_layer(&self) -> SignedBodyLayer {
        let shared = Arc::clone(&self.shared);
        let layer = SignedBodyLayer::new()
            .sharing(Arc::clone(&self.shared.held_bodies))
            .known_keys(self.cache())
            .keys_worth_reading(Arc::new(move |key| shared.codes.may_know_key(key)));
        if self.shared.signatures.app_auth.accepts_signature() {
            layer
        } else {
            layer.off()
        }
    }

    /// The bytes the signed bodies being read hold now, over every body layer taken from this
    /// layer: at most [`max_held_signed_bodies`](AppCodeAuthLayerBuilder::max_held_signed_bodies).
    pub fn signed_bodies_held(&self) -> usize {
        self.shared.held_bodies.held()
    }

    /// Which app credentials the layer accepts.
    pub fn app_auth(&self) -> AppAuth {
        self.shared.signatures.app_auth
    }

    /// Counters of the layer and its cache.
    pub fn metrics(&self) -> Metrics {
        self.shared.codes.cache().metrics()
    }

    /// With quota calls [counted one by one](AppCodeAuthLayerBuilder::count_each_quota_call):
    /// the calls counted on this node alone because the shared counts failed, were late, or
    /// were left alone while they recover. 0 otherwise.
    pub fn quota_count_fallbacks(&self) -> u64 {
        self.shared
            .codes
            .quota_calls()
            .map_or(0, |calls| calls.breaker.fallbacks())
    }

    /// With quota calls counted one by one: the round trips to the shared counts.
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn quota_count_latency(&self) -> Option<crate::remote::StoreLatency> {
        self.shared
            .codes
            .quota_calls()
            .map(|calls| calls.breaker.latency())
    }
}

impl<S, R: Clone, A: Clone> Layer<S> for AppCodeAuthLayer<R, A> {
    type Service = AppCodeAuth<S, R, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AppCodeAuth::from_parts(
            inner,
            Arc::clone(&self.shared),
            self.reject.clone(),
            self.authorize.clone(),
        )
    }
}

impl<S> AppCodeAuth<S> {
    /// Wraps `inner`, checking codes against `cache` (see [`AppCodeAuthLayer::new`]).
    pub fn new(inner: S, cache: AppCodeCache) -> Self {
        AppCodeAuthLayer::new(cache).into_service(inner)
    }

    /// A layer checking codes against `cache`.
    pub fn layer(cache: AppCodeCache) -> AppCodeAuthLayer {
        AppCodeAuthLayer::new(cache)
    }
}

impl<R: Clone, A: Clone> AppCodeAuthLayer<R, A> {
    fn into_service<S>(self, inner: S) -> AppCodeAuth<S, R, A> {
        Layer::layer(&self, inner)
    }
}

/// Configures an [`AppCodeAuthLayer`].
///
/// ```
/// use std::time::Duration;
/// use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
/// use apig_appcode::layer::{HttpsPolicy, IdentityHeaders};
/// use apig_appcode::provider::StaticProvider;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AppCodeAuthLayer::builder()
///     .provider(StaticProvider::builder().app_code("app", "code", AppCode::generate()).build())
///     .refresh_interval(Duration::from_secs(10))
///     .max_staleness(Some(Duration::from_secs(120)))
///     .identity_headers(IdentityHeaders::default())
///     .https(HttpsPolicy::required())
///     .build();
/// layer.cache().loaded().await;
/// assert_eq!(layer.cache().len(), 1);
/// # }
/// ```
pub struct AppCodeAuthLayerBuilder {
    cache: Option<AppCodeCache>,
    provider: Option<Arc<dyn AppCodeProvider>>,
    header: HeaderName,
    strip_header: bool,
    identity_headers: Option<IdentityHeaders>,
    https: HttpsPolicy,
    /// Joined to `https`'s own at `build`, so that `https` may be set before or after.
    trusted_proxies: Vec<IpNetwork>,
    refresh: RefreshPolicy,
    lookups: LookupBounds,
    shared_quota_counts: Option<Arc<dyn SharedQuotaCounts>>,
    /// The deadline of one call's count, when each is counted in the shared counts.
    quota_per_call: Option<Duration>,
    app_auth: AppAuth,
    max_skew: Duration,
    max_held_bodies: usize,
}

impl fmt::Debug for AppCodeAuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCodeAuthLayerBuilder")
            .field("header", &self.header)
            .field("strip_header", &self.strip_header)
            .field("identity_headers", &self.identity_headers)
            .field("https", &self.https)
            .field("refresh", &self.refresh)
            .field("app_auth", &self.app_auth)
            .finish_non_exhaustive()
    }
}

impl AppCodeAuthLayerBuilder {
    /// Where codes come from. A refresher task is started by [`build`](Self::build).
    pub fn provider(mut self, provider: impl AppCodeProvider) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    /// Like [`provider`](Self::provider), for a provider already shared.
    pub fn shared_provider(mut self, provider: Arc<dyn AppCodeProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Uses this cache (for example one built with custom negative-cache bounds, or one shared
    /// with a management API) instead of a new one.
    pub fn cache(mut self, cache: AppCodeCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The header the AppCode is read from (default `X-Apig-AppCode`).
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Whether the AppCode header is removed before the inner service sees the request
    /// (default `true`).
    pub fn strip_header(mut self, strip: bool) -> Self {
        self.strip_header = strip;
        self
    }

    /// Sets the verified app ID and AppCode ID as request headers for an upstream. Headers of
    /// these names sent by the client are always removed first, so they cannot be spoofed.
    /// Off by default.
    pub fn identity_headers(mut self, names: IdentityHeaders) -> Self {
        self.identity_headers = Some(names);
        self
    }

    /// Whether plain HTTP is refused, and whom to trust about the scheme (default: accepted).
    pub fn https(mut self, policy: HttpsPolicy) -> Self {
        self.https = policy;
        self
    }

    /// Proxies whose `X-Forwarded-For` names the client an app ACL is checked against (see
    /// [`client_ip`](crate::acl::client_ip)) and whose `X-Forwarded-Proto` the
    /// [`HttpsPolicy`] believes: one list for both, with those of
    /// [`HttpsPolicy::trust_forwarded_proto_from`]. Default none, so the client is the TCP
    /// peer. Needs [`ConnectionInfo`](super::ConnectionInfo) in the request's extensions.
    ///
    /// ```
    /// use apig_appcode::AppCodeAuthLayer;
    ///
    /// let layer = AppCodeAuthLayer::builder()
    ///     .trusted_proxies(["10.0.0.0/8".parse().unwrap()])
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn trusted_proxies(mut self, networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        self.trusted_proxies.extend(networks);
        self
    }

    /// How often the cache catches up with the provider (default 30 s): with the changes since
    /// the revision it holds when the provider keeps revisions, else by loading a full snapshot.
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh.interval = every.max(Duration::from_millis(10));
        self
    }

    /// How often the cache's codes are checked against the provider's (default 5 minutes;
    /// `Duration::ZERO` turns the check off): a digest of the codes the cache holds is compared
    /// with the provider's at the same revision, and a difference (a change that reached the
    /// provider but not the cache) reloads the full snapshot, logged as a warning and counted
    /// in [`Metrics::anti_entropy_repairs`](crate::Metrics::anti_entropy_repairs). Only
    /// providers that give a [`digest`](crate::provider::AppCodeProvider::digest) are checked.
    pub fn anti_entropy_interval(mut self, every: Duration) -> Self {
        self.refresh.anti_entropy = (!every.is_zero()).then_some(every);
        self
    }

    /// How old the last good snapshot may grow while the provider fails before the layer stops
    /// trusting it (default 5 minutes; `None`: forever).
    pub fn max_staleness(mut self, max: Option<Duration>) -> Self {
        self.refresh.max_staleness = max;
        self
    }

    /// Beyond the maximum staleness, keep admitting requests on the old snapshot instead of
    /// answering 503 (default `false`: fail closed).
    pub fn serve_stale(mut self, serve: bool) -> Self {
        self.refresh.serve_stale = serve;
        self
    }

    /// How long one snapshot load may take before it counts as failed (default 30 s).
    pub fn load_timeout(mut self, limit: Duration) -> Self {
        self.refresh.load_timeout = limit;
        self
    }

    /// Runs `hook` after each full snapshot the refresher applies (at start, and whenever it
    /// has to load every code again), with the number of codes loaded. The load's own memory
    /// (the provider's answer, about as large as the codes it brought) is freed by then: the
    /// place for a process to give memory back to the system, as the `apig-appcode` binary does
    /// with glibc's heap. The hook runs on the refresher's task: keep it short, or hand the work
    /// to a thread.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// use apig_appcode::provider::{AppCodeProvider, BoxFuture, ProviderError, Snapshot};
    /// use apig_appcode::{AppCode, AppCodeAuthLayer, AppIdentity};
    ///
    /// struct One;
    /// impl AppCodeProvider for One {
    ///     fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, ProviderError>> {
    ///         Box::pin(async { Ok(vec![(AppCode::generate(), AppIdentity::new("app-1", "code-1"))]) })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let loaded = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&loaded);
    /// let layer = AppCodeAuthLayer::builder()
    ///     .provider(One)
    ///     .after_snapshot(move |codes| seen.store(codes, Ordering::Relaxed))
    ///     .build();
    /// layer.cache().loaded().await;
    /// # tokio::task::yield_now().await;
    /// assert_eq!(loaded.load(Ordering::Relaxed), 1);
    /// # }
    /// ```
    pub fn after_snapshot(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.refresh.after_snapshot = Some(AfterSnapshot(Arc::new(hook)));
        self
    }

    /// How long a point lookup on a cache miss may take before the request gets 503
    /// (default 5 s).
    pub fn lookup_timeout(mut self, limit: Duration) -> Self {
        self.lookups.timeout = limit;
        self
    }

    /// How many point lookups the layer runs at a time, at most
    /// [default: [`DEFAULT_MAX_LOOKUPS`]]. A lookup outlives the request that started it (its
    /// answer fills the cache), up to its timeout; past the limit a miss on a code no lookup is
    /// running for is answered `503` (`Retry-After: 1`) at once, counted in
    /// [`Metrics::lookups_shed`]. So a flood of distinct unknown codes against a provider that
    /// hangs holds at most this many lookups' memory (about a kilobyte each). Clamped to at
    /// least 1.
    ///
    /// ```
    /// use apig_appcode::AppCodeAuthLayer;
    ///
    /// let layer = AppCodeAuthLayer::builder().max_lookups(256).build();
    /// assert_eq!(layer.metrics().lookups_shed, 0);
    /// ```
    pub fn max_lookups(mut self, max: usize) -> Self {
        self.lookups.max_in_flight = max.max(1);
        self
    }

    /// Where the nodes share their app quota counts (see [`quota`](crate::quota)), in place of
    /// the provider's (when it [shares them](AppCodeProvider::shares_quota_counts)): Redis, say,
    /// with [`RedisRateStore::quota_counts`](crate::throttle::RedisRateStore::quota_counts)
    /// (feature `redis`).
    pub fn shared_quota_counts(mut self, shared: impl SharedQuotaCounts) -> Self {
        self.shared_quota_counts = Some(Arc::new(shared));
        self
    }

    /// Counts each call of an app with a quota in the shared counts before the request goes
    /// on, and refuses from the total they answer (Huawei's "high precision"): the cluster
    /// admits at most the quota, at the cost of a round trip per such call [default: calls are
    /// counted here and added in batches, see [`quota`](crate::quota)].
    ///
    /// An answer later than `timeout`, or a failure, lets the call through counted on this
    /// node, and for [`STORE_RETRY`](crate::throttle::STORE_RETRY) after it every call is
    /// counted here without asking; what a node counted alone is added to the shared counts
    /// once they answer, as in batched counting. A call the node already knows to be over the
    /// quota is refused without asking. Meant for Redis
    /// ([`RedisQuotaCounts`](crate::throttle::RedisQuotaCounts), a script per call); without
    /// shared counts it changes nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use apig_appcode::AppCodeAuthLayer;
    ///
    /// let layer = AppCodeAuthLayer::builder()
    ///     .count_each_quota_call(Duration::from_millis(50))
    ///     .build();
    /// assert_eq!(layer.quota_count_fallbacks(), 0);
    /// ```
    pub fn count_each_quota_call(mut self, timeout: Duration) -> Self {
        self.quota_per_call = Some(timeout);
        self
    }

    /// Which app credentials are accepted (default [`AppAuth::AppCode`]): with signatures, a
    /// request signed with an app's key and secret (`SDK-HMAC-SHA256`) is admitted as its app,
    /// through the same ACL, quota and authorization as an AppCode. The keys come from the
    /// provider ([`AppCodeProvider::app_keys`]) or the cache
    /// ([`AppCodeCache::set_app_key`]); place a [`SignedBodyLayer`]
    /// outside this layer so that signed bodies are checked (see its docs).
    ///
    /// ```
    /// use apig_appcode::AppCodeAuthLayer;
    /// use apig_appcode::layer::AppAuth;
    ///
    /// let layer = AppCodeAuthLayer::builder().app_auth(AppAuth::AppCodeOrSignature).build();
    /// # let _ = layer;
    /// ```
    pub fn app_auth(mut self, accepted: AppAuth) -> Self {
        self.app_auth = accepted;
        self
    }

    /// How far a signature's `X-Sdk-Date` may be from this node's clock, either way (default
    /// 15 minutes, as APIG allows).
    pub fn signature_max_skew(mut self, max: Duration) -> Self {
        self.max_skew = max;
        self
    }

    /// The most bytes the signed bodies being read may hold together, over every body layer
    /// taken from this layer ([`signed_body_layer`](AppCodeAuthLayer::signed_body_layer))
    /// [default: [`DEFAULT_MAX_HELD_BODIES`]], those of one app key a quarter of it (or one
    /// body of the largest size, if that is more): a body that would go over either is refused
    /// with `503 APIG.0202` and `Retry-After: 1` (see [`SignedBodyLayer`]).
    ///
    /// ```
    /// use apig_appcode::layer::AppAuth;
    /// use apig_appcode::AppCodeAuthLayer;
    ///
    /// let layer = AppCodeAuthLayer::builder()
    ///     .app_auth(AppAuth::AppCodeOrSignature)
    ///     .max_held_signed_bodies(64 * 1024 * 1024)
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn max_held_signed_bodies(mut self, bytes: usize) -> Self {
        self.max_held_bodies = bytes;
        self
    }

    /// Builds the layer and, with a provider, starts its refresher on the current Tokio runtime.
    /// The refresher stops when the last clone of the layer (and of its services) is dropped.
    ///
    /// # Panics
    ///
    /// With a provider, if called outside a Tokio runtime.
    pub fn build(self) -> AppCodeAuthLayer {
        let codes = ReadThrough::new(
            self.cache.unwrap_or_default(),
            self.provider,
            self.refresh,
            self.lookups,
            self.shared_quota_counts,
            self.quota_per_call,
        );
        AppCodeAuthLayer {
            shared: Arc::new(Shared {
                codes,
                header: self.header,
                strip_header: self.strip_header,
                identity_headers: self.identity_headers,
                https: self.https.trusting(self.trusted_proxies),
                signatures: SignaturePolicy {
                    app_auth: self.app_auth,
                    max_skew: self.max_skew,
                },
                held_bodies: Arc::new(HeldBodies::new(self.max_held_bodies)),
            }),
            reject: ApigJson,
            authorize: AllowAll,
        }
    }
}
