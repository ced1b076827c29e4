//! [`SqliteStore`].

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

use super::error::{self, db, SqliteFileError};
use super::options::SqliteOptions;
use super::{acls, keys, ops, quota_apps, quotas, revision, schema};
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::provider::RevisionDigest;
use crate::quota::AppQuota;
use crate::store::cipher::Sealer;
use crate::store::QuotaAppsWanted;
use crate::store::{
    async_trait, App, AppChanges, AppCodeChanges, AppCodeRecord, AppFilter, AppQuotaRecord,
    InstanceSnapshot, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, Store,
    StoreError, StoreResult, Timestamp,
};

/// Codes a snapshot's read hands over at once (see `instance_snapshot_into`).
const SNAPSHOT_CHUNK: usize = 4096;

/// The embedded store: apps and AppCodes in one SQLite file in WAL mode, AppCode values and
/// app secrets optionally encrypted at rest under a [`MasterKey`](crate::store::MasterKey).
///
/// # Guarantees
///
/// - Every write is one `BEGIN IMMEDIATE` transaction, so the quota of
///   [`MAX_APP_CODES_PER_APP`](crate::store::MAX_APP_CODES_PER_APP) codes per app and the
///   uniqueness of an AppCode value within its instance hold for concurrent writers in this
///   process and in other processes sharing the file. UNIQUE indexes back both, and app names
///   and app keys per scope.
/// - A change of what a gateway enforces takes the instance's next
///   [revision](crate::store::InstanceSnapshot::revision) and is logged in the same
///   transaction by the tables' triggers, whoever made it: a write of this store (one revision
///   for the write), or plain SQL on the file (`sqlite3`: one revision per row changed). A
///   change and its log entries are durable together or not at all, and writers in other
///   processes sharing the file take distinct revisions.
/// - A write that returned `Ok` has been synced to disk (`synchronous=FULL`). Deleted rows are
///   overwritten (`secure_delete`).
/// - Another process's write is waited for up to the
///   [busy timeout](SqliteOptions::busy_timeout), then the operation fails with
///   [`StoreError::Backend`].
/// - Blocking SQLite calls run on tokio's blocking thread pool, one at a time per store (and its
///   clones, which share the connection), so operations must be awaited inside a tokio runtime.
///   A dropped future does not cancel an operation already started.
/// - A row that cannot be what the store wrote (a ciphertext copied from another row, an
///   invalid AppCode) is a [`StoreError::Backend`] naming the row, never its secret.
///
/// # Encryption at rest
///
/// With a master key, AppCode values and app secrets are stored as ChaCha20-Poly1305 ciphertext
/// under a random nonce per value, bound to their row, and duplicate values are found through an
/// HMAC-SHA256 digest; without one, they are stored in clear beside a SHA-256 digest. The file
/// records which, and a key check value, so it can only be opened the way it was created.
///
/// # Schema
///
/// Versioned by `PRAGMA user_version`; pending migrations are applied in one transaction when the
/// file is opened, and a file written by a newer version of this crate is refused with
/// [`SchemaTooNew`](crate::store::SchemaTooNew). Tables: `store_meta` (encrypted or not, key
/// check value), `apps`, `app_codes` (`value` holds the ciphertext or the clear value,
/// `value_nonce` the nonce, `value_digest` the digest under the uniqueness index),
/// `instance_revisions` (each written instance's revision, and the newest revision pruned from
/// its log) and `app_code_log` (the change log: per instance and revision, the IDs of each
/// AppCode created or deleted, and each app whose ACL or quota changed, never a value; the same
/// columns as `PostgresStore`'s), `app_acls`, `app_quotas`, `app_quota_bindings` (one row per
/// app bound to a quota), `app_quota_counts` (the calls every node counted in each app's
/// current window), and the triggers that log changes with the view `app_code_log_entries` and
/// the table `open_writes` (schema version 5). Timestamps are integer nanoseconds since the Unix epoch (a quota's reset
/// time: whole seconds); lists are ordered by insertion.
///
/// # Example
///
/// ```
/// use apig_appcode::store::{MasterKey, Scope, SqliteOptions, SqliteStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let key = MasterKey::parse(&"42".repeat(32)).unwrap();
/// let options = SqliteOptions::new().master_key(key);
/// let store = SqliteStore::open(dir.path().join("apig.db"), options).unwrap();
/// assert!(store.is_encrypted());
/// let page = store
///     .list_apps(&Scope::new("project-1", "instance-1"), &Default::default(), 0, 20)
///     .await
///     .unwrap();
/// assert_eq!(page.total, 0);
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    sealer: Sealer,
    path: PathBuf,
    /// [`SqliteOptions::change_log_retention`].
    retention: u64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("encrypted", &self.is_encrypted())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, checks that its pages are intact
    /// (`PRAGMA quick_check`, which reads the whole file once), switches it to WAL mode and
    /// applies pending schema migrations.
    ///
    /// This blocks (on disk I/O, and on other processes migrating the same file): in async code
    /// call it before serving, or inside [`tokio::task::spawn_blocking`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the file cannot be opened or migrated. Its source is a
    /// [`KeyMismatch`](crate::store::KeyMismatch) when the database was created with a master
    /// key and none, or another, is configured, or without one and one is configured; a
    /// [`SchemaTooNew`](crate::store::SchemaTooNew) when a newer version of this crate wrote
    /// the file; a [`SqliteFileError`] when the file is corrupt, is not a database, or its
    /// directory does not exist.
    ///
    /// ```
    /// use apig_appcode::store::{KeyMismatch, MasterKey, SqliteOptions, SqliteStore, StoreError};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("apig.db");
    /// let key = MasterKey::from_bytes([9; 32]);
    /// drop(SqliteStore::open(&path, SqliteOptions::new().master_key(key)).unwrap());
    ///
    /// let wrong = SqliteOptions::new().master_key(MasterKey::from_bytes([8; 32]));
    /// let Err(StoreError::Backend(e)) = SqliteStore::open(&path, wrong) else { panic!() };
    /// assert_eq!(e.downcast_ref::<KeyMismatch>(), Some(&KeyMismatch::WrongKey));
    /// ```
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let (conn, sealer) =
            open_connection(&path, &options).map_err(|e| error::at_open(&path, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                sealer,
                path,
                retention: options.change_log_retention,
            }),
        })
    }

    /// The database file.
    ///
    /// ```
    /// use apig_appcode::store::{SqliteOptions, SqliteStore};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("apig.db");
    /// assert_eq!(SqliteStore::open(&path, SqliteOptions::new()).unwrap().path(), path);
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether values are encrypted at rest (the database was opened with a master key).
    ///
    /// ```
    /// use apig_appcode::store::{MasterKey, SqliteOptions, SqliteStore};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let options = SqliteOptions::new().master_key(MasterKey::from_bytes([3; 32]));
    /// let store = SqliteStore::open(dir.path().join("apig.db"), options).unwrap();
    /// assert!(store.is_encrypted());
    /// ```
    pub fn is_encrypted(&self) -> bool {
        self.inner.sealer.is_encrypted()
    }

    /// Runs `op` on the connection on tokio's blocking pool. The operation runs to its end even
    /// if the returned future is dropped.
    fn run<T, F>(&self, op: F) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Sealer) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        async move {
            tokio::task::spawn_blocking(move || {
                // A panic cannot leave a transaction open: dropping a rusqlite `Transaction`
                // during unwinding rolls it back.
                let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
                op(&mut conn, &inner.sealer)
            })
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Backend(
                    format!("SQLite store task failed: {e}").into(),
                ))
            })
        }
    }
}

