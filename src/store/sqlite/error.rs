//! How internal failures of the SQLite store become [`StoreError::Backend`], with a context and
//! never a secret, and [`SqliteFileError`]: a file that cannot be used at all.

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use crate::store::cipher::CipherError;
use crate::store::sealed;
use crate::store::StoreError;

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

/// Maps a rusqlite error to a [`StoreError`], naming what failed. SQLite's messages name
/// tables, columns and constraints, never bound values, and the store binds every value.
///
/// What may pass by itself (another process holding the file past the busy timeout, a full
/// disk, a failed read or write) is [`StoreError::Unavailable`]: the management API answers
/// 503 and the refresher retries soon. Anything else (a corrupt page, a constraint the store
/// did not expect) is [`StoreError::Backend`].
pub(super) fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| {
        let transient = matches!(
            source.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::OutOfMemory
            )
        );
        let error = Box::new(DbError { context, source });
        if transient {
            StoreError::Unavailable(error)
        } else {
            StoreError::Backend(error)
        }
    }
}

/// A row that cannot be what this store wrote (see [`sealed::corrupt`]).
pub(super) fn corrupt(detail: impl fmt::Display) -> StoreError {
    sealed::corrupt("SQLite", detail)
}

/// A secret that could not be sealed or opened (see [`sealed::cipher`]).
pub(super) fn cipher(what: impl fmt::Display, e: CipherError) -> StoreError {
    sealed::cipher("SQLite", what, e)
}

/// Why a SQLite database file cannot be used at all: nothing in it can be trusted or read, so
/// [`SqliteStore::open`](crate::store::SqliteStore::open) refuses it instead of serving from it.
///
/// Returned inside [`StoreError::Backend`]; find it with `downcast_ref`:
///
/// ```
/// use apig_appcode::store::{SqliteFileError, SqliteOptions, SqliteStore, StoreError};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("apig.db");
/// std::fs::write(&path, b"this is a text file, not a database").unwrap();
///
/// let Err(StoreError::Backend(e)) = SqliteStore::open(&path, SqliteOptions::new()) else {
///     panic!("a file that is not a database must be refused");
/// };
/// let refused = e.downcast_ref::<SqliteFileError>().unwrap();
/// assert!(matches!(refused, SqliteFileError::NotADatabase { .. }));
/// assert_eq!(refused.path(), path);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqliteFileError {
    /// The file is a SQLite database but its pages are damaged (`PRAGMA quick_check` failed,
    /// or SQLite found a malformed page while opening it).
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The first problem SQLite reported. It names tables, indexes and pages, never a
        /// stored value.
        detail: String,
    },
    /// The file exists but is not a SQLite database (its header is damaged, or it is another
    /// kind of file).
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database file cannot be created because the directory meant to hold it does not
    /// exist.
    MissingDirectory {
        /// The database file.
        path: PathBuf,
        /// The missing directory.
        dir: PathBuf,
    },
}

impl SqliteFileError {
    /// The database file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Corrupt { path, .. }
            | Self::NotADatabase { path }
            | Self::MissingDirectory { path, .. } => path,
        }
    }
}

impl fmt::Display for SqliteFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt { path, detail } => write!(
                f,
                "the SQLite database {path} is corrupt ({detail}); restore it from a backup, or \
                 salvage what is readable with the sqlite3 shell's .recover command \
                 (sqlite3 {path} .recover | sqlite3 recovered.db) and use the recovered file",
                path = path.display(),
            ),
            Self::NotADatabase { path } => write!(
                f,
                "{} is not a SQLite database (SQLite: file is not a database): its header is \
                 damaged or it is another kind of file; check the path, or restore the database \
                 from a backup",
                path.display()
            ),
            Self::MissingDirectory { path, dir } => write!(
                f,
                "cannot create the SQLite database {}: the directory {} does not exist; create \
                 it or choose another path",
                path.display(),
                dir.display()
            ),
        }
    }
}

impl std::error::Error for SqliteFileError {}

/// Turns a failure to open `path` into a [`SqliteFileError`] when SQLite's error code says the
/// file itself is unusable, so the user is told what to do rather than given SQLite's terse
/// "database disk image is malformed"; any other error is returned as it was.
pub(super) fn at_open(path: &Path, e: StoreError) -> StoreError {
    let StoreError::Backend(boxed) = &e else {
        return e;
    };
    let Some(DbError {
        source: rusqlite::Error::SqliteFailure(failure, message),
        ..
    }) = boxed.downcast_ref::<DbError>()
    else {
        return e;
    };
    let path = path.to_path_buf();
    let refused = match failure.code {
        ErrorCode::DatabaseCorrupt => SqliteFileError::Corrupt {
            path,
            detail: message
                .clone()
                .unwrap_or_else(|| "database disk image is malformed".to_owned()),
        },
        ErrorCode::NotADatabase => SqliteFileError::NotADatabase { path },
        // SQLite says only "unable to open database file"; a missing directory is the cause a
        // user cannot guess from that.
        ErrorCode::CannotOpen => match missing_directory(&path) {
            Some(dir) => SqliteFileError::MissingDirectory { path, dir },
            None => return e,
        },
        _ => return e,
    };
    StoreError::Backend(Box::new(refused))
}

/// The directory meant to hold `path`, if it does not exist.
fn missing_directory(path: &Path) -> Option<PathBuf> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    (!dir.exists()).then(|| dir.to_path_buf())
}
