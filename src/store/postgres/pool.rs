//! A small connection pool: at most `size` connections, opened on demand, each with its own
//! cache of prepared statements, returned to the pool when the borrower is done.
//!
//! A connection is returned only if it is open and outside a transaction. A borrower that stops
//! half-way through a transaction (an error, a dropped future) leaves it open: such a connection
//! is closed instead, and the server rolls its transaction back.
//!
//! Every call is bounded: [`Pool::call`] gives the borrow and the statement one deadline,
//! [`Pool::transaction`] the borrow and the whole transaction, `BEGIN` to `COMMIT`. Only the
//! pool begins transactions, so none escapes the bound. A connection whose call ran out of time
//! is in an unknown state (a statement may still be running, a transaction open): it is closed
//! at once, its socket dropped, never returned. The server side has `statement_timeout` and
//! `idle_in_transaction_session_timeout` set to the same limit, so a session the client gave
//! up on releases its locks even if the client's goodbye never arrives. A transaction that
//! lifts the statement timeout (a whole instance read as a stream) and is given up is also
//! cancelled with PostgreSQL's cancel request: a backend waiting on a lock, or still computing,
//! would not notice the closed socket and would go on running the read nobody waits for.
//!
//! # Why not deadpool-postgres
//!
//! Read in deadpool-postgres's source (its `Manager`, current `main`):
//!
//! - Where connections are driven: `Manager::create` calls `Config::connect` and then
//!   `tokio::spawn`s the connection, on the runtime of whichever task asked for it. A connection
//!   opened by a gateway worker's lookup would then be driven by that worker's single-threaded
//!   runtime and stop answering when that worker is busy or gone (test
//!   `connections_opened_on_another_runtime_keep_answering`). The crate has no setting for the
//!   runtime; only a `Manager` of our own (deadpool's core trait) could choose it.
//! - Recycling checks `is_closed()` and, depending on `RecyclingMethod`, runs a query on every
//!   checkout; it cannot tell that a borrower stopped after a raw `BEGIN` (this store's
//!   transactions carry options: `REPEATABLE READ READ ONLY`), nor that a call timed out and the
//!   connection must be closed at once rather than when its pending statement finishes.
//!
//! So keeping this pool's properties would mean a custom `deadpool::managed::Manager` plus the
//! transaction and timeout tracking here, with the statement cache kept too: a dependency
//! without less code. bb8 was not evaluated.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::{timeout_at, Instant};
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row, Statement};

use super::error::{connect_failed, db, safe_message, TimedOut, Waited};
use super::tls::MakeRustls;
use crate::store::{StoreError, StoreResult};

/// How long opening a connection may take, when the URL does not say.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    tls: MakeRustls,
    /// The runtime the store was opened on, which drives every connection: a connection opened
    /// by a lookup on a gateway worker must not depend on that worker being polled.
    runtime: Handle,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    size: usize,
    /// The bound on one call, borrow included.
    call_timeout: Duration,
    /// Sent once per new connection: the server-side limits (see the module docs), except
    /// those the URL's `options` set, and the settings the store's triggers read.
    session_setup: String,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.size)
            .field("idle", &self.idle_len())
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

/// The `SET` statements that give a session the server-side limits, leaving out any the URL's
/// `options` (`-c statement_timeout=...`) chose.
fn session_setup(config: &Config, limit: Duration) -> String {
    let millis = limit.as_millis().max(1);
    let chosen = config.get_options().unwrap_or("");
    ["statement_timeout", "idle_in_transaction_session_timeout"]
        .iter()
        .filter(|name| !chosen.contains(*name))
        .map(|name| format!("SET {name} = {millis};"))
        .collect()
}

