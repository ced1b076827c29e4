//! The apps' signing keys (app key and secret) as gateways read them: all of an instance's,
//! and those of the apps logged as changed (kind `A`, like ACLs and quotas) after a revision.

use rusqlite::{params, Connection, Transaction};

use super::rows::{changed_apps, query_all, read_app, APP_COLUMNS, BACKEND};
use super::transactions::read_tx;
use crate::app_key::AppKey;
use crate::store::cipher::Sealer;
use crate::store::sealed::RawApp;
use crate::store::{Scope, StoreError, StoreResult};

pub(super) fn of_instance(
    conn: &mut Connection,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppKey)>> {
    let tx = read_tx(conn)?;
    let rows = query_all(
        &tx,
        "read the instance's app keys",
        &format!("SELECT project_id, {APP_COLUMNS} FROM apps WHERE instance_id = ?1 ORDER BY seq"),
        [instance_id],
        |r| {
            let project: String = r.get(0)?;
            Ok((project, RawApp::from_sqlite_row_at(r, 1)?))
        },
    )?;
    rows.into_iter()
        .map(|(project, raw)| {
            let app = raw.open(sealer, &Scope::new(project, instance_id), BACKEND)?;
            Ok((app.id.clone(), app.signing_key()))
        })
        .collect()
}

/// The apps logged as changed after revision `after` (each once, in the order of its last
/// change) and the key each has now (`None`: gone), inside the reader's transaction.
pub(super) fn changed_since(
    tx: &Transaction<'_>,
    sealer: &Sealer,
    instance_id: &str,
    after: i64,
) -> StoreResult<Vec<(String, Option<AppKey>)>> {
    let rows = query_all(
        tx,
        "read the changed app keys",
        concat!(
            "SELECT l.app_id, a.project_id",
            changed_apps!(),
            "ORDER BY l.revision, l.ord"
        ),
        params![instance_id, after],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
    )?;
    rows.into_iter()
        .map(|(app_id, project)| {
            let key = match project {
                Some(project) => {
                    match read_app(tx, sealer, &Scope::new(project, instance_id), &app_id) {
                        Ok(app) => Some(app.signing_key()),
                        Err(StoreError::AppNotFound) => None,
                        Err(e) => return Err(e),
                    }
                }
                None => None,
            };
            Ok((app_id, key))
        })
        .collect()
}
