//! [`RedisRateStore`]: per-app rate limits kept in Redis, one limit for every gateway node.
//!
//! The design and its numbers are on [`RedisRateStore`], which users see.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use dashmap::DashMap;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use tokio::sync::Notify;

use super::quota::Quota;
use super::redis_url::RedisUrl;
use super::store::{RateCheck, RateStore, RateStoreError};
use crate::provider::{BoxError, BoxFuture};
use crate::quota::{QuotaCount, SharedCount, SharedQuotaCounts};
use crate::request_id::RequestId;

/// The GCRA of `limiter.rs` on one key, taking up to a batch of requests at once. ARGV:
/// emission interval and tolerance in ns, batch size. The key holds the theoretical arrival
/// time as "SECONDS NANOSECONDS" of Redis's clock: Lua's numbers are doubles, exact to 2^53,
/// which nanoseconds since 1970 exceed but nanoseconds from now to the arrival time do not (up
/// to 104 days ahead). Returns {requests granted, requests that would pass at once after them},
/// or {0, ns until one would be}.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local s, n = tonumber(t[1]), tonumber(t[2]) * 1000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
local ahead = 0
local tat = redis.call('GET', KEYS[1])
if tat then
  local ts, tn = string.match(tat, '^(%d+) (%d+)$')
  if ts then
    ahead = math.max(0, (tonumber(ts) - s) * 1000000000 + (tonumber(tn) - n))
  end
end
if ahead > tolerance then
  return {0, ahead - tolerance}
