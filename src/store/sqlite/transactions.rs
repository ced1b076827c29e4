//! The transactions the operations run in: a read, a plain write, and a [`Write`] that may
//! change what gateways enforce.

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::error::db;
use crate::store::sealed::sql_count;
use crate::store::StoreResult;

pub(super) fn write_tx(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin write transaction"))
}

pub(super) fn read_tx(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(db("begin read transaction"))
}

/// A write transaction of the management API that may change what gateways enforce: the
/// tables' triggers (`triggers.rs`) log every change it makes under one revision of its
/// instance, taken by its first change (none if it changes nothing), in order. It opens a row
/// of `open_writes` for the instance, which the triggers read, and removes it before it
/// commits; dropped without [`commit`](Self::commit), it rolls back with the row.
pub(super) struct Write<'c> {
    tx: Transaction<'c>,
    instance_id: String,
}

impl<'c> std::ops::Deref for Write<'c> {
    type Target = Transaction<'c>;

    fn deref(&self) -> &Transaction<'c> {
        &self.tx
    }
}

impl<'c> Write<'c> {
    /// Begins a write to `instance_id` whose log keeps the last `retention` revisions.
    pub(super) fn begin(
        conn: &'c mut Connection,
        retention: u64,
        instance_id: &str,
    ) -> StoreResult<Self> {
        let tx = write_tx(conn)?;
        tx.prepare_cached("INSERT INTO open_writes (instance_id, retention) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![instance_id, sql_count(retention.max(1))]))
            .map_err(db("open a write"))?;
        Ok(Self {
            tx,
            instance_id: instance_id.to_owned(),
        })
    }

    /// Closes the write and commits it; `what` names it in an error.
    pub(super) fn commit(self, what: &'static str) -> StoreResult<()> {
        self.tx
            .prepare_cached("DELETE FROM open_writes WHERE instance_id = ?1")
            .and_then(|mut s| s.execute([&self.instance_id]))
            .map_err(db("close a write"))?;
        self.tx.commit().map_err(db(what))
    }
}
