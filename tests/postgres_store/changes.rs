//! The change stream between nodes: what another node's writes (or plain SQL) announce, how a
//! lost listener or a missed announcement resyncs, and what an announcement carries.

use apig_appcode::provider::{Change, ChangeStream, CodesDigest};
use apig_appcode::quota::{AppQuota, TimeUnit};
use apig_appcode::store::{
    AppCodeRecord, AppQuotaRecord, PostgresOptions, PostgresStore, Scope, SecretString, Store,
    Timestamp,
};
use apig_appcode::{AppCode, AppKey};

use super::pg::TestDb;
use super::records::{app_in, id};
use super::{
    code, create_announced, delete_announced, expect_remove_id, expect_upsert, key, listening,
    logged_since, next, next_code, open, scope, writer_and_listener, WAIT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_writes_reach_the_change_stream() {
    let Some(db) = TestDb::create("another_nodes_writes_reach_the_change_stream").await else {
        return;
    };
    let (a, b) = (open(&db, key(3)).await, open(&db, key(3)).await);
    let mut changes = listening(&b).await;
    let other_instance = Scope::new("project-a", "instance-2");
    a.create_app(app_in(&scope(), 1)).await.unwrap();
    a.create_app(app_in(&other_instance, 2)).await.unwrap();

    // Another instance's codes are not announced to this one's listeners.
    a.create_app_code(&other_instance, code(2, 9))
        .await
        .unwrap();
    let first = code(1, 1);
    create_announced(&a, &mut changes, &first).await;
    delete_announced(&a, &mut changes, &first).await;

    // A code created and deleted before the listener reads it back is not resurrected.
    let brief = code(1, 2);
    a.create_app_code(&scope(), brief.clone()).await.unwrap();
    a.delete_app_code(&scope(), &id(1), &brief.id)
        .await
        .unwrap();
    match next_code(&mut changes).await {
        Change::Upsert { code, .. } => {
            assert_eq!(code, brief.value);
            expect_remove_id(next_code(&mut changes).await, &brief.id);
        }
        other => expect_remove_id(other, &brief.id),
    }

    // Deleting an app announces each of its codes.
    let (c3, c4) = (code(1, 3), code(1, 4));
    for c in [&c3, &c4] {
        create_announced(&a, &mut changes, c).await;
    }
    assert_eq!(a.delete_app(&scope(), &id(1)).await.unwrap().len(), 2);
    expect_remove_id(next_code(&mut changes).await, &c3.id);
    expect_remove_id(next_code(&mut changes).await, &c4.id);
}

/// The next change on `stream` that `pick` takes, past the other changes an app's write
/// announces with it (its ACL, signing key and quota are read back together).
async fn next_of_app<T>(stream: &mut ChangeStream, pick: fn(Change) -> Result<T, Change>) -> T {
    loop {
        match pick(next(stream).await) {
            Ok(picked) => return picked,
            Err(
                Change::AppAcl { acl: None, .. } | Change::AppKey { .. } | Change::AppQuota { .. },
            ) => {}
            Err(other) => panic!("expected another change of an app, got {other:?}"),
        }
    }
}

/// The next change of an app's quota on `stream`.
async fn next_quota(stream: &mut ChangeStream) -> (String, Option<AppQuota>) {
    next_of_app(stream, |change| match change {
        Change::AppQuota { app_id, quota } => Ok((app_id, quota.map(|q| (*q).clone()))),
        other => Err(other),
    })
    .await
}

/// A node that writes and another, on `options`, and what each hears: `[other, own]`. Every
/// change must reach both, the writer's own stream too.
async fn writer_and_both_streams(
    db: &TestDb,
    options: PostgresOptions,
) -> (PostgresStore, PostgresStore, [ChangeStream; 2]) {
    let (a, b) = (open(db, options.clone()).await, open(db, options).await);
    let streams = [listening(&b).await, listening(&a).await];
    (a, b, streams)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_changes_reach_every_node_and_the_writer() {
    let Some(db) = TestDb::create("quota_changes_reach_every_node_and_the_writer").await else {
        return;
    };
    let (a, _b, [mut other, mut own]) = writer_and_both_streams(&db, PostgresOptions::new()).await;
    a.create_app(app_in(&scope(), 1)).await.unwrap();
    // The app's creation (its signing key) is announced with its quota: none yet.
    for stream in [&mut other, &mut own] {
        assert_eq!(next_quota(stream).await, (id(1), None));
    }
    let limit = |calls| AppQuota::new(calls, TimeUnit::Minute, 1).unwrap();
    let record = AppQuotaRecord {
        id: "quota-1".into(),
        name: "gold".into(),
        quota: limit(100),
        remark: String::new(),
        create_time: Timestamp::from_unix_nanos(1),
        bound_app_num: 0,
    };
    a.create_app_quota(&scope(), record.clone()).await.unwrap();
    let at = Timestamp::from_unix_nanos(2);
    a.bind_app_quota(&scope(), "quota-1", &[id(1)], at)
        .await
        .unwrap();
    // Without a reset time, a bound app's windows start at its binding (2 ns: second 0). The
    // writer's own stream carries the change too, the same quota its management call applied.
    let anchored = |calls| limit(calls).reset_time(std::time::UNIX_EPOCH);
    for stream in [&mut other, &mut own] {
        assert_eq!(next_quota(stream).await, (id(1), Some(anchored(100))));
    }
    let changed = AppQuotaRecord {
        quota: limit(5),
        ..record
    };
    a.update_app_quota(&scope(), "quota-1", changed)
        .await
        .unwrap();
    assert_eq!(next_quota(&mut other).await, (id(1), Some(anchored(5))));
    a.unbind_app_quota(&scope(), "quota-1", &id(1))
        .await
        .unwrap();
    assert_eq!(next_quota(&mut other).await, (id(1), None));
}

/// The next change of an app's signing key on `stream`.
async fn next_key(stream: &mut ChangeStream) -> (String, Option<AppKey>) {
    next_of_app(stream, |change| match change {
        Change::AppKey { app_id, key } => Ok((app_id, key.map(|k| (*k).clone()))),
        other => Err(other),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_reach_every_node_and_the_writer() {
    let Some(db) = TestDb::create("key_changes_reach_every_node_and_the_writer").await else {
        return;
    };
    let (a, _b, [mut other, mut own]) = writer_and_both_streams(&db, key(5)).await;
    let app = app_in(&scope(), 1);
    a.create_app(app.clone()).await.unwrap();
    let first = AppKey::new(app.app_key.as_str(), app.app_secret.expose());
    for stream in [&mut other, &mut own] {
        assert_eq!(next_key(stream).await, (id(1), Some(first.clone())));
    }
    // A secret reset: every node, the writer's too, gets the new secret.
    let mut reset = apig_appcode::store::AppChanges::at(Timestamp::from_unix_nanos(9));
    reset.app_secret = Some(SecretString::new("ResetSecret00000000000000000000"));
    a.update_app(&scope(), &id(1), reset).await.unwrap();
    let now = AppKey::new(app.app_key.as_str(), "ResetSecret00000000000000000000");
    for stream in [&mut other, &mut own] {
        assert_eq!(next_key(stream).await, (id(1), Some(now.clone())));
    }
    // Deleted: no key.
    a.delete_app(&scope(), &id(1)).await.unwrap();
    for stream in [&mut other, &mut own] {
        assert_eq!(next_key(stream).await, (id(1), None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_relays_its_own_deletions_but_not_its_creations() {
    let Some(db) = TestDb::create("a_node_relays_its_own_deletions_but_not_its_creations").await
    else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    let mut changes = listening(&store).await;
    store.create_app(app_in(&scope(), 1)).await.unwrap();
    let record = code(1, 1);
    store
        .create_app_code(&scope(), record.clone())
        .await
        .unwrap();
    // The creation (cached by this node's management API already) is skipped; the deletion
    // comes through, in case the caller never got to evict it.
    delete_announced(&store, &mut changes, &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_reconnects_and_resyncs() {
    let Some(db) = TestDb::create("a_lost_listener_reconnects_and_resyncs").await else {
        return;
    };
    let (a, _b, mut changes) = writer_and_listener(&db).await;
    let admin = db.client().await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                   WHERE application_name = $1) t",
            &[&format!("{} listener", db.schema())],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "one listener connection");
    // Reconnected: a resync first (what was missed is only in a full snapshot)...
    assert!(matches!(next_code(&mut changes).await, Change::Resync));
    // ...then announcements flow again.
    create_announced(&a, &mut changes, &code(1, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_announcement_is_told_by_its_revision() {
    let Some(db) = TestDb::create("a_missed_announcement_is_told_by_its_revision").await else {
        return;
    };
    let (a, b, mut changes) = writer_and_listener(&db).await;
    // The listener's own creation is not relayed, but its revision counts: the next write is
    // in order, and comes through with no resync.
    let own = code(1, 1);
    b.create_app_code(&scope(), own.clone()).await.unwrap();
    create_announced(&a, &mut changes, &code(1, 2)).await;

    // A write whose announcement never arrives: its revision and log entry, no NOTIFY.
    db.client()
        .await
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO app_code_log (instance_id, revision, ord, kind, app_id, app_code_id)
             SELECT instance_id, revision + 1, 1, 'D', '{}', '{}' FROM instance_revisions
             WHERE instance_id = 'instance-1';
             UPDATE instance_revisions SET revision = revision + 1
             WHERE instance_id = 'instance-1';
             COMMIT",
            own.app_id, own.id
        ))
        .await
        .unwrap();
    // The next announcement is two revisions past the last one: a resync first, then the
    // change itself.
    let second = code(1, 3);
    a.create_app_code(&scope(), second.clone()).await.unwrap();
    assert!(matches!(next_code(&mut changes).await, Change::Resync));
    expect_upsert(next_code(&mut changes).await, &second);
    // In order again from there.
    delete_announced(&a, &mut changes, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_carry_ids_only() {
    let Some(db) = TestDb::create("announcements_carry_ids_only").await else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    // A plain session listening on the instance's channel sees every payload.
    let (client, mut connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", store.channel("instance-1")))
        .await
        .unwrap();

    let app = app_in(&scope(), 1);
    store.create_app(app.clone()).await.unwrap();
    let (c1, c2) = (code(1, 1), code(1, 2));
    store.create_app_code(&scope(), c1.clone()).await.unwrap();
    store.create_app_code(&scope(), c2.clone()).await.unwrap();
    store
        .delete_app_code(&scope(), &id(1), &c1.id)
        .await
        .unwrap();
    store.delete_app(&scope(), &id(1)).await.unwrap();
    let mut payloads = Vec::new();
    for _ in 0..6 {
        let payload = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        payloads.push(payload);
    }
    // The app's creation and deletion (its signing key) name the app only.
    let named = [None, Some(&c1), Some(&c2), Some(&c1), Some(&c2), None];
    for (payload, c) in payloads.iter().zip(named) {
        assert!(payload.contains(&app.id), "{payload}");
        if let Some(c) = c {
            assert!(payload.contains(&c.id), "{payload}");
        }
        for secret in [
            c1.value.expose(),
            c2.value.expose(),
            app.app_secret.expose(),
        ] {
            assert!(!payload.contains(secret), "{payload}");
        }
        assert!(payload.len() < 120, "ids only: {payload}");
    }
}

/// Inserts AppCode `record` with plain SQL, as an operator would in psql (a store without a
/// master key holds values in clear, with their SHA-256 as the digest).
async fn insert_with_sql(sql: &tokio_postgres::Client, record: &AppCodeRecord) {
    sql.execute(
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
         SELECT seq, instance_id, $2, convert_to($3, 'UTF8'), sha256(convert_to($3, 'UTF8')), $4
         FROM apps WHERE id = $1",
        &[
            &record.app_id,
            &record.id,
            &record.value.expose(),
            &record.create_time.unix_nanos(),
        ],
    )
    .await
    .unwrap();
}

/// Change events until a resync, and the resync's position among them.
async fn until_resync(stream: &mut ChangeStream) -> Vec<Change> {
    let mut seen = Vec::new();
    loop {
        match next(stream).await {
            Change::Resync => return seen,
            change => seen.push(change),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_with_plain_sql_are_logged_and_announced() {
    let Some(db) = TestDb::create("changes_made_with_plain_sql_are_logged_and_announced").await
    else {
        return;
    };
    let (a, _b, mut changes) = writer_and_listener(&db).await;
    let sql = db.client().await;
    let first = code(1, 1);
    a.create_app_code(&scope(), first.clone()).await.unwrap();
    expect_upsert(next_code(&mut changes).await, &first);
    let start = a
        .instance_snapshot("instance-1")
        .await
        .unwrap()
        .revision
        .unwrap();

    // From a session whose search_path does not name the store's schema.
    let elsewhere = db.client().await;
    elsewhere
        .batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    let delete = format!("DELETE FROM {}.app_codes WHERE id = $1", db.schema());
    elsewhere.execute(&delete, &[&first.id]).await.unwrap();
    expect_remove_id(next_code(&mut changes).await, &first.id);
    let second = code(1, 2);
    insert_with_sql(&sql, &second).await;
    expect_upsert(next_code(&mut changes).await, &second);
    // A new value under the same ID: the old one goes, the new one comes.
    let renewed = AppCodeRecord {
        value: AppCode::parse(&format!("PgRenewed{}", "r".repeat(60))).unwrap(),
        ..second.clone()
    };
    sql.execute(
        "UPDATE app_codes SET value = convert_to($2, 'UTF8'),
                              value_digest = sha256(convert_to($2, 'UTF8'))
         WHERE id = $1",
        &[&second.id, &renewed.value.expose()],
    )
    .await
    .unwrap();
    expect_remove_id(next_code(&mut changes).await, &second.id);
    expect_upsert(next_code(&mut changes).await, &renewed);
    // Each statement was a write of its own, logged like the API's.
    let logged = logged_since(&a, start).await;
    assert_eq!(logged.revision, start + 3);
    assert_eq!(logged.created, std::slice::from_ref(&renewed));
    assert_eq!(
        logged.deleted.iter().map(|d| &d.id).collect::<Vec<_>>(),
        [&first.id, &second.id]
    );

    // A bulk statement: one revision, its first changes announced one by one, then one
    // announcement to catch up on the rest.
    sql.batch_execute(
        "INSERT INTO app_codes (app_seq, instance_id, id, value, value_digest, create_time)
         SELECT a.seq, a.instance_id, 'bulk' || n, convert_to(v, 'UTF8'),
                sha256(convert_to(v, 'UTF8')), 0
         FROM apps a, generate_series(1, 200) n,
              LATERAL (SELECT 'BulkValue' || lpad(n::text, 8, '0') || repeat('b', 60) AS v) x",
    )
    .await
    .unwrap();
    let one_by_one = until_resync(&mut changes).await;
    assert_eq!(one_by_one.len(), 32, "{one_by_one:?}");
    sql.batch_execute("DELETE FROM app_codes WHERE id LIKE 'bulk%'")
        .await
        .unwrap();
    let one_by_one = until_resync(&mut changes).await;
    assert_eq!(one_by_one.len(), 32);
    assert!(one_by_one
        .iter()
        .all(|c| matches!(c, Change::RemoveId(id) if id.starts_with("bulk"))));
    let bulk = logged_since(&a, logged.revision).await;
    assert_eq!(bulk.revision, logged.revision + 2);
    assert!(bulk.created.is_empty());
    assert_eq!(bulk.deleted.len(), 200);
    // What the store holds and what it says it holds agree.
    let digest = a.instance_digest("instance-1").await.unwrap().unwrap();
    assert_eq!(digest.revision, bulk.revision);
    let mut expected = apig_appcode::provider::CodesDigest::default();
    expected.add(&renewed.app_id, &renewed.id);
    assert_eq!(digest.codes, expected);
    // An app's signing key changed with SQL reaches the nodes too.
    sql.execute(
        "UPDATE apps SET app_key = 'sql-set-key-0001' WHERE id = $1",
        &[&id(1)],
    )
    .await
    .unwrap();
    let (app, key) = next_key(&mut changes).await;
    assert_eq!(app, id(1));
    assert_eq!(key.unwrap().key(), "sql-set-key-0001");
}

/// The digest is read a slice of apps per statement (so that a large instance is bounded by
/// its progress, not by one call's timeout): apps and codes far apart in sequence, with empty
/// slices between them, sum as one, and another instance's codes in the same slices count for
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_over_many_slices_is_the_digest_of_every_code() {
    let Some(db) = TestDb::create("a_digest_over_many_slices_is_the_digest_of_every_code").await
    else {
        return;
    };
    let store = open(&db, PostgresOptions::new()).await;
    let sql = db.client().await;
    let restart =
        |table: &str, seq: i64| format!("ALTER TABLE {table} ALTER COLUMN seq RESTART WITH {seq}");
    let mut expected = CodesDigest::default();
    for (app, seq) in [(1, 1_i64), (2, 70_000), (3, 260_000)] {
        sql.batch_execute(&restart("apps", seq)).await.unwrap();
        store.create_app(app_in(&scope(), app)).await.unwrap();
        for (n, code_seq) in [(app * 10 + 1, 1_000_000_i64), (app * 10 + 2, 1_700_000)] {
            sql.batch_execute(&restart("app_codes", code_seq + seq))
                .await
                .unwrap();
            let record = code(app, n);
            store
                .create_app_code(&scope(), record.clone())
                .await
                .unwrap();
            expected.add(&record.app_id, &record.id);
        }
    }
    let other = Scope::new("project-a", "instance-2");
    sql.batch_execute(&restart("apps", 70_001)).await.unwrap();
    store.create_app(app_in(&other, 4)).await.unwrap();
    store.create_app_code(&other, code(4, 41)).await.unwrap();
    let digest = store.instance_digest("instance-1").await.unwrap().unwrap();
    assert_eq!(digest.codes, expected);
    assert_eq!(digest.codes.count, 6);
}
