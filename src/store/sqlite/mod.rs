//! [`SqliteStore`]: the embedded default store, one SQLite file in WAL mode, AppCodes and app
//! secrets optionally encrypted at rest. Its type documentation describes the guarantees and
//! the schema.
//!
//! - `store.rs`: the store and its async face (blocking work on tokio's pool); `options.rs`: how
//!   to open it.
//! - `ops.rs`: each operation as one transaction on a connection, in the transactions of
//!   `transactions.rs`; `revision.rs`: the instance's revision and change log, under the
//!   PostgreSQL store's names: what a reader catches up with.
//! - `rows.rs`: what the operations read rows with (the lookups by ID, the columns of apps,
//!   AppCodes and quotas), so that their files import it and not each other.
//! - `acls.rs`, `quotas.rs`, `quota_apps.rs`: the same for app ACLs, app quotas, and apps'
//!   bindings to quotas with their shared counts; `keys.rs`: the apps' signing keys as the
//!   gateways read them.
//! - `policy.rs`: an app's ACL, quota and key read in one statement, for a reader catching up.
//! - `triggers.rs`: the triggers that log every change of the tables, however it was made
//!   (schema version 5).
//! - `schema.rs`: migrations and the master-key record.
//! - `error.rs`: the mapping of internal failures to `StoreError::Backend`.

mod acls;
mod error;
mod keys;
#[cfg(test)]
mod migration_tests;
mod ops;
mod options;
mod policy;
mod quota_apps;
mod quotas;
mod revision;
mod rows;
mod schema;
mod store;
#[cfg(test)]
mod tests;
mod transactions;
mod triggers;

pub use error::SqliteFileError;
pub use options::SqliteOptions;
pub use store::SqliteStore;
