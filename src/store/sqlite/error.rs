//! How internal failures of the SQLite store become [`StoreError::Backend`], with a context and
//! never a secret.

use std::fmt;

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

/// Maps a rusqlite error to [`StoreError::Backend`], naming what failed. SQLite's messages name
/// tables, columns and constraints, never bound values, and the store binds every value.
pub(super) fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Backend(Box::new(DbError { context, source }))
}

/// A row that cannot be what this store wrote (see [`sealed::corrupt`]).
pub(super) fn corrupt(detail: impl fmt::Display) -> StoreError {
    sealed::corrupt("SQLite", detail)
}

/// A secret that could not be sealed or opened (see [`sealed::cipher`]).
pub(super) fn cipher(what: impl fmt::Display, e: CipherError) -> StoreError {
    sealed::cipher("SQLite", what, e)
}
