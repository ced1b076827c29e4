//! A database that answers late, freezes or loses a reader: calls fail as unavailable and
//! recover, listeners outlive it, and connections stay driven by the store's runtime.

use std::time::Duration;

use apig_appcode::store::{PostgresOptions, Store, StoreError};

use super::pg::TestDb;
use super::records::id;
use super::{
    code, create_announced, open, scope, small_pool, store_with_app, writer_and_listener, WAIT,
};

/// A gateway worker runs its own single-threaded runtime, and its AppCode lookups borrow the
/// store's connections. A connection opened there must stay driven by the store's runtime:
/// once that worker is busy or gone, the management API must still get answers on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opened_on_another_runtime_keep_answering() {
    let Some(db) = TestDb::create("connections_opened_on_another_runtime").await else {
        return;
    };
    let store = std::sync::Arc::new(open(&db, PostgresOptions::new().pool_size(4)).await);
    let worker_store = std::sync::Arc::clone(&store);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let scope = scope();
            let ids = [id(1), id(2), id(3)];
            // Concurrent: more than the one idle connection, so new ones are opened here.
            let _ = tokio::join!(
                worker_store.get_app(&scope, &ids[0]),
                worker_store.get_app(&scope, &ids[1]),
                worker_store.get_app(&scope, &ids[2]),
            );
        });
        let _ = done_tx.send(());
        // The runtime stays, but nothing polls its tasks any more.
        std::thread::sleep(Duration::from_secs(3600));
        drop(runtime);
    });
    done_rx.await.unwrap();

    let scope = scope();
    let ids = [id(4), id(5), id(6), id(7)];
    let answers = tokio::time::timeout(WAIT, async {
        tokio::join!(
            store.get_app(&scope, &ids[0]),
            store.get_app(&scope, &ids[1]),
            store.get_app(&scope, &ids[2]),
            store.get_app(&scope, &ids[3]),
        )
    })
    .await
    .expect("every pooled connection answers on the store's runtime");
    for answer in [answers.0, answers.1, answers.2, answers.3] {
        assert!(matches!(answer, Err(StoreError::AppNotFound)), "{answer:?}");
    }
}

/// A database that answers late is not a dead one. The listener's backend is frozen for
/// longer than two heartbeat periods, then thawed: the listener must still be there, without
/// the reconnect and full resync that a busy node cannot afford.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_outlives_a_database_that_answers_late() {
    let Some(db) = TestDb::create("a_listener_outlives_a_database_that_answers_late").await else {
        return;
    };
    let (a, _b, mut changes) = writer_and_listener(&db).await;
    // Skipped when the database runs elsewhere, or as a user this one cannot signal.
    let listener = format!("{} listener", db.schema());
    let Some(frozen) = db.freeze_or_skip(&listener, "the listener's backend").await else {
        return;
    };
    assert_eq!(frozen.len(), 1, "one listener connection");
    // Two heartbeat periods (5 s each) and then some: the old 5 s deadline would have dropped
    // the connection by now.
    tokio::time::sleep(Duration::from_secs(12)).await;
    drop(frozen);
    // The very next event is the announcement: no resync came first.
    create_announced(&a, &mut changes, &code(1, 1)).await;
}

/// A database that stops answering (a stopped server, a network partition) must not hold a
/// call for as long as it lasts: with the backend of the store's one pooled connection frozen,
/// a write and then a read fail as unavailable, naming what timed out, and neither leaves the
/// pool stuck; once the database answers again, the store works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_frozen_database_fail_as_unavailable_and_recover() {
    let Some(db) = TestDb::create("calls_on_a_frozen_database_fail_as_unavailable").await else {
        return;
    };
    let store = store_with_app(&db, small_pool(1, Duration::from_secs(2))).await;
    let Some(frozen) = db.freeze_or_skip(db.schema(), "the store's backend").await else {
        return;
    };
    let write = returns("a write", store.create_app_code(&scope(), code(1, 1))).await;
    expect_unavailable(write, "create AppCode");
    // The frozen connection was closed, not returned: the pool's one slot is free again, and a
    // new connection (a new backend, not frozen) answers.
    let app = returns("a read", store.get_app(&scope(), &id(1))).await;
    assert_eq!(app.unwrap().id, id(1));

    let frozen_too = db.freeze(db.schema()).await.unwrap();
    let read = returns("a read", store.get_app(&scope(), &id(1))).await;
    expect_unavailable(read, "read app");
    drop((frozen, frozen_too));

    // Thawed: the write that timed out took nothing with it, and the store works.
    let record = code(1, 1);
    let write = returns("a write", store.create_app_code(&scope(), record.clone())).await;
    assert_eq!(write.unwrap(), record);
    let read = returns("a read", store.list_app_codes(&scope(), &id(1), 0, 10)).await;
    assert_eq!(read.unwrap().items, [record]);
}

/// A whole-instance read has no statement timeout (it lasts as long as the instance needs), so
/// one the store gives up on must be cancelled in the database: here the read waits on a lock
/// another session holds, sends nothing, and is given up after the call timeout; its backend
/// then stops waiting while the lock is still held, rather than run the read once it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_read_given_up_is_cancelled_in_the_database() {
    let Some(db) = TestDb::create("a_snapshot_read_given_up_is_cancelled").await else {
        return;
    };
    let store = store_with_app(&db, small_pool(2, Duration::from_secs(1))).await;
    store.create_app_code(&scope(), code(1, 1)).await.unwrap();
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE app_codes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let read = returns("a snapshot", store.instance_snapshot("instance-1")).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    let inspector = db.client().await;
    let waiting = || async {
        let row = inspector
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&db.schema()],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while waiting().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the read given up on still waits in the database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    // The store works on.
    let snapshot = returns("a snapshot", store.instance_snapshot("instance-1")).await;
    assert_eq!(snapshot.unwrap().codes, [code(1, 1)]);
}

/// `call`'s outcome; [`WAIT`] (far above the call timeout) only turns a hang into a failure.
async fn returns<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, call)
        .await
        .unwrap_or_else(|_| panic!("{what} on a frozen database hung"))
}

fn expect_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, context: &str) {
    match result {
        Err(e @ StoreError::Unavailable(_)) => {
            let shown = e.to_string();
            assert!(
                shown.contains(context) && shown.contains("no answer"),
                "{shown}"
            );
        }
        other => panic!("expected the store to be unavailable ({context}), got {other:?}"),
    }
}
