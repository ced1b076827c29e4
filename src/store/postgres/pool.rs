//! A small connection pool: at most `size` connections, opened on demand, each with its own
//! cache of prepared statements, returned to the pool when the borrower is done.
//!
//! A connection is returned only if it is open and outside a transaction. A borrower that stops
//! half-way through a transaction (an error, a dropped future) leaves it open: such a connection
//! is closed instead, and the server rolls its transaction back.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, RowStream, Statement};

use super::error::{db, safe_message};
use crate::store::{StoreError, StoreResult};

/// How long a borrower waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a connection may take, when the URL does not say.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// The runtime the store was opened on, which drives every connection: a connection opened
    /// by a lookup on a gateway worker must not depend on that worker being polled.
    runtime: Handle,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    size: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.size)
            .field("idle", &self.idle_len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool whose connections are driven on the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(super) fn new(config: Config, size: usize) -> Self {
        let size = size.max(1);
        Self {
            inner: Arc::new(Inner {
                config,
                runtime: Handle::current(),
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Arc::new(Semaphore::new(size)),
                size,
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

    /// The configuration connections are opened with.
    pub(super) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Borrows a connection: an idle one, or a new one if none is idle and fewer than `size`
    /// are out.
    pub(super) async fn get(&self) -> StoreResult<Pooled> {
        let permit = tokio::time::timeout(
            ACQUIRE_TIMEOUT,
            Arc::clone(&self.inner.permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            StoreError::Backend(
                format!(
                    "PostgreSQL: all {} connections of the pool stayed busy for {ACQUIRE_TIMEOUT:?}",
                    self.inner.size
                )
                .into(),
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
        let conn = Conn::open(&self.inner.config, &self.inner.runtime, "open a connection").await?;
        Ok(self.pooled(conn, permit))
    }

    fn pooled(&self, conn: Conn, permit: OwnedSemaphorePermit) -> Pooled {
        Pooled {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        }
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
            if !conn.in_transaction && !conn.client.is_closed() {
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
        runtime: &Handle,
        context: &'static str,
    ) -> StoreResult<Self> {
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let config = config.clone();
        let (client_tx, client_rx) = oneshot::channel();
        runtime.spawn(async move {
            let connected = tokio::time::timeout(connect_timeout, config.connect(NoTls)).await;
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
        let timed_out = || {
            StoreError::Backend(
                format!("PostgreSQL: {context}: no connection within {connect_timeout:?}").into(),
            )
        };
        let client = match client_rx.await {
            Ok(Ok(client)) => client,
            Ok(Err(Some(e))) => return Err(db(context)(e)),
            // The store's runtime shut down, or dialling took too long.
            Ok(Err(None)) | Err(_) => return Err(timed_out()),
        };
        Ok(Self {
            client,
            statements: HashMap::new(),
            in_transaction: false,
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

    /// Runs `sql` and returns its rows as they arrive.
    pub(super) async fn query_stream(
        &mut self,
        context: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<RowStream> {
        let statement = self.statement(sql).await.map_err(db(context))?;
        self.client
            .query_raw(&statement, params.iter().copied())
            .await
            .map_err(db(context))
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
    pub(super) async fn transaction<T>(
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
