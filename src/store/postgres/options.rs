//! [`PostgresOptions`]: how to open a [`PostgresStore`](crate::store::PostgresStore).

use std::time::Duration;

use crate::store::cipher::MasterKey;
use crate::store::CHANGE_LOG_RETENTION;

/// Connections of the pool by default.
const DEFAULT_POOL_SIZE: usize = 16;
/// The bound on one call by default: a healthy database answers a management call in
/// milliseconds, and a frozen one (a stopped server, a network partition) must not hold the
/// caller, and the node's write lock, for as long as the freeze lasts.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How to open a [`PostgresStore`](crate::store::PostgresStore): an optional master key, the pool's size, the bound on
/// each call and how many revisions the change log keeps.
///
/// ```
/// use std::time::Duration;
///
/// use apig_appcode::store::{MasterKey, PostgresOptions};
///
/// let options = PostgresOptions::new()
///     .master_key(MasterKey::from_bytes([1; 32]))
///     .pool_size(32)
///     .call_timeout(Duration::from_secs(3))
///     .change_log_retention(50_000);
/// assert!(format!("{options:?}").contains("MasterKey(<redacted>)"));
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub(super) master_key: Option<MasterKey>,
    pub(super) pool_size: usize,
    pub(super) call_timeout: Duration,
    pub(super) change_log_retention: u64,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            master_key: None,
            pool_size: DEFAULT_POOL_SIZE,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            change_log_retention: CHANGE_LOG_RETENTION,
        }
    }
}

impl PostgresOptions {
    /// No master key (values stored in clear), a pool of 16 connections, calls bounded by 5 s,
    /// a change log of [`CHANGE_LOG_RETENTION`] revisions per instance.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most one store call may take (default 5 s, at least 1 ms): waiting for a pooled
    /// connection, opening one, and its statement or whole transaction together. A call still
    /// running then fails with [`StoreError::Unavailable`](crate::store::StoreError::Unavailable) naming the operation, and its
    /// connection is closed rather than reused, so nothing it held (a row lock, the management
    /// API's write lock) outlives the bound.
    ///
    /// The server is told the same limit as `statement_timeout` and
    /// `idle_in_transaction_session_timeout` of the pool's sessions (unless the URL's `options`
    /// set them), so a statement or transaction the client gave up on ends there too. Reading
    /// a whole instance's AppCodes (a gateway's snapshot) grows with the instance: it is bounded
    /// by the time without progress instead, each batch of rows within the limit, and runs
    /// without `statement_timeout`. The `LISTEN` connection is not concerned: its heartbeat has
    /// its own, longer deadline.
    pub fn call_timeout(mut self, limit: Duration) -> Self {
        self.call_timeout = limit.max(Duration::from_millis(1));
        self
    }

    /// Encrypts AppCode values and app secrets at rest with `key`, as `SqliteStore` does (see
    /// [`MasterKey`]). A schema is
    /// created either with a key or without one, and every node must open it the same way.
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// The most connections the store opens at once for its operations (at least 1). Each node
    /// also holds one more connection, for `LISTEN`, per instance it serves.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How many revisions of each instance the change log keeps (default
    /// [`CHANGE_LOG_RETENTION`], at least 1): a gateway that fell further behind than that
    /// reloads a full snapshot instead of catching up on the changes
    /// ([`Store::app_code_changes`](crate::store::Store::app_code_changes)). Each write prunes what falls out, in its own transaction,
    /// so nodes with different settings share one database safely: the log is as long as the
    /// last writer's setting.
    ///
    /// ```
    /// use apig_appcode::store::PostgresOptions;
    ///
    /// // A write is one revision: keep the last 100 000 writes of each instance.
    /// let options = PostgresOptions::new().change_log_retention(100_000);
    /// # let _ = options;
    /// ```
    pub fn change_log_retention(mut self, revisions: u64) -> Self {
        self.change_log_retention = revisions.max(1);
        self
    }
}
