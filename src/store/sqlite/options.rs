//! [`SqliteOptions`]: how to open a [`SqliteStore`](crate::store::SqliteStore).

use std::time::Duration;

use crate::store::cipher::MasterKey;
use crate::store::CHANGE_LOG_RETENTION;

/// How long a write waits for another connection's (or process's) write by default.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to open a [`SqliteStore`](crate::store::SqliteStore): an optional master key, the busy timeout and how many
/// revisions the change log keeps.
///
/// ```
/// use std::time::{Duration, Instant};
/// use apig_appcode::store::{MasterKey, SqliteOptions};
///
/// let options = SqliteOptions::new()
///     .master_key(MasterKey::from_bytes([1; 32]))
///     .busy_timeout(Duration::from_secs(5));
/// assert!(format!("{options:?}").contains("MasterKey(<redacted>)"));
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub(super) master_key: Option<MasterKey>,
    pub(super) busy_timeout: Duration,
    pub(super) change_log_retention: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            master_key: None,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            change_log_retention: CHANGE_LOG_RETENTION,
        }
    }
}

impl SqliteOptions {
    /// No master key (values stored in clear), a busy timeout of 30 seconds, a change log of
    /// [`CHANGE_LOG_RETENTION`] revisions per instance.
    ///
    /// ```
    /// use apig_appcode::store::SqliteOptions;
    ///
    /// let options = SqliteOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Encrypts AppCode values and app secrets at rest with `key`. A database is created either
    /// with a key or without one, and must always be opened the same way (with the same key).
    ///
    /// ```
    /// use apig_appcode::store::{MasterKey, SqliteOptions};
    ///
    /// let key: MasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".parse().unwrap();
    /// let options = SqliteOptions::new().master_key(key);
    /// # let _ = options;
    /// ```
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// How long an operation waits for the database while another connection (in this or
    /// another process) holds its write lock, before failing with [`StoreError::Backend`](crate::store::StoreError::Backend).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use apig_appcode::store::SqliteOptions;
    ///
    /// let options = SqliteOptions::new().busy_timeout(Duration::from_secs(60));
    /// # let _ = options;
    /// ```
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many revisions of each instance the change log keeps (at least 1; by default
    /// [`CHANGE_LOG_RETENTION`]): a gateway further behind than that reloads a full snapshot
    /// instead of [catching up](crate::store::Store::app_code_changes). Each write prunes what falls out of
    /// the window in its own transaction, so the log of an instance stays about this many
    /// writes long. A file may be reopened with another retention: a smaller one prunes on the
    /// next write to each instance.
    ///
    /// ```
    /// use apig_appcode::store::SqliteOptions;
    ///
    /// let options = SqliteOptions::new().change_log_retention(50_000);
    /// # let _ = options;
    /// ```
    pub fn change_log_retention(mut self, revisions: u64) -> Self {
        // A log of no revision could not serve even a reader one write behind.
        self.change_log_retention = revisions.max(1);
        self
    }
}
