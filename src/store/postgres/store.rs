//! [`PostgresStore`] and its [`PostgresOptions`].

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_postgres::Config;

use super::pool::Pool;
use super::{listen, ops, schema};
use crate::provider::{BoxFuture, ChangeStream};
use crate::store::cipher::{MasterKey, Sealer};
use crate::store::{App, AppCodeRecord, AppFilter, Page, Scope, Store, StoreError, StoreResult};

/// Connections of the pool by default.
const DEFAULT_POOL_SIZE: usize = 16;

/// How to open a [`PostgresStore`]: an optional master key and the pool's size.
///
/// ```
/// use apig_appcode::store::{MasterKey, PostgresOptions};
///
/// let options = PostgresOptions::new()
///     .master_key(MasterKey::from_bytes([1; 32]))
///     .pool_size(32);
/// assert!(format!("{options:?}").contains("MasterKey(<redacted>)"));
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    master_key: Option<MasterKey>,
    pool_size: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            master_key: None,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

impl PostgresOptions {
    /// No master key (values stored in clear), a pool of 16 connections.
    pub fn new() -> Self {
        Self::default()
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
}

/// A store in a PostgreSQL database, shared by any number of gateway nodes; every node's cache
/// learns about other nodes' changes through `LISTEN`/`NOTIFY`.
///
/// # Guarantees
///
/// - The same rules as every store (the conformance suite runs against it), across all nodes:
///   creating an AppCode locks its app's row (`SELECT ... FOR UPDATE`) before counting the app's
///   codes, so of any number of concurrent creations from any number of nodes at most
///   [`MAX_APP_CODES_PER_APP`](crate::store::MAX_APP_CODES_PER_APP) succeed; UNIQUE constraints
///   keep AppCode values unique per instance (`StoreError::AppCodeExists`) and app names and
///   keys unique per scope.
/// - A write that returned `Ok` is committed. Writes that change which AppCodes a gateway
///   accepts (creating or deleting a code, deleting an app) announce it with `NOTIFY` in the same
///   transaction, so the announcement goes out exactly when the change commits.
/// - [`Store::changes`] listens for one instance on a connection of its own and turns
///   announcements into change events: another node's creation becomes
///   [`Change::Upsert`](crate::provider::Change::Upsert) (the code is read back by ID), any
///   deletion (this node's too) [`Change::RemoveId`](crate::provider::Change::RemoveId). After a
///   lost connection it reconnects with backoff (up to 5 s) and sends
///   [`Change::Resync`](crate::provider::Change::Resync), so nothing missed meanwhile survives;
///   until then the layer's staleness policy applies. [`Store::instance_app_codes`] waits
///   briefly for the instance's listeners to be listening, so a node's first snapshot needs no
///   resync (if it could not wait, the listener resyncs once it listens). Announcements carry
///   IDs only, never an AppCode value or a secret.
/// - Errors name the operation, the SQLSTATE and the server's message, never the `DETAIL` that
///   may quote a row.
///
/// # Schema
///
/// The tables live in the first schema of the connection's `search_path` (`public` by default;
/// choose another with `?options=-c%20search_path%3DNAME` in the URL). Migrations are versioned
/// in `apig_schema_migrations` and applied at connect inside a transaction holding an advisory
/// lock, so nodes starting at once migrate once; a schema written by a newer version of this
/// crate is refused with [`SchemaTooNew`](crate::store::SchemaTooNew). The tables are those of
/// `SqliteStore`, encrypted the same way under a master key.
///
/// # Example
///
/// ```no_run
/// use apig_appcode::store::{PostgresOptions, PostgresStore, Scope, Store};
///
/// # #[tokio::main] async fn main() {
/// let store = PostgresStore::connect("postgres://apig@db.internal/apig", PostgresOptions::new())
///     .await
///     .unwrap();
/// let page = store
///     .list_apps(&Scope::new("project-1", "instance-1"), &Default::default(), 0, 20)
///     .await
///     .unwrap();
/// # let _ = page;
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

/// What the store's operations and listeners share.
pub(super) struct Shared {
    pub(super) pool: Pool,
    pub(super) sealer: Sealer,
    /// The schema the tables live in.
    pub(super) schema: String,
    /// Identifies this store in announcements, so its listeners can tell its own writes.
    pub(super) origin: String,
    pub(super) listeners: listen::Listeners,
}

impl Shared {
    /// The `NOTIFY` channel of an instance in this schema: a name of 45 lowercase characters.
    pub(super) fn channel(&self, instance_id: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(self.schema.as_bytes());
        hash.update([0]);
        hash.update(instance_id.as_bytes());
        let digest = hash.finalize();
        let mut name = String::from("apig_appcode_");
        for byte in &digest[..16] {
            name.push_str(&format!("{byte:02x}"));
        }
        name
    }

