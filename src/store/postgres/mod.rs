//! [`PostgresStore`]: one PostgreSQL database shared by many gateway nodes, with every write
//! that changes which AppCodes are valid pushed to every node's cache by `LISTEN`/`NOTIFY`. Its
//! type documentation describes the guarantees and the schema.
//!
//! - `store.rs`: the store and its async face; `options.rs`: how to open it.
//! - `shared.rs`: what the operations and the listeners share (the pool, the sealer, the schema).
//! - `ops.rs`: each operation as one statement, or as the body of one transaction that the
//!   pool begins and commits.
//! - `rows.rs`: what the operations read rows with (the column reader, the lookups by ID, the
//!   columns of apps, AppCodes and quotas), so that their files import it and not each other.
//! - `triggers.rs`: the triggers that log and announce every change of the tables, however it
//!   was made (schema version 5).
//! - `revision.rs`: the instance's revision and change log, under the SQLite store's names: what
//!   a reader catches up with.
//! - `acls.rs`, `quotas.rs`, `quota_apps.rs`: the same for app ACLs, app quotas, and apps' bindings
//!   to quotas with their shared counts; `keys.rs`: the apps' signing keys as gateways read them.
//! - `policy.rs`: an app's ACL, quota and key read in one statement, for a reader catching up
//!   and for an announcement.
//! - `schema.rs`: migrations under an advisory lock, and the master-key record.
//! - `announcement.rs`: what a write announces (`NOTIFY` payloads), and how it is read back.
//! - `listen.rs`: the listener behind `Store::changes`.
//! - `pool.rs`: a small connection pool with prepared statements per connection, the bound on
//!   every call, and the only place transactions begin and end (and why not deadpool-postgres
//!   or bb8).
//! - `error.rs`: the mapping of PostgreSQL failures to `StoreError::Backend` and
//!   `StoreError::Unavailable`, without row data.
//! - `tls.rs`: `sslmode` and `sslrootcert`, and TLS sessions with rustls.

mod acls;
mod announcement;
mod error;
mod keys;
mod listen;
mod ops;
mod options;
mod policy;
mod pool;
mod quota_apps;
mod quotas;
mod revision;
mod rows;
mod schema;
mod shared;
mod store;
mod tls;
mod triggers;

pub use options::PostgresOptions;
pub use store::PostgresStore;