impl Pool {
    /// A pool whose connections are driven on the current runtime; `settings` (`SET`
    /// statements) are sent to each new connection.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(super) fn new(
        config: Config,
        tls: MakeRustls,
        size: usize,
        call_timeout: Duration,
        settings: &str,
    ) -> Self {
        let size = size.max(1);
        Self {
            inner: Arc::new(Inner {
                session_setup: session_setup(&config, call_timeout) + settings,
                config,
                tls,
                runtime: Handle::current(),
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Arc::new(Semaphore::new(size)),
                size,
                call_timeout,
            }),
        }
    }

    fn idle_len(&self) -> usize {
        self.lock_idle().len()
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // The list is only pushed to and popped from: a panic cannot leave it half-changed.
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The runtime that drives the store's connections and its change listeners.
    pub(super) fn runtime(&self) -> &Handle {
        &self.inner.runtime
    }

    /// The configuration connections are opened with (without the pool's session limits).
    pub(super) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The TLS connector every connection uses.
    pub(super) fn tls(&self) -> &MakeRustls {
        &self.inner.tls
    }

    /// Runs `body` on a borrowed connection, the borrow and `body` together bounded by the
    /// call timeout. When it passes, the connection is closed (see the module docs) and the
    /// error, [`StoreError::Unavailable`], names `context`.
    ///
    /// For one statement; statements that must agree run in a
    /// [`transaction`](Self::transaction).
    pub(super) async fn call<T>(
        &self,
        context: &'static str,
        body: impl AsyncFnOnce(&mut Conn) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + self.inner.call_timeout;
        let mut conn = self.get(context, deadline).await?;
        match timeout_at(deadline, body(&mut conn)).await {
            Ok(result) => result,
            Err(_) => {
                conn.broken = true;
                Err(self.timed_out(context, Waited::Answer).into())
            }
        }
    }

    /// Runs `body` in one transaction on a borrowed connection: starts it with `begin` (`BEGIN`
    /// and its options), commits if `body` returns `Ok` and rolls back otherwise. The borrow,
    /// `body` and the commit together are bounded as in [`call`](Self::call); a transaction cut
    /// short (by the bound, an error or a dropped future) never returns its connection to the
    /// pool.
    pub(super) async fn transaction<T>(
        &self,
        context: &'static str,
        begin: &'static str,
        body: impl AsyncFnOnce(&mut Conn) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.call(context, async |conn| conn.transaction(begin, body).await)
            .await
    }

    /// Like [`transaction`](Self::transaction), for a transaction whose length grows with the
    /// data (a whole instance's AppCodes): the bound is on the time without [`Progress`], not on
    /// the whole. The borrow must be done within the call timeout, and then each stretch
    /// between two [`Progress::tick`]s (`BEGIN` and `COMMIT` included).
    pub(super) async fn streaming_transaction<T>(
        &self,
        context: &'static str,
        begin: &'static str,
        body: impl AsyncFnOnce(&mut Conn, &Progress) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let limit = self.inner.call_timeout;
        let progress = Progress {
            start: Instant::now(),
            last: AtomicU64::new(0),
        };
        let mut conn = self.get(context, progress.start + limit).await?;
        progress.tick();
        let finished = {
            let transaction = conn.transaction(begin, async |conn| body(conn, &progress).await);
            let mut transaction = std::pin::pin!(transaction);
            loop {
                let stalled_at = progress.last() + limit;
                tokio::select! {
                    result = &mut transaction => break Some(result),
                    () = tokio::time::sleep_until(stalled_at) => {
                        if progress.last() + limit <= Instant::now() {
                            break None;
                        }
                    }
                }
            }
        };
        finished.unwrap_or_else(|| {
            conn.broken = true;
            Err(self.timed_out(context, Waited::Answer).into())
        })
    }

    /// Borrows a connection by `deadline`: an idle one, or a new one if none is idle and fewer
    /// than `size` are out.
    async fn get(&self, context: &'static str, deadline: Instant) -> StoreResult<Pooled> {
        let permit = timeout_at(deadline, Arc::clone(&self.inner.permits).acquire_owned())
            .await
            .map_err(|_| {
                self.timed_out(
                    context,
                    Waited::FreeConnection {
                        pool_size: self.inner.size,
                    },
                )
            })?
            .map_err(|_| StoreError::Backend("PostgreSQL: the connection pool is closed".into()))?;
        loop {
            let Some(conn) = self.lock_idle().pop() else {
                break;
            };
            if !conn.client.is_closed() {
                return Ok(self.pooled(conn, permit));
            }
        }
        let opened = timeout_at(
            deadline,
            Conn::open(
                &self.inner.config,
                &self.inner.tls,
                &self.inner.runtime,
                context,
            ),
        )
        .await
        .map_err(|_| self.timed_out(context, Waited::Connection))??;
        let mut pooled = self.pooled(opened, permit);
        if !self.inner.session_setup.is_empty() {
            let setup = timeout_at(
                deadline,
                pooled.client.batch_execute(&self.inner.session_setup),
            );
            match setup.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    pooled.broken = true;
                    return Err(db(context)(e));
                }
                Err(_) => {
                    pooled.broken = true;
                    return Err(self.timed_out(context, Waited::Answer).into());
                }
            }
        }
        Ok(pooled)
    }

    /// Sends a cancel request for whatever `conn`'s backend runs, on a connection of its own,
    /// without waiting for it.
    fn cancel(&self, conn: &Conn) {
        let token = conn.client.cancel_token();
        let tls = self.inner.tls.clone();
        let limit = self
            .inner
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        self.inner.runtime.spawn(async move {
            match tokio::time::timeout(limit, token.cancel_query(tls)).await {
                Ok(Ok(())) => tracing::debug!("cancelled a PostgreSQL read given up on"),
                Ok(Err(e)) => tracing::debug!(
                    error = %safe_message(&e),
                    "could not cancel a PostgreSQL read given up on"
                ),
                Err(_) => tracing::debug!("no answer to a PostgreSQL cancel request"),
            }
        });
    }

    fn timed_out(&self, context: &'static str, waited: Waited) -> TimedOut {
        TimedOut {
            context,
            waited,
            limit: self.inner.call_timeout,
        }
    }

    fn pooled(&self, conn: Conn, permit: OwnedSemaphorePermit) -> Pooled {
        Pooled {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        }
    }
}

