//! How PostgreSQL failures become [`StoreError::Backend`]: a context, the SQLSTATE and the
//! server's primary message, never its `DETAIL` (which may quote a row, secrets included).

use std::fmt;
use std::time::Duration;

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
    /// The server's address, for a connection that could not be made: "connection refused"
    /// alone does not say where.
    server: Option<String>,
}

impl DbError {
    pub(super) fn new(context: &'static str, e: &tokio_postgres::Error) -> Self {
        Self {
            context,
            code: e.code().cloned(),
            message: safe_message(e),
            server: None,
        }
    }
}

/// A failure to connect to `server` (hosts and ports, never the user or password) while doing
/// `context`: unavailable, like any other unreachable database.
pub(super) fn connect_failed(
    context: &'static str,
    server: String,
    e: &tokio_postgres::Error,
) -> StoreError {
    let mut error = DbError::new(context, e);
    error.server = Some(server);
    StoreError::Unavailable(Box::new(error))
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            Some(server) => write!(f, "PostgreSQL at {server}: {}: ", self.context)?,
            None => write!(f, "PostgreSQL: {}: ", self.context)?,
        }
        if let Some(code) = &self.code {
            write!(f, "[{}] ", code.code())?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

/// The message of `e` without the parts that can quote data: for an error the server sent, its
/// severity and primary message (`DETAIL`, `HINT` and `WHERE` are dropped); otherwise the
/// client's own description and its causes (I/O, TLS, a closed connection, a timeout), which
/// hold no row data.
pub(super) fn safe_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            // The driver's own text leaves out the cause ("error performing TLS handshake"),
            // which is what an operator needs: an I/O error or a certificate that failed.
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                message.push_str(": ");
                message.push_str(&c.to_string());
                cause = c.source();
            }
            message
        }
    }
}

/// Maps a PostgreSQL error to a [`StoreError`] naming what failed:
/// [`Unavailable`](StoreError::Unavailable) when the database could not be reached or gave up
/// on the call (see [`is_unavailable`]), [`Backend`](StoreError::Backend) otherwise.
pub(super) fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| {
        let unavailable = is_unavailable(&e);
        let e = Box::new(DbError::new(context, &e));
        if unavailable {
            StoreError::Unavailable(e)
        } else {
            StoreError::Backend(e)
        }
    }
}

/// Whether `e` says the database is out of reach or too busy, so that a later retry may work:
/// a lost connection, an I/O or TLS failure, or a server error of class 08 (connection), 53
/// (insufficient resources: too many connections), 57 (operator intervention, which includes
/// `statement_timeout`'s 57014 and a shutting-down server) or a lock that timed out (55P03).
pub(super) fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            ["08", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class))
                || code == "55P03"
        }
        // No answer from the server: the socket or the TLS session (whose errors the connector
        // reports as I/O errors) failed.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// What a PostgreSQL call waited for when its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waited {
    /// A connection of the pool to be free; all `pool_size` stayed busy.
    FreeConnection { pool_size: usize },
    /// A new connection to open.
    Connection,
    /// The database to answer on an open connection (which is then closed).
    Answer,
}

/// A PostgreSQL call that ran out of time: what it was, what it waited for, and its limit.
/// Becomes [`StoreError::Unavailable`].
#[derive(Debug)]
pub(super) struct TimedOut {
    pub(super) context: &'static str,
    pub(super) waited: Waited,
    pub(super) limit: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL: {}: ", self.context)?;
        match self.waited {
            Waited::FreeConnection { pool_size } => write!(
                f,
                "all {pool_size} connections of the pool stayed busy for {:?}",
                self.limit
            ),
            Waited::Connection => write!(f, "no connection within {:?}", self.limit),
            Waited::Answer => write!(
                f,
                "no answer within {:?}; the connection was closed",
                self.limit
            ),
        }
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for StoreError {
    fn from(e: TimedOut) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
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
