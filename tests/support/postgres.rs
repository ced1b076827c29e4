//! A PostgreSQL schema of its own for each test, so tests run in parallel on one database.
//!
//! Tests that need PostgreSQL read `APIG_TEST_DATABASE_URL`. Without it they print that they
//! were skipped and pass, unless `CI` is set: then they fail, so CI cannot skip them silently.

#![allow(dead_code)]

#[path = "external.rs"]
mod external;
#[path = "pg_schema.rs"]
mod pg_schema;
pub(crate) use external::skip;
use external::url_or_skip;

/// The variable that names the test database.
pub(crate) const ENV: &str = "APIG_TEST_DATABASE_URL";

/// A schema created for one test and dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub(crate) struct TestDb {
    admin_url: String,
    schema: String,
    url: String,
}

impl TestDb {
    /// A fresh schema, or `None` (after saying so) when no test database is configured.
    ///
    /// # Panics
    ///
    /// When `CI` is set and `APIG_TEST_DATABASE_URL` is not, or the database cannot be used.
    pub(crate) async fn create(test: &str) -> Option<Self> {
        let admin_url = url_or_skip(ENV, "PostgreSQL", "postgres://...", test)?;
        let schema = pg_schema::create_random(&admin_url, "apig_test")
            .await
            .unwrap_or_else(|e| panic!("cannot use the test database ({ENV}): {e}"));
        // The schema also names the connections, so a test can find its store's in
        // pg_stat_activity.
        let url = pg_schema::schema_url(&admin_url, &schema);
        Some(Self {
            admin_url,
            schema,
            url,
        })
    }

    /// The URL of the test's schema: the store's tables go there.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name (also the `application_name` of connections opened with [`url`]).
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    /// Freezes every backend whose `application_name` is `name` (SIGSTOP), or says why it could
    /// not; they are resumed when the guards are dropped, whatever the test's outcome.
    pub(crate) async fn freeze(&self, name: &str) -> Result<Vec<Frozen>, String> {
        let pids: Vec<i32> = self
            .client()
            .await
            .query(
                "SELECT pid FROM pg_stat_activity
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!pids.is_empty(), "no backend named {name}");
        pids.into_iter().map(Frozen::stop).collect()
    }

    /// [`freeze`](Self::freeze), or `None` after saying the test is skipped when this machine
    /// cannot stop a backend (another host, no permission). Under `CI` that is a failure.
    pub(crate) async fn freeze_or_skip(&self, name: &str, what: &str) -> Option<Vec<Frozen>> {
        match self.freeze(name).await {
            Ok(frozen) => Some(frozen),
            Err(why) => skip(
                format_args!("cannot freeze {what} ({why})"),
                format_args!("CI must be able to freeze a local PostgreSQL backend: {why}"),
            ),
        }
    }

    /// A plain client on the test's schema, for inspection.
    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        pg_schema::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database ({ENV}): {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // On a thread of its own: a runtime cannot be started inside the test's, and a drop
        // during a panic must clean up too.
        let (url, schema) = (self.admin_url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(pg_schema::drop(&url, &schema))
                .unwrap_or_else(|e| panic!("{e}"));
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("could not drop schema {}", self.schema);
        }
    }
}

/// Sends SIGCONT to a stopped process when dropped, so a failing test never leaves it frozen.
pub(crate) struct Frozen(i32);

impl Frozen {
    /// Stops process `pid` with SIGSTOP, or says why it could not.
    pub(crate) fn stop(pid: i32) -> Result<Self, String> {
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        status
            .success()
            .then_some(Self(pid))
            .ok_or_else(|| format!("kill -STOP {pid}: {status}"))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}
