//! The apps' signing keys (app key and secret) as gateways read them: all of an instance's, and
//! how a key is opened from an app's row (also for `policy.rs`, which reads one app's key with
//! its ACL and quota).

use tokio_postgres::Row;

use super::pool::{Conn, Progress};
use super::rows::{app_columns, col, BACKEND};
use crate::app_key::AppKey;
use crate::store::cipher::Sealer;
use crate::store::sealed::RawApp;
use crate::store::{Scope, StoreResult};

/// The app in `row` from column `at` on (its project, then the `app_columns!`): its ID and its
/// key, the secret opened.
pub(super) fn key_of(
    row: &Row,
    at: usize,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<(String, AppKey)> {
    let project: String = col(row, at)?;
    let scope = Scope::new(project, instance_id);
    let app = RawApp::from_pg_row_at(row, at + 1)?.open(sealer, &scope, BACKEND)?;
    Ok((app.id.clone(), app.signing_key()))
}

/// A [`BEGIN_SNAPSHOT`](super::ops::BEGIN_SNAPSHOT) transaction: every app's key, its secret
/// opened as the rows stream in.
pub(super) async fn of_instance(
    conn: &mut Conn,
    progress: &Progress,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppKey)>> {
    let context = "read the instance's app keys";
    let sql = concat!(
        "SELECT project_id, ",
        app_columns!(),
        " FROM apps WHERE instance_id = $1 ORDER BY seq"
    );
    let mut keys = Vec::new();
    conn.for_each_row(context, sql, &[&instance_id], progress, |row| {
        keys.push(key_of(row, 0, sealer, instance_id)?);
        Ok(())
    })
    .await?;
    Ok(keys)
}
