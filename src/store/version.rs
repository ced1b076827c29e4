//! [`SchemaTooNew`]: a persistent store written by a newer version of this crate.

use std::fmt;

use super::{sealed, StoreError, StoreResult};

/// The database was written by a newer version of this crate: its schema version is higher than
/// the newest migration this version knows. Nothing was changed.
///
/// `SqliteStore::open` and `PostgresStore::connect` return it inside
/// [`StoreError::Backend`]:
///
/// ```
/// # #[cfg(feature = "sqlite")] {
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
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaTooNew {
    /// The schema version recorded in the database.
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

/// How many migrations a database at schema version `found` has applied, so the index of the
/// first it lacks: [`SchemaTooNew`] past the `supported` version this crate knows, and a negative
/// version corrupt data of the store `backend` names. Both stores check a database so before
/// migrating it.
pub(super) fn applied_migrations(found: i64, supported: i64, backend: &str) -> StoreResult<usize> {
    if found > supported {
        return Err(StoreError::Backend(Box::new(SchemaTooNew {
            found,
            supported,
        })));
    }
    usize::try_from(found)
        .map_err(|_| sealed::corrupt(backend, format_args!("negative schema version {found}")))
}