    pub(super) async fn app_code_by_id(
        &self,
        instance_id: &str,
        app_code_id: &str,
    ) -> StoreResult<Option<AppCodeRecord>> {
        let mut conn = self.pool.get().await?;
        ops::app_code_by_id(&mut conn, self, instance_id, app_code_id).await
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.shared.schema)
            .field("encrypted", &self.is_encrypted())
            .field("pool", &self.shared.pool)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user:password@host:port/dbname?...`,
    /// or the `key=value` form), without TLS, and applies pending schema migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the URL is invalid, the database cannot be reached or
    /// migrated. Its source is a [`KeyMismatch`](crate::store::KeyMismatch) when the schema was
    /// created with another master key (or none, or one where none is configured), a
    /// [`SchemaTooNew`](crate::store::SchemaTooNew) when a newer version of this crate wrote it.
    /// No message contains the URL's password.
    pub async fn connect(url: &str, options: PostgresOptions) -> StoreResult<Self> {
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            StoreError::Backend(format!("invalid PostgreSQL URL: {e}").into())
        })?;
        if config.get_application_name().is_none() {
            config.application_name("apig-appcode");
        }
        let pool = Pool::new(config, options.pool_size);
        let sealer = Sealer::new(options.master_key.as_ref());
        let schema = {
            let mut conn = pool.get().await?;
            schema::prepare(&mut conn, &sealer).await?
        };
        let mut origin = [0u8; 8];
        getrandom::fill(&mut origin)
            .map_err(|e| StoreError::Backend(format!("no random origin ID: {e}").into()))?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                sealer,
                schema,
                origin: origin.iter().map(|b| format!("{b:02x}")).collect(),
                listeners: listen::Listeners::default(),
            }),
        })
    }

    /// Whether values are encrypted at rest (the store was opened with a master key).
    pub fn is_encrypted(&self) -> bool {
        self.shared.sealer.is_encrypted()
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The `NOTIFY` channel on which writes to `instance_id` are announced (to watch them with
    /// `LISTEN` in `psql`).
    pub fn channel(&self, instance_id: &str) -> String {
        self.shared.channel(instance_id)
    }
}

impl Store for PostgresStore {
    fn create_app(&self, app: App) -> BoxFuture<'_, StoreResult<App>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::create_app(&mut conn, &self.shared, app).await
        })
    }

    fn get_app<'a>(&'a self, scope: &'a Scope, app_id: &'a str) -> BoxFuture<'a, StoreResult<App>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::get_app(&mut conn, &self.shared, scope, app_id).await
        })
    }

    fn list_apps<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AppFilter,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Page<App>>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::list_apps(&mut conn, &self.shared, scope, filter, offset, limit).await
        })
    }

    fn count_app_codes<'a>(
        &'a self,
        scope: &'a Scope,
        app_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<u64>>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::count_app_codes(&mut conn, scope, app_ids).await
        })
    }

    fn delete_app<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<AppCodeRecord>>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::delete_app(&mut conn, &self.shared, scope, app_id).await
        })
    }

    fn create_app_code<'a>(
        &'a self,
        scope: &'a Scope,
        record: AppCodeRecord,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::create_app_code(&mut conn, &self.shared, scope, record).await
        })
    }

    fn get_app_code<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        app_code_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::get_app_code(&mut conn, &self.shared, scope, app_id, app_code_id).await
        })
    }

    fn list_app_codes<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Page<AppCodeRecord>>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::list_app_codes(&mut conn, &self.shared, scope, app_id, offset, limit).await
        })
    }

    fn delete_app_code<'a>(
        &'a self,
        scope: &'a Scope,
        app_id: &'a str,
        app_code_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<AppCodeRecord>> {
        Box::pin(async move {
            let mut conn = self.shared.pool.get().await?;
            ops::delete_app_code(&mut conn, &self.shared, scope, app_id, app_code_id).await
        })
    }

    fn instance_app_codes<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<AppCodeRecord>>> {
        Box::pin(async move {
            listen::before_snapshot(&self.shared.listeners, instance_id).await;
            let mut conn = self.shared.pool.get().await?;
            ops::instance_app_codes(&mut conn, &self.shared, instance_id).await
        })
    }

    fn changes(&self, instance_id: &str) -> Option<ChangeStream> {
        Some(listen::spawn(
            Arc::clone(&self.shared),
            instance_id.to_owned(),
        ))
    }
}
