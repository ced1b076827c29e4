//! The apps' signing keys (app key and secret) as gateways read them: all of an instance's,
//! those of the apps logged as changed (kind `A`, like ACLs and quotas) after a revision, and
//! one app's, for an announcement.

use tokio_postgres::Row;

use super::pool::{Conn, Progress};
use super::rows::{app_columns, changed_apps, col, BACKEND};
use crate::app_key::AppKey;
use crate::store::cipher::Sealer;
use crate::store::sealed::RawApp;
use crate::store::{Scope, StoreResult};

/// The app in `row` from column `at` on (its project, then the `app_columns!`): its ID and its
/// key, the secret opened.
fn key_of(
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

/// One statement: the key the app `app_id` of the instance has now (`None`: no such app).
pub(super) async fn of_app(
    conn: &mut Conn,
    sealer: &Sealer,
    instance_id: &str,
    app_id: &str,
) -> StoreResult<Option<AppKey>> {
    let row = conn
        .query_opt(
            "read app key",
            concat!(
                "SELECT project_id, ",
                app_columns!(),
                " FROM apps WHERE instance_id = $1 AND id = $2"
            ),
            &[&instance_id, &app_id],
        )
        .await?;
    row.map(|row| key_of(&row, 0, sealer, instance_id).map(|(_, key)| key))
        .transpose()
}

/// Inside the reader's transaction: the apps logged as changed after revision `after` (each
/// once, in the order of its last change) and the key each has now.
pub(super) async fn changed_since(
    conn: &mut Conn,
    sealer: &Sealer,
    instance_id: &str,
    after: i64,
) -> StoreResult<Vec<(String, Option<AppKey>)>> {
    let rows = conn
        .query(
            "read the changed app keys",
            concat!(
                "SELECT l.app_id, a.project_id, ",
                "a.id, a.name, a.remark, a.creator, a.app_key, a.app_secret, ",
                "a.app_secret_nonce, a.register_time, a.update_time, a.status",
                changed_apps!(),
                "ORDER BY l.revision, l.ord"
            ),
            &[&instance_id, &after],
        )
        .await?;
    rows.iter()
        .map(|r| {
            // No project: the app is gone.
            let project: Option<String> = col(r, 1)?;
            let key = match project {
                Some(_) => Some(key_of(r, 1, sealer, instance_id)?.1),
                None => None,
            };
            Ok((col(r, 0)?, key))
        })
        .collect()
}