/// The connection behind [`SqliteStore::open`], checked, configured and migrated.
fn open_connection(path: &Path, options: &SqliteOptions) -> StoreResult<(Connection, Sealer)> {
    let mut conn = Connection::open(path).map_err(db("open database file"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(db("set busy timeout"))?;
    // Before anything writes to the file (the WAL switch, migrations), and before the server
    // starts: a damaged file would otherwise open fine and fail every snapshot load forever.
    quick_check(&conn, path)?;
    let mode = switch_to_wal(&conn, options.busy_timeout)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(
            format!("SQLite: the database cannot use WAL journal mode (it reports {mode:?})")
                .into(),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db("set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(db("enable foreign keys"))?;
    // Deleted rows (revoked AppCodes, in clear without a master key) are overwritten, not
    // left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(db("enable secure_delete"))?;
    let sealer = Sealer::new(options.master_key.as_ref());
    schema::prepare(&mut conn, &sealer)?;
    Ok((conn, sealer))
}

/// Reads every page of the file once (`PRAGMA quick_check`): O(file size), but without
/// `integrity_check`'s cross-check of every index entry against its row, which costs far more.
/// It still finds damaged pages, b-trees out of order and index entries of the wrong count.
///
/// Stops at the first problem, which is all the error reports.
fn quick_check(conn: &Connection, path: &Path) -> StoreResult<()> {
    let first: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(db("check the database file"))?;
    if first == "ok" {
        return Ok(());
    }
    // SQLite prefixes the first problem with the schema's name on a line of its own.
    let detail = first
        .strip_prefix("*** in database main ***")
        .unwrap_or(&first)
        .trim()
        .replace('\n', "; ");
    Err(StoreError::Backend(Box::new(SqliteFileError::Corrupt {
        path: path.to_path_buf(),
        detail,
    })))
}

/// Switches the file to WAL mode (a persistent setting, so this changes the file once).
///
/// Unlike other statements, the switch does not wait on SQLite's busy handler when another
/// process is opening the same new file at that moment: retry it within the busy timeout.
fn switch_to_wal(conn: &Connection, busy_timeout: Duration) -> StoreResult<String> {
    let deadline = Instant::now() + busy_timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            result => return result.map_err(db("switch to WAL journal mode")),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_app(&self, app: App) -> StoreResult<App> {
        let retention = self.inner.retention;
        self.run(move |c, s| ops::create_app(c, s, retention, app))
            .await
    }

    async fn get_app(&self, scope: &Scope, app_id: &str) -> StoreResult<App> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        self.run(move |c, s| ops::get_app(c, s, &scope, &app_id))
            .await
    }

    async fn list_apps(
        &self,
        scope: &Scope,
        filter: &AppFilter,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<App>> {
        let (scope, filter) = (scope.clone(), filter.clone());
        self.run(move |c, s| ops::list_apps(c, s, &scope, &filter, offset, limit))
            .await
    }

    async fn update_app(
        &self,
        scope: &Scope,
        app_id: &str,
        changes: AppChanges,
    ) -> StoreResult<App> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, s| ops::update_app(c, s, retention, &scope, &app_id, changes))
            .await
    }

    async fn delete_app(&self, scope: &Scope, app_id: &str) -> StoreResult<Vec<AppCodeRecord>> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, s| ops::delete_app(c, s, retention, &scope, &app_id))
            .await
    }

    async fn create_app_code(
        &self,
        scope: &Scope,
        record: AppCodeRecord,
    ) -> StoreResult<AppCodeRecord> {
        let scope = scope.clone();
        let retention = self.inner.retention;
        self.run(move |c, s| ops::create_app_code(c, s, retention, &scope, record))
            .await
    }

    async fn get_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord> {
        let (scope, app_id, code_id) = (scope.clone(), app_id.to_owned(), app_code_id.to_owned());
        self.run(move |c, s| ops::get_app_code(c, s, &scope, &app_id, &code_id))
            .await
    }

    async fn list_app_codes(
        &self,
        scope: &Scope,
        app_id: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppCodeRecord>> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        self.run(move |c, s| ops::list_app_codes(c, s, &scope, &app_id, offset, limit))
            .await
    }

    async fn delete_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord> {
        let (scope, app_id, code_id) = (scope.clone(), app_id.to_owned(), app_code_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, s| ops::delete_app_code(c, s, retention, &scope, &app_id, &code_id))
            .await
    }

    async fn get_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<Option<AppAcl>> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        self.run(move |c, _| acls::get(c, &scope, &app_id)).await
    }

    async fn set_app_acl(&self, scope: &Scope, app_id: &str, acl: AppAcl) -> StoreResult<()> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, _| acls::set(c, retention, &scope, &app_id, &acl))
            .await
    }

    async fn delete_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<bool> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, _| acls::remove(c, retention, &scope, &app_id))
            .await
    }

    async fn instance_app_acls(&self, instance_id: &str) -> StoreResult<Vec<(String, AppAcl)>> {
        let instance_id = instance_id.to_owned();
        self.run(move |c, _| acls::of_instance(c, &instance_id))
            .await
    }

    async fn instance_app_keys(&self, instance_id: &str) -> StoreResult<Vec<(String, AppKey)>> {
        let instance_id = instance_id.to_owned();
        self.run(move |c, s| keys::of_instance(c, s, &instance_id))
            .await
    }

    async fn create_app_quota(
        &self,
        scope: &Scope,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord> {
        let scope = scope.clone();
        self.run(move |c, _| quotas::create(c, &scope, record))
            .await
    }

    async fn get_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<AppQuotaRecord> {
        let (scope, quota_id) = (scope.clone(), quota_id.to_owned());
        self.run(move |c, _| quotas::get(c, &scope, &quota_id))
            .await
    }

    async fn list_app_quotas(
        &self,
        scope: &Scope,
        name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppQuotaRecord>> {
        let (scope, name) = (scope.clone(), name.map(str::to_owned));
        self.run(move |c, _| quotas::list(c, &scope, name.as_deref(), offset, limit))
            .await
    }

    async fn update_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord> {
        let (scope, quota_id) = (scope.clone(), quota_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, _| quotas::update(c, retention, &scope, &quota_id, record))
            .await
    }

    async fn delete_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<()> {
        let (scope, quota_id) = (scope.clone(), quota_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, _| quotas::delete(c, retention, &scope, &quota_id))
            .await
    }

    async fn bind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_ids: &[String],
        bound_time: Timestamp,
    ) -> StoreResult<Vec<QuotaBinding>> {
        let (scope, quota_id, app_ids) = (scope.clone(), quota_id.to_owned(), app_ids.to_vec());
        let retention = self.inner.retention;
        self.run(move |c, _| {
            quota_apps::bind(c, retention, &scope, &quota_id, &app_ids, bound_time)
        })
        .await
    }

    async fn quota_apps(
        &self,
        scope: &Scope,
        quota_id: &str,
        bound: bool,
        app_name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<QuotaApp>> {
        let (scope, quota_id) = (scope.clone(), quota_id.to_owned());
        let wanted = QuotaAppsWanted {
            bound,
            app_name: app_name.map(str::to_owned),
            offset,
            limit,
        };
        self.run(move |c, s| quota_apps::apps(c, s, &scope, &quota_id, &wanted))
            .await
    }

    async fn unbind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_id: &str,
    ) -> StoreResult<()> {
        let (scope, quota_id, app_id) = (scope.clone(), quota_id.to_owned(), app_id.to_owned());
        let retention = self.inner.retention;
        self.run(move |c, _| quota_apps::unbind(c, retention, &scope, &quota_id, &app_id))
            .await
    }

    async fn app_bound_quota(
        &self,
        scope: &Scope,
        app_id: &str,
    ) -> StoreResult<Option<AppQuotaRecord>> {
        let (scope, app_id) = (scope.clone(), app_id.to_owned());
        self.run(move |c, _| quota_apps::bound_to(c, &scope, &app_id))
            .await
    }

    async fn instance_app_quotas(&self, instance_id: &str) -> StoreResult<Vec<(String, AppQuota)>> {
        let instance_id = instance_id.to_owned();
        self.run(move |c, _| quotas::of_instance(c, &instance_id))
            .await
    }

    async fn add_quota_counts(
        &self,
        instance_id: &str,
        counts: &[QuotaCount],
    ) -> StoreResult<Vec<SharedCount>> {
        let (instance_id, counts) = (instance_id.to_owned(), counts.to_vec());
        self.run(move |c, _| quota_apps::add_counts(c, &instance_id, &counts))
            .await
    }

    async fn instance_app_codes(&self, instance_id: &str) -> StoreResult<Vec<AppCodeRecord>> {
        let instance_id = instance_id.to_owned();
        self.run(move |c, s| ops::instance_app_codes(c, s, &instance_id))
            .await
    }

    async fn instance_snapshot(&self, instance_id: &str) -> StoreResult<InstanceSnapshot> {
        let instance_id = instance_id.to_owned();
        self.run(move |c, s| ops::instance_snapshot(c, s, &instance_id))
            .await
    }

    async fn instance_snapshot_into(
        &self,
        instance_id: &str,
        sink: &mut (dyn FnMut(AppCodeRecord) + Send),
    ) -> StoreResult<Option<u64>> {
        // The read runs on the blocking pool and hands its codes over a chunk at a time, so
        // the node never holds the whole instance beside its cache; dropped midway (given
        // up), the channel closes and the read stops at its next chunk.
        let (send, mut receive) = tokio::sync::mpsc::channel::<Vec<AppCodeRecord>>(2);
        let id = instance_id.to_owned();
        let read = self.run(move |c, s| {
            let mut hand_over = |codes| send.blocking_send(codes).is_ok();
            ops::instance_snapshot_chunks(c, s, &id, SNAPSHOT_CHUNK, &mut hand_over)
        });
        let read = tokio::spawn(read);
        while let Some(codes) = receive.recv().await {
            codes.into_iter().for_each(&mut *sink);
        }
        read.await.unwrap_or_else(|e| {
            Err(StoreError::Backend(
                format!("SQLite store task failed: {e}").into(),
            ))
        })
    }

    async fn instance_digest(&self, instance_id: &str) -> StoreResult<Option<RevisionDigest>> {
        let instance_id = instance_id.to_owned();
        self.run(move |c, _| revision::instance_digest(c, &instance_id).map(Some))
            .await
    }

    async fn app_code_changes(
        &self,
        instance_id: &str,
        revision: u64,
    ) -> StoreResult<Option<AppCodeChanges>> {
        let instance_id = instance_id.to_owned();
        self.run(move |c, s| revision::app_code_changes(c, s, &instance_id, revision))
            .await
    }
}
