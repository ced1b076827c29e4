//! A PostgreSQL schema of one's own on a shared database: its URL, its creation and its drop,
//! errors returned. The tests' `TestDb` (`postgres.rs`) panics on them; the example
//! `propagation_bench` reports them.

#![allow(dead_code)]

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// What a call here can fail with.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long the database may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A client on `url`, its connection driven by a task of its own.
pub(crate) async fn connect(url: &str) -> Result<Client, Error> {
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| format!("the database did not answer within {CONNECT_TIMEOUT:?}"))??;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs `sql` on a connection of its own to `url`.
pub(crate) async fn execute(url: &str, sql: &str) -> Result<(), Error> {
    connect(url)
        .await?
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{sql}: {e}").into())
}

/// `prefix` and twelve random lowercase hex digits: a schema name no other run takes.
pub(crate) fn random_name(prefix: &str) -> Result<String, Error> {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random)?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}_{hex}"))
}

/// The URL of schema `name` on the database at `admin_url`: its `search_path`, and its name as
/// the connections' `application_name`, so that they can be found in `pg_stat_activity`.
pub(crate) fn schema_url(admin_url: &str, name: &str) -> String {
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    format!("{admin_url}{sep}options=-c%20search_path%3D{name}&application_name={name}")
}

/// Creates a schema named `prefix` and random digits ([`random_name`]); its name.
pub(crate) async fn create_random(admin_url: &str, prefix: &str) -> Result<String, Error> {
    let name = random_name(prefix)?;
    execute(admin_url, &format!("CREATE SCHEMA {name}")).await?;
    Ok(name)
}

/// Drops schema `name` with everything in it, if it exists.
pub(crate) async fn drop(admin_url: &str, name: &str) -> Result<(), Error> {
    execute(admin_url, &format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await
}