/// When a streaming transaction last made progress (see [`Pool::streaming_transaction`]).
#[derive(Debug)]
pub(super) struct Progress {
    start: Instant,
    /// Nanoseconds from `start`; atomic only so that the call's future stays `Send`.
    last: AtomicU64,
}

impl Progress {
    /// Records progress now: the transaction may take another call timeout from here.
    pub(super) fn tick(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

/// A borrowed connection; dropping it returns it to the pool (see the module docs).
pub(super) struct Pooled {
    conn: Option<Conn>,
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Pooled {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.broken {
                // Its state is unknown, and a frozen server would keep a gracefully closing
                // driver waiting: the socket goes now, and the server rolls back whatever
                // was open when it notices (or when its idle-in-transaction timeout fires).
                if conn.in_transaction {
                    self.pool.cancel(&conn);
                }
                conn.driver.abort();
            } else if !conn.in_transaction && !conn.client.is_closed() {
                self.pool.lock_idle().push(conn);
            }
        }
    }
}

/// One connection, whether it is inside a transaction, and its prepared statements.
pub(super) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    in_transaction: bool,
    /// A call on it ran out of time: never reused.
    broken: bool,
    /// The task that drives the connection on the store's runtime.
    driver: AbortHandle,
}

/// Where `config` dials: `host:port` for each host, never the user or the password.
fn server_of(config: &Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            // libpq's rule: one port for every host, or one each.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Conn {
    /// Opens a connection on `runtime` and drives it there, on a task of its own, until the
    /// client is dropped.
    ///
    /// The socket belongs to the runtime it was opened on: opened from a gateway worker, it
    /// would answer only while that worker is polled. So the whole connection, dialling
    /// included, lives on the store's runtime, and only the client comes back.
    pub(super) async fn open(
        config: &Config,
        tls: &MakeRustls,
        runtime: &Handle,
        context: &'static str,
    ) -> StoreResult<Self> {
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let (dial, tls) = (config.clone(), tls.clone());
        let (client_tx, client_rx) = oneshot::channel();
        let driver = runtime.spawn(async move {
            let connected = tokio::time::timeout(connect_timeout, dial.connect(tls)).await;
            let (client, connection) = match connected {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return drop(client_tx.send(Err(Some(e)))),
                Err(_) => return drop(client_tx.send(Err(None))),
            };
            if client_tx.send(Ok(client)).is_err() {
                return;
            }
            if let Err(e) = connection.await {
                tracing::debug!(error = %safe_message(&e), "PostgreSQL connection ended");
            }
        });
        let timed_out = || TimedOut {
            context,
            waited: Waited::Connection,
            limit: connect_timeout,
        };
        let client = match client_rx.await {
            Ok(Ok(client)) => client,
            Ok(Err(Some(e))) => return Err(connect_failed(context, server_of(config), &e)),
            // The store's runtime shut down, or dialling took too long.
            Ok(Err(None)) | Err(_) => return Err(timed_out().into()),
        };
        Ok(Self {
            client,
            statements: HashMap::new(),
            in_transaction: false,
            broken: false,
            driver: driver.abort_handle(),
        })
    }

    /// The client, for what the helpers below do not cover.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    async fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    /// Runs `sql` (prepared once per connection) and returns its rows.
    pub(super) async fn query(
        &mut self,
        context: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        self.query_raw(sql, params).await.map_err(db(context))
    }

    /// Like [`query`](Self::query), with the driver's error, for callers that inspect it.
    pub(super) async fn query_raw(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query(&statement, params).await
    }

    /// Runs `sql` and hands each row to `each` as it arrives, a tick of `progress` each: how a
    /// [streaming transaction](Pool::streaming_transaction) reads, whatever the number of rows.
    pub(super) async fn for_each_row(
        &mut self,
        context: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        progress: &Progress,
        mut each: impl FnMut(&Row) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let statement = self.statement(sql).await.map_err(db(context))?;
        let rows = self
            .client
            .query_raw(&statement, params.iter().copied())
            .await
            .map_err(db(context))?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await.map_err(db(context))? {
            progress.tick();
            each(&row)?;
        }
        Ok(())
    }

    /// Runs `sql` and returns its one row, or `None`.
    pub(super) async fn query_opt(
        &mut self,
        context: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let statement = self.statement(sql).await.map_err(db(context))?;
        self.client
            .query_opt(&statement, params)
            .await
            .map_err(db(context))
    }

    /// Runs `sql` and returns how many rows it changed.
    pub(super) async fn execute(
        &mut self,
        context: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        let statement = self.statement(sql).await.map_err(db(context))?;
        self.client
            .execute(&statement, params)
            .await
            .map_err(db(context))
    }

    /// Runs `body` in a transaction started with `begin` (`BEGIN` and its options): committed
    /// if it returns `Ok`, rolled back otherwise.
    async fn transaction<T>(
        &mut self,
        begin: &'static str,
        body: impl AsyncFnOnce(&mut Self) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.begin(begin).await?;
        let result = body(self).await;
        self.finish(result).await
    }

    /// Starts a transaction with `begin` (`BEGIN` and its options).
    async fn begin(&mut self, begin: &'static str) -> StoreResult<()> {
        // Marked first: if this future is dropped mid-way, the connection is not reused.
        self.in_transaction = true;
        self.client
            .batch_execute(begin)
            .await
            .map_err(db("begin transaction"))
    }

    /// Ends the transaction begun by [`begin`](Self::begin): commits if `result` is `Ok`, rolls
    /// back otherwise, and returns `result` (or the failure to commit).
    async fn finish<T>(&mut self, result: StoreResult<T>) -> StoreResult<T> {
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.client.batch_execute(end).await;
        match (result, ended) {
            (Ok(value), Ok(())) => {
                self.in_transaction = false;
                Ok(value)
            }
            (Ok(_), Err(e)) => Err(db("commit")(e)),
            (Err(e), Ok(())) => {
                self.in_transaction = false;
                Err(e)
            }
            // The connection stays marked, so it is closed rather than reused.
            (Err(e), Err(_)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{PostgresOptions, PostgresStore, StoreError};

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_the_password() {
        // Nothing listens on port 1 of the loopback: the dial is refused at once.
        let url = "postgres://apig:s3cret-pw@127.0.0.1:1/apig?connect_timeout=5";
        match PostgresStore::connect(url, PostgresOptions::new()).await {
            Err(e @ StoreError::Unavailable(_)) => {
                let text = e.to_string();
                assert!(text.contains("127.0.0.1:1"), "{text}");
                assert!(text.to_lowercase().contains("refused"), "{text}");
                assert!(!text.contains("s3cret-pw"), "{text}");
            }
            other => panic!("expected the store to be unavailable, got {other:?}"),
        }
    }
}
