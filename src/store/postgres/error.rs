//! How PostgreSQL failures become [`StoreError::Backend`]: a context, the SQLSTATE and the
//! server's primary message, never its `DETAIL` (which may quote a row, secrets included).

use std::fmt;

use tokio_postgres::error::SqlState;

use crate::store::cipher::CipherError;
use crate::store::sealed;
use crate::store::StoreError;

/// A PostgreSQL failure and what the store was doing, with the row data left out.
#[derive(Debug)]
pub(super) struct DbError {
    context: &'static str,
    code: Option<SqlState>,
    message: String,
}

impl DbError {
    pub(super) fn new(context: &'static str, e: &tokio_postgres::Error) -> Self {
        Self {
            context,
            code: e.code().cloned(),
            message: safe_message(e),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL: {}: ", self.context)?;
        if let Some(code) = &self.code {
            write!(f, "[{}] ", code.code())?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

/// The message of `e` without the parts that can quote data: for an error the server sent, its
/// severity and primary message (`DETAIL`, `HINT` and `WHERE` are dropped); otherwise the
/// client's own description (I/O, a closed connection, a timeout), which holds no row data.
pub(super) fn safe_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Maps a PostgreSQL error to [`StoreError::Backend`], naming what failed.
pub(super) fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Backend(Box::new(DbError::new(context, &e)))
}

/// The name of the unique constraint `e` violates, if that is what it is.
pub(super) fn unique_violation(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    (*db.code() == SqlState::UNIQUE_VIOLATION)
        .then(|| db.constraint())
        .flatten()
}

/// A row that cannot be what this store wrote (see [`sealed::corrupt`]).
pub(super) fn corrupt(detail: impl fmt::Display) -> StoreError {
    sealed::corrupt("PostgreSQL", detail)
}

/// A secret that could not be sealed or opened (see [`sealed::cipher`]).
pub(super) fn cipher(what: impl fmt::Display, e: CipherError) -> StoreError {
    sealed::cipher("PostgreSQL", what, e)
}
