//! Errors of the SQLite store: what callers can match on, and how internal failures become
//! [`StoreError::Backend`] with a context and never a secret.

use std::fmt;

use crate::store::cipher::CipherError;
use crate::store::StoreError;

/// The database file was written by a newer version of this crate: its schema version is
/// higher than the newest migration this version knows. Nothing was changed.
///
/// [`SqliteStore::open`](crate::store::SqliteStore::open) returns it inside
/// [`StoreError::Backend`]:
///
/// ```
/// use apig_appcode::store::{SchemaTooNew, SqliteOptions, SqliteStore, StoreError};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("apig.db");
/// drop(SqliteStore::open(&path, SqliteOptions::new()).unwrap());
/// // Pretend a future version migrated the file.
/// rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
///
/// let Err(StoreError::Backend(e)) = SqliteStore::open(&path, SqliteOptions::new()) else {
///     panic!("a newer schema must be refused");
/// };
/// let too_new = e.downcast_ref::<SchemaTooNew>().unwrap();
/// assert_eq!(too_new.found, 99);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaTooNew {
    /// The schema version recorded in the file.
    pub found: i64,
    /// The newest schema version this crate knows.
    pub supported: i64,
}

impl fmt::Display for SchemaTooNew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the database has schema version {}, newer than the {} this version of apig-appcode \
             supports; upgrade apig-appcode",
            self.found, self.supported
        )
    }
}

impl std::error::Error for SchemaTooNew {}

/// A SQLite failure and what the store was doing.
#[derive(Debug)]
struct DbError {
    context: &'static str,
    source: rusqlite::Error,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SQLite: {}: {}", self.context, self.source)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Maps a rusqlite error to [`StoreError::Backend`], naming what failed. SQLite's messages name
/// tables, columns and constraints, never bound values, and the store binds every value.
pub(super) fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Backend(Box::new(DbError { context, source }))
}

/// A row that cannot be what this store wrote: `detail` names the row and the defect, never
/// a secret.
pub(super) fn corrupt(detail: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("SQLite store holds corrupt data: {detail}").into())
}

/// A secret that could not be sealed or opened.
pub(super) fn cipher(what: impl fmt::Display, e: CipherError) -> StoreError {
    match e {
        CipherError::Random => StoreError::Backend(format!("sealing {what}: {e}").into()),
        _ => corrupt(format_args!("{what}: {e}")),
    }
}