end
local granted = math.min(batch, math.floor((tolerance - ahead) / interval) + 1)
local due = ahead + granted * interval
local ns = n + due
-- fmod (C's, exact) rather than % or floor(/), whose rounded quotient can be one too high.
local rest = math.fmod(ns, 1000000000)
redis.call('SET', KEYS[1], string.format('%d %d', s + (ns - rest) / 1000000000, rest),
  'PX', math.max(1, math.ceil(due / 1000000)))
local left = 0
if due <= tolerance then
  left = math.floor((tolerance - due) / interval) + 1
end
return {granted, left}
";

/// App quota counts (`quota::SharedCount::add`'s rule) on one key per app, each a hash of the
/// first call `f`, the window's start `w` and its calls `c`. `KEYS[1]` is the batch's mark, the
/// rest the apps' keys. `ARGV[1]`: how long the mark is kept, in ms (0: no mark); then four per
/// app key, the node's first call, window start, window end and calls, in seconds (exact in
/// Lua's doubles). A key expires a minute after its window ends. Returns `f, w, c` of each app
/// key after the addition. A batch whose mark is set already was added by an earlier run whose
/// answer was lost: it is answered from the counts held and adds nothing.
const QUOTA_SCRIPT: &str = r"
local fresh = ARGV[1] == '0' or redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local b = (i - 2) * 4 + 1
  local first, start = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local stop, calls = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local held = redis.call('HMGET', key, 'f', 'w', 'c')
  local f, w, c = tonumber(held[1]), tonumber(held[2]), tonumber(held[3])
  if w == nil or f == nil or c == nil then
    f, w, c = first, start, calls
  elseif fresh and w == start then
    c = c + calls
  elseif fresh and w < start then
    w, c = start, calls
  end
  if fresh and w == start then
    redis.call('HSET', key, 'f', string.format('%.0f', f), 'w', string.format('%.0f', w),
      'c', string.format('%.0f', c))
    redis.call('EXPIREAT', key, string.format('%.0f', stop + 60))
  end
  out[#out + 1] = f
  out[#out + 1] = w
  out[#out + 1] = c
end
return out
";

/// How long connecting (TCP, TLS, `AUTH`, `SELECT`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long Redis keeps a quota batch's mark, in ms: longer than a call and its one repeat on a
/// new connection can take (a response timeout, a connection, a response timeout: 6 s).
const BATCH_MARK_MS: u64 = 10_000;

/// How long a node keeps requests it took from Redis and did not use. Whatever it is, a node
/// holds at most a batch less one; this only lets the map forget apps that went quiet.
const BUDGET_LIFETIME: Duration = Duration::from_secs(1);

/// Calls given up in a row before the connection is taken for dead and replaced.
const ABANDONED_LIMIT: u32 = 3;

/// Why [`RedisRateStore::connect`] refused to start: Redis answered, but refused the
/// credentials or the database. The message holds no password.
#[derive(Debug)]
pub struct RedisStoreError(String);

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisStoreError {}

/// Per-app limits in Redis, one limit for every gateway node, for
/// [`ThrottleLayerBuilder::store`](super::ThrottleLayerBuilder::store). Clones share the
/// connection.
///
/// Needs Redis 5 or newer (or a server of its protocol, such as Valkey): the script reads the
/// server's clock and then writes, which older versions refuse.
///
/// Each request (each batch, with [`batch`](Self::batch)) is one `EVALSHA` of a Lua script
/// that runs the local limiter's GCRA on the app's key, atomically, against Redis's own clock
/// (`TIME`), so nodes with skewed clocks still agree: it reads the app's theoretical arrival
/// time, refuses with the wait when that time is beyond the tolerance, else moves it one
/// emission interval on (one per request granted). The key expires when the arrival time
/// passes (the state then equals a fresh one), so Redis holds one small key per app that sent
/// a request within its last burst window.
///
/// - The interval and tolerance are the local limiter's, in nanoseconds; Redis's clock reads in
///   microseconds, so a request is seen up to 1 µs early, which moves no rate.
/// - One multiplexed connection per store and thread that calls it: a gateway worker's round
///   trips to Redis run on its own thread, like the rest of its requests. A connection is
///   dropped when it breaks, or when three calls in a row were given up for their deadline (a
///   Redis that stopped answering on a live connection); the next call opens another, in a
///   task of its own that its deadline does not cut short. A call that finds its connection
///   broken opens another and is made once more, within the same deadline: a rate check lost
///   with the old connection after Redis ran it may then have been counted twice (a quota
///   batch is not: see [`RedisQuotaCounts`]). The throttle's breaker paces those
///   calls to one a second while Redis fails.
/// - `redis` (the crate) was chosen over `fred` by a measurement: 36 added crates against 44, a
///   release build in 44 s against 83 s, and 2.0 µs against 3.9 µs of client CPU per script call
///   (BENCHMARKS.md).
///
/// # Example
///
/// ```no_run
/// use apig_appcode::throttle::{Quota, RedisRateStore, RedisUrl, ThrottleLayer};
/// use std::time::Duration;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let url = RedisUrl::parse("redis://:s3cret@redis.internal:6379/0")?;
/// assert_eq!(url.to_string(), "redis://:***@redis.internal:6379/0");
/// let store = RedisRateStore::connect(&url, "apig:rl:instance-1:").await?;
/// let throttle = ThrottleLayer::builder()
///     .default_limit(Quota::per_second(100)?)
///     .store(store)
///     .store_timeout(Duration::from_millis(50))
///     .build();
/// # let _ = throttle; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRateStore {
    inner: Arc<Inner>,
    /// Requests taken from Redis per call; 1 counts each request there.
    batch: u32,
    /// What this node took and has not used yet, per app (batches above 1 only).
    budgets: Arc<DashMap<Box<str>, Budget>>,
}

/// Requests an app may still send on this node's account, until a deadline.
struct Budget {
    left: u32,
    until: tokio::time::Instant,
}

struct Inner {
    client: redis::Client,
    url: RedisUrl,
    prefix: Box<str>,
    script: redis::Script,
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug("RedisRateStore", f)
    }
}

impl RedisRateStore {
    /// Connects to `url` once, to check the settings; each app's state goes to the key
    /// `{key_prefix}{app_id}` (such as `apig:rl:INSTANCE:`, so that instances sharing a Redis
    /// do not share limits).
    ///
    /// A Redis that cannot be reached is not an error: the store starts, and the throttle
    /// counts locally until Redis answers. One that refuses the password, the database or the
    /// TLS handshake (an untrusted certificate) is.
    pub async fn connect(url: &RedisUrl, key_prefix: &str) -> Result<Self, RedisStoreError> {
        let client = match &url.root_certificates {
            Some(pem) => redis::Client::build_with_tls(
                (*url.info).clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => redis::Client::open((*url.info).clone()),
        };
        let inner = Arc::new(Inner {
            client: client
                .map_err(|e| RedisStoreError(format!("Redis at {url}: {}", describe(&e, url))))?,
            url: url.clone(),
            prefix: key_prefix.into(),
            script: redis::Script::new(SCRIPT),
        });
        match inner.open().await {
            Ok(_) => {}
            Err(e) if is_transient(&e) && !is_tls_refusal(&e) => {
                tracing::warn!(
                    redis = %url,
                    error = %describe(&e, url),
                    "Redis unreachable; rate limits are counted per node until it answers"
                );
            }
            Err(e) => {
                return Err(RedisStoreError(format!(
                    "Redis at {url}: {}",
                    describe(&e, url)
                )))
            }
        }
        Ok(Self {
            inner,
            batch: 1,
            budgets: Arc::default(),
        })
    }

    /// Takes up to `requests` of an app's limit from Redis per call and admits the rest of them
    /// from this node's account, without asking [default: 1, each request asks].
    ///
    /// Fewer round trips, at a cost in accuracy: every request admitted was granted by Redis,
    /// so over time no app exceeds its rate; but each node may hold up to `requests - 1` of an
    /// app's requests, which another node is refused meanwhile, and which it may spend up to a
    /// second after Redis counted them, on top of a burst Redis grants then. In any window the
    /// cluster admits at most `nodes × (requests - 1)` more than with a batch of 1, and what a
    /// node does not use within the second is lost.
    pub fn batch(mut self, requests: NonZeroU32) -> Self {
        self.batch = requests.get();
        self
    }

    /// One request of `app_id` from this node's account, if it holds one.
    fn take_budget(&self, app_id: &str) -> Option<u64> {
        if self.batch == 1 {
            return None;
        }
        let mut budget = self.budgets.get_mut(app_id)?;
        if budget.left > 0 && tokio::time::Instant::now() < budget.until {
            budget.left -= 1;
            return Some(u64::from(budget.left));
        }
        drop(budget);
        self.budgets.remove(app_id);
        None
    }
}

impl RedisRateStore {
    /// The app quota counts of the nodes on this Redis (through the same server, settings and
    /// password), each app's under the key `{key_prefix}{app_id}` (such as `apig:q:INSTANCE:`),
    /// for [`AppCodeAuthLayerBuilder::shared_quota_counts`](crate::layer::AppCodeAuthLayerBuilder::shared_quota_counts).
    pub fn quota_counts(&self, key_prefix: &str) -> RedisQuotaCounts {
        RedisQuotaCounts {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                url: self.inner.url.clone(),
                prefix: key_prefix.into(),
                script: redis::Script::new(QUOTA_SCRIPT),
            }),
        }
    }
}

/// App quota counts shared through Redis ([`RedisRateStore::quota_counts`]): each node adds its
/// calls in batches (see [`quota`](crate::quota)), one `EVALSHA` per batch that applies
/// [`SharedCount::add`]'s rule to every app of it atomically. A key expires a minute after its
/// window ends.
///
/// A batch is added once even when its call is made twice: when the connection drops after
/// Redis ran the batch and before its answer arrived, the call is made again on a new
/// connection. Each batch of more than one call sets a mark, `{key_prefix}~batch~ID` (32 hex
/// digits), kept for 10 s; a batch whose mark is set is answered from the counts held and adds
/// nothing. A single call (what
/// [`count_each_quota_call`](crate::layer::AppCodeAuthLayerBuilder::count_each_quota_call)
/// sends) carries no mark: the mark's write would cost Redis about 40 % more time for each
/// call, to guard one call. A batch the node gave up on (no answer within its deadline) is
/// another matter: its calls are sent again in a later batch, and count twice if Redis had run
/// the first.
#[derive(Clone)]
pub struct RedisQuotaCounts {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisQuotaCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug("RedisQuotaCounts", f)
    }
}

