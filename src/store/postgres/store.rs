//! [`PostgresStore`].

use std::fmt;
use std::sync::Arc;
use tokio_postgres::Config;

use super::ops::{self, BEGIN_READ, BEGIN_SNAPSHOT, BEGIN_WRITE};
use super::options::PostgresOptions;
use super::pool::{Conn, Pool, Progress};
use super::shared::Shared;
use super::{acls, keys, listen, quota_apps, quotas, schema, tls, triggers};
use crate::acl::AppAcl;
use crate::app_key::AppKey;
use crate::provider::{ChangeStream, RevisionDigest};
use crate::quota::AppQuota;
use crate::store::cipher::Sealer;
use crate::store::QuotaAppsWanted;
use crate::store::{
    async_trait, App, AppChanges, AppCodeChanges, AppCodeRecord, AppFilter, AppQuotaRecord,
    InstanceSnapshot, Page, QuotaApp, QuotaBinding, QuotaCount, Scope, SharedCount, Store,
    StoreError, StoreResult, Timestamp,
};

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
/// - A write that returned `Ok` is committed. Every change of what a gateway enforces (a code
///   created, changed or deleted, an app deleted, an app's ACL or quota changed), made through
///   this store or with plain SQL by any other program, takes the instance's next revision
///   (one per transaction), is logged under it and announced with `NOTIFY` by the tables'
///   triggers, in the same transaction, so the revision, the log entry and the announcement
///   exist exactly when the change commits. A statement that changes more than 32 rows
///   announces its first 32 and one catch-up. Revisions of one instance commit in order, without gaps (the instance's
///   revision row is locked until commit): [`Store::instance_snapshot`] and
///   [`Store::app_code_changes`] read them in one `REPEATABLE READ` transaction each, and the
///   log keeps the last [`change_log_retention`](PostgresOptions::change_log_retention)
///   revisions of each instance.
/// - [`Store::changes`] listens for one instance on a connection of its own and turns
///   announcements into change events: another node's creation becomes
///   [`Change::Upsert`](crate::provider::Change::Upsert) (the code is read back by ID), any
///   deletion (this node's too) [`Change::RemoveId`](crate::provider::Change::RemoveId). After a
///   lost connection it reconnects with backoff (up to 5 s) and sends
///   [`Change::Resync`](crate::provider::Change::Resync), so nothing missed meanwhile survives;
///   until then the layer's staleness policy applies. [`Store::instance_app_codes`] waits
///   briefly for the instance's listeners to be listening, so a node's first snapshot needs no
///   resync (if it could not wait, the listener resyncs once it listens). An announcement whose
///   revision shows that an earlier one never arrived also brings a resync. Announcements and
///   the change log carry IDs only, never an AppCode value or a secret.
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
/// `SqliteStore`, encrypted the same way under a master key, plus `instance_revisions` and
/// `app_code_log` (schema version 2; an older schema is upgraded in place, its instances
/// starting at revision 0), whose columns `SqliteStore` shares (schema version 3), and the
/// triggers that write them (schema version 5, functions and triggers named `apig_appcode_*`).
/// A session that sets `session_replication_role = replica`, or a `TRUNCATE`, bypasses the
/// triggers: the gateways' anti-entropy check finds such changes.
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
    /// What a snapshot waits for: the listeners of `changes`.
    listeners: Arc<listen::Listeners>,
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
    /// or the `key=value` form) and applies pending schema migrations.
    ///
    /// # TLS
    ///
    /// `sslmode` in the URL chooses it: `disable` (the default: no TLS), `prefer`
    /// (TLS when the server offers it), `require` or `verify-full` (TLS or no connection).
    /// Unlike libpq, every TLS session verifies the server's certificate and host name, in all
    /// three modes: against the PEM file `sslrootcert=PATH` names (the CA that signed the
    /// server's certificate), or the system's roots when it is absent or `system`. `allow`
    /// and `verify-ca` are refused. The handshake uses rustls with the `ring` provider.
    ///
    /// ```no_run
    /// use apig_appcode::store::{PostgresOptions, PostgresStore};
    ///
    /// # #[tokio::main] async fn main() {
    /// let url = "postgres://apig@db.internal/apig?sslmode=verify-full&sslrootcert=/etc/apig/ca.pem";
    /// let store = PostgresStore::connect(url, PostgresOptions::new()).await.unwrap();
    /// # let _ = store;
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the URL (or its TLS parameters, or the root certificates)
    /// is invalid or the database cannot be migrated; [`StoreError::Unavailable`] when it
    /// cannot be reached (a failed TLS handshake included) within the connect timeout
    /// (`connect_timeout` in the URL, 10 s by default) and the call timeout. Its source is a [`KeyMismatch`](crate::store::KeyMismatch) when the schema was
    /// created with another master key (or none, or one where none is configured), a
    /// [`SchemaTooNew`](crate::store::SchemaTooNew) when a newer version of this crate wrote it.
    /// No message contains the URL's password.
    pub async fn connect(url: &str, options: PostgresOptions) -> StoreResult<Self> {
        let invalid = |e: &dyn fmt::Display| {
            StoreError::Backend(format!("invalid PostgreSQL URL: {e}").into())
        };
        let (url, tls) = tls::split_url(url).map_err(|e| invalid(&e))?;
        let mut config: Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(&e))?;
        if config.get_application_name().is_none() {
            config.application_name("apig-appcode");
        }
        config.ssl_mode(tls.driver_mode());
        let connector = tls.connector().map_err(|e| invalid(&e))?;
        let mut origin = [0u8; 8];
        getrandom::fill(&mut origin)
            .map_err(|e| StoreError::Backend(format!("no random origin ID: {e}").into()))?;
        let origin: String = origin.iter().map(|b| format!("{b:02x}")).collect();
        let retention = i64::try_from(options.change_log_retention).unwrap_or(i64::MAX);
        let pool = Pool::new(
            config,
            connector,
            options.pool_size,
            options.call_timeout,
            &triggers::session_settings(&origin, retention),
        );
        let sealer = Sealer::new(options.master_key.as_ref());
        let schema = pool
            .transaction("prepare the schema", BEGIN_WRITE, async |conn| {
                schema::prepare(conn, &sealer).await
            })
            .await?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                sealer,
                schema,
                origin,
            }),
            listeners: Arc::default(),
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

    /// One call on a pooled connection, outside any transaction, named `what` in errors.
    async fn call<T>(
        &self,
        what: &'static str,
        body: impl AsyncFnOnce(&mut Conn, &Shared) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let shared = &*self.shared;
        shared
            .pool
            .call(what, async |conn| body(conn, shared).await)
            .await
    }

    /// One [`BEGIN_READ`] transaction.
    async fn read<T>(
        &self,
        what: &'static str,
        body: impl AsyncFnOnce(&mut Conn, &Shared) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.transaction(what, BEGIN_READ, body).await
    }

    /// One [`BEGIN_WRITE`] transaction.
    async fn write<T>(
        &self,
        what: &'static str,
        body: impl AsyncFnOnce(&mut Conn, &Shared) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.transaction(what, BEGIN_WRITE, body).await
    }

    async fn transaction<T>(
        &self,
        what: &'static str,
        begin: &'static str,
        body: impl AsyncFnOnce(&mut Conn, &Shared) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let shared = &*self.shared;
        let body = async |conn: &mut Conn| body(conn, shared).await;
        shared.pool.transaction(what, begin, body).await
    }

    /// One [`BEGIN_SNAPSHOT`] transaction reading much of an instance, bounded by its progress
    /// rather than its length.
    async fn read_all<T>(
        &self,
        what: &'static str,
        body: impl AsyncFnOnce(&mut Conn, &Progress, &Shared) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let shared = &*self.shared;
        let body = async |conn: &mut Conn, progress: &Progress| body(conn, progress, shared).await;
        shared
            .pool
            .streaming_transaction(what, BEGIN_SNAPSHOT, body)
            .await
    }

    /// Reads a whole instance's AppCodes with `body`, like [`read_all`](Self::read_all), after
    /// waiting (briefly) for the instance's listeners: the snapshot a node starts from follows
    /// their first `LISTEN`, or they resync.
    async fn read_instance<T>(
        &self,
        instance_id: &str,
        body: impl AsyncFnOnce(&mut Conn, &Progress, &Shared) -> StoreResult<T>,
    ) -> StoreResult<T> {
        listen::before_snapshot(&self.listeners, instance_id).await;
        self.read_all("read the instance's AppCodes", body).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_app(&self, app: App) -> StoreResult<App> {
        self.write("create app", async move |conn, shared| {
            ops::create_app(conn, shared, app).await
        })
        .await
    }

    async fn get_app(&self, scope: &Scope, app_id: &str) -> StoreResult<App> {
        self.call("read app", async move |conn, shared| {
            ops::get_app(conn, &shared.sealer, scope, app_id).await
        })
        .await
    }

    async fn list_apps(
        &self,
        scope: &Scope,
        filter: &AppFilter,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<App>> {
        self.read("list apps", async move |conn, shared| {
            ops::list_apps(conn, &shared.sealer, scope, filter, offset, limit).await
        })
        .await
    }

    async fn update_app(
        &self,
        scope: &Scope,
        app_id: &str,
        changes: AppChanges,
    ) -> StoreResult<App> {
        self.write("update app", async move |conn, shared| {
            ops::update_app(conn, shared, scope, app_id, changes).await
        })
        .await
    }

    async fn delete_app(&self, scope: &Scope, app_id: &str) -> StoreResult<Vec<AppCodeRecord>> {
        self.write("delete app", async move |conn, shared| {
            ops::delete_app(conn, shared, scope, app_id).await
        })
        .await
    }

    async fn create_app_code(
        &self,
        scope: &Scope,
        record: AppCodeRecord,
    ) -> StoreResult<AppCodeRecord> {
        self.write("create AppCode", async move |conn, shared| {
            ops::create_app_code(conn, shared, scope, record).await
        })
        .await
    }

    async fn get_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord> {
        self.call("read AppCode", async move |conn, shared| {
            ops::get_app_code(conn, &shared.sealer, scope, app_id, app_code_id).await
        })
        .await
    }

    async fn list_app_codes(
        &self,
        scope: &Scope,
        app_id: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppCodeRecord>> {
        self.read("list AppCodes", async move |conn, shared| {
            ops::list_app_codes(conn, &shared.sealer, scope, app_id, offset, limit).await
        })
        .await
    }

    async fn delete_app_code(
        &self,
        scope: &Scope,
        app_id: &str,
        app_code_id: &str,
    ) -> StoreResult<AppCodeRecord> {
        self.write("delete AppCode", async move |conn, shared| {
            ops::delete_app_code(conn, shared, scope, app_id, app_code_id).await
        })
        .await
    }

    async fn get_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<Option<AppAcl>> {
        self.read("read app ACL", async move |conn, _| {
            acls::get(conn, scope, app_id).await
        })
        .await
    }

    async fn set_app_acl(&self, scope: &Scope, app_id: &str, acl: AppAcl) -> StoreResult<()> {
        self.write("set app ACL", async move |conn, _| {
            acls::set(conn, scope, app_id, &acl).await
        })
        .await
    }

    async fn delete_app_acl(&self, scope: &Scope, app_id: &str) -> StoreResult<bool> {
        self.write("delete app ACL", async move |conn, _| {
            acls::remove(conn, scope, app_id).await
        })
        .await
    }

    async fn instance_app_acls(&self, instance_id: &str) -> StoreResult<Vec<(String, AppAcl)>> {
        self.read_all(
            "read the instance's app ACLs",
            async move |conn, progress, _| acls::of_instance(conn, progress, instance_id).await,
        )
        .await
    }

    async fn instance_app_keys(&self, instance_id: &str) -> StoreResult<Vec<(String, AppKey)>> {
        self.read_all(
            "read the instance's app keys",
            async move |conn, progress, shared| {
                keys::of_instance(conn, progress, &shared.sealer, instance_id).await
            },
        )
        .await
    }

    async fn create_app_quota(
        &self,
        scope: &Scope,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord> {
        self.write("create app quota", async move |conn, _| {
            quotas::create(conn, scope, record).await
        })
        .await
    }

    async fn get_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<AppQuotaRecord> {
        self.call("read app quota", async move |conn, _| {
            quotas::get(conn, scope, quota_id).await
        })
        .await
    }

    async fn list_app_quotas(
        &self,
        scope: &Scope,
        name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Page<AppQuotaRecord>> {
        self.read("list app quotas", async move |conn, _| {
            quotas::list(conn, scope, name, offset, limit).await
        })
        .await
    }

    async fn update_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        record: AppQuotaRecord,
    ) -> StoreResult<AppQuotaRecord> {
        self.write("update app quota", async move |conn, _| {
            quotas::update(conn, scope, quota_id, record).await
        })
        .await
    }

    async fn delete_app_quota(&self, scope: &Scope, quota_id: &str) -> StoreResult<()> {
        self.write("delete app quota", async move |conn, _| {
            quotas::delete(conn, scope, quota_id).await
        })
        .await
    }

    async fn bind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_ids: &[String],
        bound_time: Timestamp,
    ) -> StoreResult<Vec<QuotaBinding>> {
        self.write("bind app quota", async move |conn, _| {
            quota_apps::bind(conn, scope, quota_id, app_ids, bound_time).await
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
        let wanted = QuotaAppsWanted {
            bound,
            app_name: app_name.map(str::to_owned),
            offset,
            limit,
        };
        self.read("list the quota's apps", async move |conn, shared| {
            quota_apps::apps(conn, &shared.sealer, scope, quota_id, &wanted).await
        })
        .await
    }

    async fn unbind_app_quota(
        &self,
        scope: &Scope,
        quota_id: &str,
        app_id: &str,
    ) -> StoreResult<()> {
        self.write("unbind app quota", async move |conn, _| {
            quota_apps::unbind(conn, scope, quota_id, app_id).await
        })
        .await
    }

    async fn app_bound_quota(
        &self,
        scope: &Scope,
        app_id: &str,
    ) -> StoreResult<Option<AppQuotaRecord>> {
        self.read("read the app's quota", async move |conn, _| {
            quota_apps::bound_to(conn, scope, app_id).await
        })
        .await
    }

    async fn instance_app_quotas(&self, instance_id: &str) -> StoreResult<Vec<(String, AppQuota)>> {
        self.read_all(
            "read the instance's app quotas",
            async move |conn, progress, _| quotas::of_instance(conn, progress, instance_id).await,
        )
        .await
    }

    async fn add_quota_counts(
        &self,
        instance_id: &str,
        counts: &[QuotaCount],
    ) -> StoreResult<Vec<SharedCount>> {
        self.write("add quota counts", async move |conn, _| {
            quota_apps::add_counts(conn, instance_id, counts).await
        })
        .await
    }

    async fn instance_app_codes(&self, instance_id: &str) -> StoreResult<Vec<AppCodeRecord>> {
        self.read_instance(instance_id, async move |conn, progress, shared| {
            ops::instance_app_codes(conn, progress, &shared.sealer, instance_id).await
        })
        .await
    }

    async fn instance_snapshot(&self, instance_id: &str) -> StoreResult<InstanceSnapshot> {
        self.read_instance(instance_id, async move |conn, progress, shared| {
            ops::instance_snapshot(conn, progress, &shared.sealer, instance_id).await
        })
        .await
    }

    async fn instance_snapshot_into(
        &self,
        instance_id: &str,
        sink: &mut (dyn FnMut(AppCodeRecord) + Send),
    ) -> StoreResult<Option<u64>> {
        self.read_instance(instance_id, async move |conn, progress, shared| {
            ops::instance_snapshot_into(conn, progress, &shared.sealer, instance_id, sink).await
        })
        .await
    }

    async fn instance_digest(&self, instance_id: &str) -> StoreResult<Option<RevisionDigest>> {
        self.read_all(
            "digest the instance's AppCodes",
            async move |conn, progress, _| {
                super::revision::instance_digest(conn, progress, instance_id)
                    .await
                    .map(Some)
            },
        )
        .await
    }

    async fn app_code_changes(
        &self,
        instance_id: &str,
        revision: u64,
    ) -> StoreResult<Option<AppCodeChanges>> {
        self.read("read the AppCode changes", async move |conn, shared| {
            super::revision::app_code_changes(conn, &shared.sealer, instance_id, revision).await
        })
        .await
    }

    fn changes(&self, instance_id: &str) -> Option<ChangeStream> {
        Some(listen::spawn(
            Arc::clone(&self.shared),
            &self.listeners,
            instance_id.to_owned(),
        ))
    }
}
