//! The apps' signing keys (app key and secret) as gateways read them: all of an instance's,
//! and how an app's key is opened (also for the apps a reader catches up on, in `policy.rs`).

use rusqlite::Connection;

use super::rows::{instance_rows, APP_COLUMNS, BACKEND};
use crate::app_key::AppKey;
use crate::store::cipher::Sealer;
use crate::store::sealed::RawApp;
use crate::store::{Scope, StoreResult};

/// The app of the instance in `project` stored as `raw`: its ID and its key, the secret
/// opened.
pub(super) fn key_of(
    project: String,
    raw: RawApp,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<(String, AppKey)> {
    let app = raw.open(sealer, &Scope::new(project, instance_id), BACKEND)?;
    Ok((app.id.clone(), app.signing_key()))
}

pub(super) fn of_instance(
    conn: &mut Connection,
    sealer: &Sealer,
    instance_id: &str,
) -> StoreResult<Vec<(String, AppKey)>> {
    instance_rows(
        conn,
        "read the instance's app keys",
        &format!("SELECT project_id, {APP_COLUMNS} FROM apps WHERE instance_id = ?1 ORDER BY seq"),
        instance_id,
        |r| {
            let project: String = r.get(0)?;
            Ok((project, RawApp::from_sqlite_row_at(r, 1)?))
        },
        |(project, raw)| key_of(project, raw, sealer, instance_id),
    )
}