impl SharedQuotaCounts for RedisQuotaCounts {
    fn add(&self, counts: Vec<QuotaCount>) -> BoxFuture<'_, Result<Vec<SharedCount>, BoxError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let counts = &counts;
            let slot = Slot::of(inner);
            // Unique to this batch in the cluster: a random prefix per process and a counter.
            let mark = &format!("{}~batch~{}", inner.prefix, RequestId::new());
            // A single call (each call counted in Redis) goes unmarked: the mark would cost
            // Redis more than the one call it could count twice.
            let single_call = matches!(counts.as_slice(), [count] if count.calls <= 1);
            let mark_ms = if single_call { 0 } else { BATCH_MARK_MS };
            let flat = slot
                .call(inner, |mut conn| async move {
                    let mut invocation = inner.script.prepare_invoke();
                    invocation.key(mark).arg(mark_ms);
                    for count in counts {
                        invocation
                            .key(format!("{}{}", inner.prefix, count.app_id))
                            .arg(count.first_call)
                            .arg(count.window_start)
                            .arg(count.window_end)
                            .arg(count.calls);
                    }
                    invocation.invoke_async::<Vec<i64>>(&mut conn).await
                })
                .await?;
            if flat.len() != counts.len() * 3 {
                return Err(format!(
                    "Redis answered {} numbers for {} quota counts",
                    flat.len(),
                    counts.len()
                )
                .into());
            }
            Ok(flat
                .chunks_exact(3)
                .map(|c| SharedCount {
                    first_call: c[0],
                    window_start: c[1],
                    calls: c[2].max(0).unsigned_abs(),
                })
                .collect())
        })
    }
}

