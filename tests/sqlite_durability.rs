//! `SqliteStore` across processes: acknowledged writes survive `kill -9`, two processes share one
//! quota, and an encrypted file (with its WAL) reveals no AppCode or app secret.
//!
//! Run: `cargo test --features sqlite --test sqlite_durability`.
//!
//! Child processes are this test binary itself, re-run with the test's name and `CHILD_ROLE` in
//! its environment; such a run acts as the child instead of as the test.
#![cfg(feature = "sqlite")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use apig_appcode::store::{
    App, AppCodeRecord, KeyMismatch, MasterKey, Scope, SqliteOptions, SqliteStore, Store,
    StoreError,
};
use apig_appcode::AppCode;

#[path = "support/records.rs"]
mod records;
use records::{app_in, code};

const CHILD_ROLE: &str = "APIG_SQLITE_TEST_CHILD_ROLE";
const CHILD_DB: &str = "APIG_SQLITE_TEST_CHILD_DB";
const CHILD_INDEX: &str = "APIG_SQLITE_TEST_CHILD_INDEX";

/// The writer stops by itself after this many codes if nobody kills it.
const MAX_WRITES: u64 = 100_000;

/// Test-only key, known to parent and child.
fn key() -> MasterKey {
    MasterKey::from_bytes(std::array::from_fn(|i| 0x30 + i as u8))
}

fn keyed() -> SqliteOptions {
    SqliteOptions::new().master_key(key())
}

fn scope() -> Scope {
    Scope::new("project-d", "instance-d")
}

fn app(n: u64) -> App {
    app_in(&scope(), n)
}

