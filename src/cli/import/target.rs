//! The target of an import: the store `serve` runs on, opened as `serve` opens it, so that every
//! write takes the API's path (the change log and its triggers) and running nodes see the
//! imported rows as they see any change.

use std::sync::Arc;
use std::time::Duration;

use apig_appcode::gateway::config::DatabaseUrl;
use apig_appcode::store::{
    MasterKey, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store,
};

use crate::cli::client::CliError;

/// The environment variable `serve` reads its master key from; the import reads the same.
pub(crate) const MASTER_KEY_ENV: &str = "APIG_MASTER_KEY";

/// How long one PostgreSQL call may take: longer than `serve`'s 5 s, since an import's calls
/// queue behind one another and a slow one is better waited for than failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens `database` (`sqlite://PATH` or `postgres://...`), with the master key of
/// [`MASTER_KEY_ENV`] when set: a store encrypted at rest refuses to open without it.
pub(crate) async fn open(database: &str) -> Result<Arc<dyn Store>, CliError> {
    let url =
        DatabaseUrl::parse(database).map_err(|e| CliError::Usage(format!("--database: {e}")))?;
    let key = match std::env::var(MASTER_KEY_ENV) {
        Ok(text) if !text.trim().is_empty() => Some(
            MasterKey::parse(text.trim())
                .map_err(|e| CliError::Usage(format!("{MASTER_KEY_ENV}: {e}")))?,
        ),
        _ => None,
    };
    let opened: Result<Arc<dyn Store>, _> = match url {
        DatabaseUrl::Sqlite(path) => {
            let mut options = SqliteOptions::new();
            if let Some(key) = key {
                options = options.master_key(key);
            }
            SqliteStore::open(path, options).map(|s| Arc::new(s) as Arc<dyn Store>)
        }
        DatabaseUrl::Postgres(url) => {
            let mut options = PostgresOptions::new().call_timeout(CALL_TIMEOUT);
            if let Some(key) = key {
                options = options.master_key(key);
            }
            PostgresStore::connect(&url, options)
                .await
                .map(|s| Arc::new(s) as Arc<dyn Store>)
        }
    };
    // The store's errors name the file or host, never a password or key.
    opened.map_err(|e| CliError::Target(e.to_string()))
}