impl Inner {
    /// A store's or its quota counts' `Debug`: the Redis (its password hidden) and the prefix.
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }

    async fn open(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(CONNECT_TIMEOUT);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

thread_local! {
    /// This thread's connection of each store it called. A gateway worker is one thread with a
    /// runtime of its own: a connection opened there runs its I/O there too, so a request's
    /// round trip to Redis wakes no other thread.
    static SLOTS: RefCell<Vec<(Weak<Inner>, Arc<Slot>)>> = const { RefCell::new(Vec::new()) };
}

/// One thread's connection to a store's Redis.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Told when a connection attempt ends.
    attempted: Notify,
}

#[derive(Default)]
struct SlotState {
    /// The connection and its generation; `None` before the first and after a broken one.
    conn: Option<(u64, MultiplexedConnection)>,
    generation: u64,
    connecting: bool,
    /// Calls given up in a row on the current connection.
    abandoned: u32,
    last_error: Option<String>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This thread's slot for `inner`, made on first use.
    fn of(inner: &Arc<Inner>) -> Arc<Self> {
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            if let Some((_, slot)) = slots.iter().find(|(s, _)| s.as_ptr() == Arc::as_ptr(inner)) {
                return Arc::clone(slot);
            }
            slots.retain(|(store, _)| store.strong_count() > 0);
            let slot = Arc::new(Self::default());
            slots.push((Arc::downgrade(inner), Arc::clone(&slot)));
            slot
        })
    }

    /// The connection, or the outcome of one attempt to open it. The attempt runs as a task of
    /// its own, so a caller's deadline does not cut it short.
    async fn connection(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
    ) -> Result<(u64, MultiplexedConnection), RateStoreError> {
        let attempted = self.attempted.notified();
        tokio::pin!(attempted);
        attempted.as_mut().enable();
        {
            let mut state = self.lock();
            if let Some(conn) = &state.conn {
                return Ok(conn.clone());
            }
            if !state.connecting {
                state.connecting = true;
                tokio::spawn(Self::attempt(Arc::clone(self), Arc::clone(inner)));
            }
        }
        attempted.await;
        let state = self.lock();
        match (&state.conn, &state.last_error) {
            (Some(conn), _) => Ok(conn.clone()),
            (None, Some(e)) => Err(RateStoreError::new(format!("connecting to Redis: {e}"))),
            (None, None) => Err(RateStoreError::new("not connected to Redis")),
        }
    }

    async fn attempt(self: Arc<Self>, inner: Arc<Inner>) {
        // Ends the attempt even if its runtime drops the task.
        struct Done(Arc<Slot>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.lock().connecting = false;
                self.0.attempted.notify_waiters();
            }
        }
        let done = Done(self);
        let result = inner.open().await;
        let mut state = done.0.lock();
        match result {
            Ok(conn) => {
                state.generation += 1;
                state.conn = Some((state.generation, conn));
                state.abandoned = 0;
                state.last_error = None;
            }
            Err(e) => {
                tracing::debug!(redis = %inner.url, error = %describe(&e, &inner.url), "Redis connection failed");
                state.last_error = Some(describe(&e, &inner.url));
            }
        }
    }

    /// Drops connection `generation`, unless already replaced: the next call opens another.
    fn disconnect(&self, generation: u64) {
        let mut state = self.lock();
        if state.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            state.conn = None;
        }
    }

    /// One call to Redis: `invoke` on this thread's connection. A connection found broken is
    /// replaced and the call made once more: after an outage, each thread's first call finds
    /// its old connection dead.
    async fn call<T, F, Fut>(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        mut invoke: F,
    ) -> Result<T, RateStoreError>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let mut retried = false;
        loop {
            let (generation, conn) = self.connection(inner).await?;
            let mut call = Call {
                slot: Arc::clone(self),
                generation,
                done: false,
            };
            let result = invoke(conn).await;
            call.done = true;
            match result {
                Ok(answer) => return Ok(answer),
                Err(e) if is_transient(&e) && !retried => {
                    self.disconnect(generation);
                    retried = true;
                }
                Err(e) => {
                    if is_transient(&e) {
                        self.disconnect(generation);
                    }
                    return Err(RateStoreError::new(describe(&e, &inner.url)));
                }
            }
        }
    }
}