/// The `i`-th code the writer creates, recomputable by the parent: five per app.
fn record(i: u64) -> AppCodeRecord {
    code(i / 5, i)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Whether this process is a child started by `test`; if so, the role it plays.
fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// Re-runs this test binary as a child playing `role` in `test`.
fn spawn_child(test: &str, role: &str, db: &Path, index: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD_ROLE, role)
        .env(CHILD_DB, db)
        .env(CHILD_INDEX, index.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn child_db() -> PathBuf {
    PathBuf::from(std::env::var_os(CHILD_DB).unwrap())
}

/// Prints one protocol line and flushes it; `false` once the parent is gone.
fn say(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// The next line starting with `prefix` (libtest prints its own lines too), without it.
fn expect_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) -> String {
    for line in lines.by_ref() {
        if let Some(rest) = line.unwrap().strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    panic!("child exited before printing {prefix:?}");
}

// ---------------------------------------------------------------------------------------------

/// Child: creates apps and codes in a loop, acknowledging each code after `Ok`.
fn write_until_killed() {
    runtime().block_on(async {
        let store = SqliteStore::open(child_db(), keyed()).unwrap();
        for i in 0..MAX_WRITES {
            if i % 5 == 0 {
                store.create_app(app(i / 5)).await.unwrap();
            }
            store.create_app_code(&scope(), record(i)).await.unwrap();
            if !say(&format!("ACK {i}")) {
                return;
            }
        }
    });
}

#[test]
fn acknowledged_codes_survive_sigkill() {
    const TEST: &str = "acknowledged_codes_survive_sigkill";
    if child_role().as_deref() == Some("writer") {
        return write_until_killed();
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let mut child = spawn_child(TEST, "writer", &db, 0);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut acked: Vec<u64> = Vec::new();
    while acked.len() < 60 {
        acked.push(expect_line(&mut lines, "ACK ").parse().unwrap());
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the writer must still be writing when it is killed"
    );
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // Acknowledgements still in the pipe were printed before the kill: they count too.
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("ACK ") {
            acked.push(n.parse().unwrap());
        }
    }
    assert_eq!(acked, (0..acked.len() as u64).collect::<Vec<_>>());

    let raw = rusqlite::Connection::open(&db).unwrap();
    let check: String = raw
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(raw);

    runtime().block_on(async {
        let store = SqliteStore::open(&db, keyed()).unwrap();
        for &i in &acked {
            let expected = record(i);
            let found = store
                .get_app_code(&scope(), &expected.app_id, &expected.id)
                .await
                .unwrap_or_else(|e| panic!("acknowledged code {i} lost: {e}"));
            assert_eq!(found.value.expose(), expected.value.expose());
            assert_eq!(found, expected);
        }
        // At most the one write in flight at the kill went through unacknowledged.
        let all = store.instance_app_codes("instance-d").await.unwrap();
        assert!(
            all.len() == acked.len() || all.len() == acked.len() + 1,
            "{} codes stored, {} acknowledged",
            all.len(),
            acked.len()
        );
        // The store is still writable after recovery (a fresh app: the killed writer may have
        // created the next app without its first code).
        let fresh = app(MAX_WRITES);
        store.create_app(fresh.clone()).await.unwrap();
        let mut r = record(MAX_WRITES);
        r.app_id = fresh.id;
        store.create_app_code(&scope(), r).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------

const QUOTA_APP: u64 = 7;
const PER_CHILD: u64 = 25;

/// Child: opens the (possibly new) shared file, makes sure the app exists, waits for `GO`, then
/// runs its creations at once and reports `RESULT <ok> <quota exceeded>`.
fn create_codes_on_signal() {
    let index: u64 = std::env::var(CHILD_INDEX).unwrap().parse().unwrap();
    runtime().block_on(async {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(child_db(), keyed()).unwrap());
        match store.create_app(app(QUOTA_APP)).await {
            Ok(_) | Err(StoreError::AppNameExists) => {}
            Err(e) => panic!("creating the shared app: {e}"),
        }
        assert!(say("READY"));
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).unwrap();
        assert_eq!(go.trim(), "GO");

        let mut set = tokio::task::JoinSet::new();
        for n in 0..PER_CHILD {
            let store = Arc::clone(&store);
            let mut r = record(1000 * (index + 1) + n);
            r.app_id = app(QUOTA_APP).id;
            set.spawn(async move { store.create_app_code(&scope(), r).await });
        }
        let (mut ok, mut quota) = (0, 0);
        while let Some(result) = set.join_next().await {
            match result.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::AppCodeQuotaExceeded) => quota += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert!(say(&format!("RESULT {ok} {quota}")));
    });
}

#[test]
fn two_processes_share_one_quota() {
    const TEST: &str = "two_processes_share_one_quota";
    if child_role().as_deref() == Some("quota") {
        return create_codes_on_signal();
    }
    let dir = tempfile::tempdir().unwrap();
    // A new file: the children also race to create and migrate it.
    let db = dir.path().join("shared.db");
    let mut children: Vec<(Child, std::io::Lines<BufReader<ChildStdout>>)> = (0..2)
        .map(|i| {
            let mut child = spawn_child(TEST, "quota", &db, i);
            let lines = BufReader::new(child.stdout.take().unwrap()).lines();
            (child, lines)
        })
        .collect();
    for (_, lines) in &mut children {
        expect_line(lines, "READY");
    }
    for (child, _) in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "GO").unwrap();
    }
    let (mut ok, mut quota) = (0, 0);
    for (child, lines) in &mut children {
        let result = expect_line(lines, "RESULT ");
        let counts: Vec<u64> = result.split(' ').map(|n| n.parse().unwrap()).collect();
        ok += counts[0];
        quota += counts[1];
        assert!(child.wait().unwrap().success());
    }
    assert_eq!((ok, quota), (5, 45));

    runtime().block_on(async {
        let store = SqliteStore::open(&db, keyed()).unwrap();
        let page = store
            .list_app_codes(&scope(), &app(QUOTA_APP).id, 0, 100)
            .await
            .unwrap();
        assert_eq!((page.total, page.items.len()), (5, 5));
    });
}

// ---------------------------------------------------------------------------------------------

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// File bytes as text to search for ASCII secrets: lossy decoding keeps every ASCII byte in
/// place, so no occurrence is lost or made up, and the standard library's string search is fast
/// even in a debug build.
fn searchable(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Fills a store with apps and codes; returns every secret it holds (AppCode values and app
/// secrets) and a visible marker (an app name).
async fn fill(store: &SqliteStore) -> (Vec<String>, String) {
    let mut secrets = Vec::new();
    for a in 0..10 {
        let mut app = app(a);
        app.name = format!("visible_marker_{a}");
        secrets.push(app.app_secret.expose().to_owned());
        store.create_app(app).await.unwrap();
        for n in 0..5 {
            let mut r = record(5 * a + n);
            if n % 2 == 0 {
                r.value = AppCode::generate();
            }
            secrets.push(r.value.expose().to_owned());
            store.create_app_code(&scope(), r).await.unwrap();
        }
    }
    (secrets, "visible_marker_3".to_owned())
}

#[test]
fn a_copied_encrypted_database_reveals_no_secret() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (enc_dir, plain_dir, copy_dir) = (
        dir.path().join("enc"),
        dir.path().join("plain"),
        dir.path().join("copy"),
    );
    for d in [&enc_dir, &plain_dir, &copy_dir] {
        std::fs::create_dir(d).unwrap();
    }

    // The stores stay open, so recent writes are still in the WAL file.
    let enc = SqliteStore::open(enc_dir.join("apig.db"), keyed()).unwrap();
    let plain = SqliteStore::open(plain_dir.join("apig.db"), SqliteOptions::new()).unwrap();
    let (secrets, marker) = rt.block_on(fill(&enc));
    let (plain_secrets, _) = rt.block_on(fill(&plain));

    for name in ["apig.db", "apig.db-wal"] {
        std::fs::copy(enc_dir.join(name), copy_dir.join(name)).unwrap();
    }
    let enc_files = read_all(&enc_dir);
    assert!(enc_files
        .iter()
        .any(|(n, b)| n.ends_with("-wal") && !b.is_empty()));
    let everything: Vec<u8> = enc_files.iter().flat_map(|(_, b)| b.clone()).collect();
    // The search works: the app name is stored in clear, and so are a plain store's values.
    assert!(searchable(&everything).contains(&marker));
    let plain_bytes: Vec<u8> = read_all(&plain_dir)
        .into_iter()
        .flat_map(|(_, b)| b)
        .collect();
    let plain_text = searchable(&plain_bytes);
    assert!(plain_secrets
        .iter()
        .all(|s| plain_text.contains(s.as_str())));
    for (name, bytes) in enc_files.iter().chain(&read_all(&copy_dir)) {
        let text = searchable(bytes);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{name} contains a secret in clear"
            );
        }
    }

    // The copy is a working database for the key holder only.
    let copy = copy_dir.join("apig.db");
    let wrong = SqliteOptions::new().master_key(MasterKey::from_bytes([0x77; 32]));
    for (options, expected) in [
        (wrong, KeyMismatch::WrongKey),
        (SqliteOptions::new(), KeyMismatch::MissingKey),
    ] {
        match SqliteStore::open(&copy, options) {
            Err(StoreError::Backend(e)) => {
                assert_eq!(e.downcast_ref::<KeyMismatch>(), Some(&expected));
            }
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    let copied = SqliteStore::open(&copy, keyed()).unwrap();
    let codes = rt
        .block_on(copied.instance_app_codes("instance-d"))
        .unwrap();
    let values: Vec<&str> = codes.iter().map(|r| r.value.expose()).collect();
    let expected_values: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.starts_with("AppSecret"))
        .collect();
    assert_eq!(values, expected_values);
    let read = rt.block_on(copied.get_app(&scope(), &app(3).id)).unwrap();
    assert_eq!(read.app_secret.expose(), app(3).app_secret.expose());
}

#[test]
fn opening_with_a_wrong_key_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("apig.db");
    let store = SqliteStore::open(&db, keyed()).unwrap();
    runtime().block_on(fill(&store));
    drop(store);

    let wrong_hex = "9f".repeat(32);
    let wrong = SqliteOptions::new().master_key(MasterKey::parse(&wrong_hex).unwrap());
    let err = match SqliteStore::open(&db, wrong) {
        Err(e) => e,
        Ok(_) => panic!("a wrong key must not open the database"),
    };
    let StoreError::Backend(inner) = &err else {
        panic!("expected a backend error, got {err:?}");
    };
    assert_eq!(
        inner.downcast_ref::<KeyMismatch>(),
        Some(&KeyMismatch::WrongKey)
    );
    let shown = format!("{err} | {err:?}");
    assert!(shown.contains("master key"), "{shown}");
    assert!(
        !shown.contains("9f9f") && !shown.contains("159, 159"),
        "{shown}"
    );
    // Nothing was changed: the right key still opens it with every code.
    let store = SqliteStore::open(&db, keyed()).unwrap();
    let codes = runtime()
        .block_on(store.instance_app_codes("instance-d"))
        .unwrap();
    assert_eq!(codes.len(), 50);
}