impl RateStore for RedisRateStore {
    fn admit_held(&self, app_id: &str) -> Option<u64> {
        self.take_budget(app_id)
    }

    fn check(&self, app_id: &str, quota: &Quota) -> RateCheck {
        let inner = Arc::clone(&self.inner);
        let slot = Slot::of(&inner);
        let key = format!("{}{app_id}", inner.prefix);
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let (interval, tolerance) = (nanos(quota.emission_interval()), nanos(quota.tolerance()));
        let batch = self.batch;
        let budgets = (batch > 1).then(|| (Arc::clone(&self.budgets), Box::from(app_id)));
        Box::pin(async move {
            let (slot, script, key) = (&slot, &inner.script, &key);
            let answer = slot
                .call(&inner, |mut conn| async move {
                    let answer = script
                        .key(key)
                        .arg(interval)
                        .arg(tolerance)
                        .arg(batch)
                        .invoke_async::<(u32, u64)>(&mut conn)
                        .await;
                    slot.lock().abandoned = 0;
                    answer
                })
                .await?;
            match answer {
                (0, ns) => Ok(Err(Duration::from_nanos(ns))),
                (granted, after) => {
                    if let Some((budgets, app_id)) = budgets.filter(|_| granted > 1) {
                        let until = tokio::time::Instant::now() + BUDGET_LIFETIME;
                        let left = granted - 1;
                        budgets.insert(app_id, Budget { left, until });
                    }
                    // What this node holds passes at once too.
                    Ok(Ok(after.saturating_add(u64::from(granted - 1))))
                }
            }
        })
    }
}

/// A call in flight; dropped before its answer (the throttle's deadline passed), it counts
/// towards replacing a connection that no longer answers.
struct Call {
    slot: Arc<Slot>,
    generation: u64,
    done: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.slot.lock();
        state.abandoned += 1;
        if state.abandoned >= ABANDONED_LIMIT
            && state
                .conn
                .as_ref()
                .is_some_and(|(g, _)| *g == self.generation)
        {
            state.conn = None;
        }
    }
}

/// Errors of the connection rather than of the command: the connection is replaced.
fn is_transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout()
}

/// A TLS handshake that failed (a certificate not trusted, a server that does not speak TLS):
/// a setting to fix, not a Redis to wait for.
fn is_tls_refusal(e: &RedisError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
}

/// `e` as text, with the password (should the text ever hold it) hidden.
fn describe(e: &RedisError, url: &RedisUrl) -> String {
    let text = e.to_string();
    match url.info.redis.password.as_deref() {
        Some(password) if !password.is_empty() => text.replace(password, "***"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_store_starts_and_shows_no_password() {
        // Port 1 on loopback: refused at once, so the store starts unconnected.
        let url = RedisUrl::parse("redis://:pa55word@127.0.0.1:1/0").unwrap();
        let store = RedisRateStore::connect(&url, "apig:rl:test:")
            .await
            .unwrap();
        let shown = format!("{store:?}");
        assert!(
            shown.contains("127.0.0.1:1") && !shown.contains("pa55word"),
            "{shown}"
        );
        let err = store
            .check("app", &Quota::per_second(1).unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pa55word"), "{err}");
    }
}
