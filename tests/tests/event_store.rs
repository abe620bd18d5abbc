//! The event store against real PostgreSQL: expected versions, append-only enforcement, and a global
//! reader that never skips or repeats an event, even with many writers and a late-committing transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use pressroom_projector::projections::{Projection, ProjectionError};
use pressroom_projector::runner::{self, RunnerConfig};
use pressroom_projector::status::StatusBoard;
use pressroom_tests::TestDb;
use shared::domain::events::PostEdited;
use shared::domain::{DomainEvent, StreamType};
use shared::store::event_store::{self, EventStoreError, ExpectedVersion, Metadata, RecordedEvent};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn edit(n: usize) -> DomainEvent {
    DomainEvent::PostEdited(PostEdited { title: Some(format!("t{n}")), ..Default::default() })
}

async fn append(pool: &PgPool, stream: Uuid, expected: i32, n: usize) -> Result<i64, EventStoreError> {
    let mut tx = pool.begin().await?;
    let exp = if expected == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(expected) };
    let events: Vec<_> = (0..n).map(edit).collect();
    let a = event_store::append(&mut tx, stream, StreamType::Post, exp, &events, &Metadata::default()).await?;
    tx.commit().await?;
    Ok(a.position)
}

/// Records every event it is given; a second delivery of one bumps `times`.
struct CountingProjection;

impl Projection for CountingProjection {
    type Effect = ();
    fn name(&self) -> &'static str {
        "test_counting"
    }
    fn event_types(&self) -> &'static [&'static str] {
        &["%"]
    }
    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        _: &DomainEvent,
        _: &mut Vec<()>,
    ) -> Result<(), ProjectionError> {
        sqlx::query("insert into test_applied (global_position) values ($1) on conflict (global_position) do update set times = test_applied.times + 1")
            .bind(event.global_position)
            .execute(conn)
            .await?;
        Ok(())
    }
    async fn after_commit(&self, _: Vec<()>) -> bool {
        true
    }
}

async fn start_counting(db: &TestDb) -> (CancellationToken, PgPool) {
    sqlx::query("create table test_applied (global_position bigint primary key, times int not null default 1)")
        .execute(&db.admin)
        .await
        .unwrap();
    sqlx::query("grant all on test_applied to pressroom_app").execute(&db.admin).await.unwrap();
    let pool = db.app_pool().await;
    let shutdown = CancellationToken::new();
    let (wake_tx, wake_rx) = watch::channel(0u64);
    tokio::spawn(runner::listen_for_events(db.direct_url.clone(), wake_tx, shutdown.clone()));
    let config =
        RunnerConfig { direct_url: db.direct_url.clone(), batch_size: 500, poll_interval: Duration::from_millis(100) };
    tokio::spawn(runner::run(
        Arc::new(CountingProjection),
        pool.clone(),
        config,
        wake_rx,
        StatusBoard::default(),
        shutdown.clone(),
    ));
    (shutdown, pool)
}

async fn applied(db: &TestDb) -> (i64, i64) {
    sqlx::query_as("select count(*), coalesce(max(times), 0)::bigint from test_applied")
        .fetch_one(&db.admin)
        .await
        .unwrap()
}

async fn wait_applied(db: &TestDb, n: i64, within: Duration) -> (i64, i64) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = applied(db).await;
        if got.0 >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_appends_with_the_same_expected_version_one_wins_and_the_other_gets_a_typed_conflict() {
    let db = TestDb::fresh().await;
    let pool = db.app_pool().await;
    let stream = Uuid::now_v7();
    append(&pool, stream, 0, 1).await.unwrap();
    let (a, b) = tokio::join!(append(&pool, stream, 1, 1), append(&pool, stream, 1, 1));
    let results = [a, b];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "exactly one append wins");
    assert!(results.iter().any(|r| matches!(r, Err(EventStoreError::Conflict { .. }))), "the loser gets Conflict");
    // A stale expectation without a race is a conflict too, never a gap or an overwrite.
    assert!(matches!(append(&pool, stream, 1, 1).await, Err(EventStoreError::Conflict { actual: 2, .. })));
    assert!(matches!(append(&pool, stream, 5, 1).await, Err(EventStoreError::Conflict { .. })));
    let versions: Vec<i32> = sqlx::query_scalar("select version from events where stream_id = $1 order by version")
        .bind(stream)
        .fetch_all(&db.admin)
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
}

#[tokio::test]
async fn update_delete_and_truncate_on_events_fail_for_every_role() {
    let db = TestDb::fresh().await;
    let app = db.app_pool().await;
    append(&app, Uuid::now_v7(), 0, 2).await.unwrap();
    for pool in [&app, &db.admin] {
        for sql in ["update events set payload = '{}'", "delete from events", "truncate events"] {
            let r = sqlx::query(sql).execute(pool).await;
            assert!(r.is_err(), "`{sql}` must fail");
        }
    }
    let n: i64 = sqlx::query_scalar("select count(*) from events").fetch_one(&db.admin).await.unwrap();
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_writers_20k_events_are_projected_exactly_once_none_skipped() {
    let db = TestDb::fresh().await;
    let (shutdown, pool) = start_counting(&db).await;
    // 16 writers × 25 streams × 50 events (appended 5 at a time) = 20,000 events.
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let stream = Uuid::now_v7();
                    for batch in 0..10 {
                        append(&pool, stream, batch * 5, 5).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let (count, max_times) = wait_applied(&db, 20_000, Duration::from_secs(120)).await;
    shutdown.cancel();
    assert_eq!(count, 20_000, "every event applied");
    assert_eq!(max_times, 1, "no event applied twice");
    let missing: i64 = sqlx::query_scalar(
        "select count(*) from events e where not exists (select 1 from test_applied a where a.global_position = e.global_position)",
    )
    .fetch_one(&db.admin)
    .await
    .unwrap();
    assert_eq!(missing, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_held_open_is_never_skipped_while_a_thousand_later_events_commit() {
    let db = TestDb::fresh().await;
    let (shutdown, pool) = start_counting(&db).await;
    // The slow writer: appends, then holds its transaction open.
    let mut slow = pool.begin().await.unwrap();
    let slow_stream = Uuid::now_v7();
    let held = event_store::append(
        &mut slow,
        slow_stream,
        StreamType::Post,
        ExpectedVersion::NoStream,
        &[edit(0)],
        &Metadata::default(),
    )
    .await
    .unwrap();
    for _ in 0..100 {
        append(&pool, Uuid::now_v7(), 0, 10).await.unwrap();
    }
    // The later events are committed, but the projection must not move past the open transaction.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (count, _) = applied(&db).await;
    assert_eq!(count, 0, "nothing past the held-open transaction may be applied yet");
    let cp: i64 = sqlx::query_scalar("select global_position from read.checkpoints where name = 'test_counting'")
        .fetch_optional(&db.admin)
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(cp < held.position || cp == 0, "checkpoint {cp} passed the open append at {}", held.position);
    slow.commit().await.unwrap();
    let (count, max_times) = wait_applied(&db, 1001, Duration::from_secs(30)).await;
    shutdown.cancel();
    assert_eq!((count, max_times), (1001, 1));
    let got: bool = sqlx::query_scalar("select exists(select 1 from test_applied where global_position = $1)")
        .bind(held.position)
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert!(got, "the late-committing event was projected");
}

/// A TCP relay to the primary that counts the bytes its clients send; returns its port and the count.
async fn counting_relay(db: &TestDb) -> (u16, Arc<std::sync::atomic::AtomicU64>) {
    let primary: std::net::SocketAddr = {
        let opts: sqlx::postgres::PgConnectOptions = db.direct_url.parse().unwrap();
        format!("127.0.0.1:{}", opts.get_port()).parse().unwrap()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(primary).await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = async {
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        counter.fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let downstream = tokio::io::copy(&mut server_read, &mut client_write);
                let _ = tokio::join!(upstream, downstream);
            });
        }
    });
    (port, sent)
}

/// The backend behind a leased connection, asked in one statement; the lease is settled with the outcome,
/// as the draft path settles it.
async fn backend_pid(mut lease: shared::store::db::Lease) -> i32 {
    let pid = sqlx::query_scalar("select pg_backend_pid()").fetch_one(lease.conn()).await;
    lease.settle(&pid);
    pid.unwrap()
}

#[tokio::test]
async fn a_statement_connection_goes_back_without_another_round_trip_and_is_reused() {
    let db = TestDb::fresh().await;
    let (port, sent) = counting_relay(&db).await;
    let url = format!("postgres://pressroom_app@127.0.0.1:{port}/{}", db.name);
    let pool = shared::store::db::pool(&url, 4, "pressroom-tests").unwrap();
    let statements = shared::store::db::StatementConnections::new(pool, 4);
    let pid = backend_pid(statements.acquire().await.unwrap()).await;
    let after_statement = sent.load(std::sync::atomic::Ordering::SeqCst);
    // sqlx's pool would ping here: another message to the server after the answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), after_statement, "nothing sent on release");

    let second = backend_pid(statements.acquire().await.unwrap()).await;
    assert_eq!(second, pid, "the released connection is handed out again");
}

#[tokio::test]
async fn a_statement_connection_whose_statement_was_cancelled_is_never_handed_out_again() {
    let db = TestDb::fresh().await;
    let pool = shared::store::db::pool(&db.direct_url, 4, "pressroom-tests").unwrap();
    let statements = shared::store::db::StatementConnections::new(pool, 4);
    let mut lease = statements.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()").fetch_one(lease.conn()).await.unwrap();
    let slow = sqlx::query("select pg_sleep(2)").execute(lease.conn());
    assert!(tokio::time::timeout(Duration::from_millis(200), slow).await.is_err(), "the statement was cut off");
    drop(lease);

    let other = backend_pid(statements.acquire().await.unwrap()).await;
    assert_ne!(other, pid, "a connection left mid-statement is closed, not reused");
}

#[tokio::test]
async fn a_group_of_new_streams_appends_each_whose_guard_holds_and_whose_slug_is_free_and_none_of_the_rest() {
    let db = TestDb::fresh().await;
    let pool = &db.admin;
    let author = Uuid::now_v7();
    append(pool, author, 0, 1).await.unwrap();
    sqlx::query("insert into slug_reservations (slug, post_id) values ('taken', $1)")
        .bind(Uuid::now_v7())
        .execute(pool)
        .await
        .unwrap();
    let (one, two) = ([edit(1)], [edit(1), edit(2)]);
    let meta = Metadata::default();
    let stream = |events, guard_version: Option<i32>, slug| event_store::NewStream {
        id: Uuid::now_v7(),
        stream_type: StreamType::Post,
        events,
        metadata: &meta,
        guard: guard_version.map(|version| event_store::Guard { stream_id: author, version }),
        slug,
    };
    let streams = [
        stream(&one[..], Some(1), Some("fresh")),
        stream(&one[..], Some(0), Some("guard-moved")),
        stream(&one[..], None, Some("taken")),
        stream(&one[..], None, Some("twin")),
        stream(&one[..], None, Some("twin")),
        stream(&two[..], None, None),
    ];
    let mut conn = pool.acquire().await.unwrap();
    let appended = event_store::append_new_streams(&mut conn, &streams).await.unwrap();
    let ids: Vec<Uuid> = streams.iter().map(|s| s.id).collect();
    assert!(appended.contains_key(&ids[0]), "guard holds, slug free");
    assert!(!appended.contains_key(&ids[1]), "the guard moved");
    assert!(!appended.contains_key(&ids[2]), "the slug is another stream's");
    assert_eq!(
        usize::from(appended.contains_key(&ids[3])) + usize::from(appended.contains_key(&ids[4])),
        1,
        "one twin"
    );
    assert_eq!(appended[&ids[5]].version, 2, "a stream with no slug is appended whole");
    assert_eq!(appended.len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let (count, last): (i64, Option<i64>) =
            sqlx::query_as("select count(*), max(global_position) from events where stream_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        let expected = appended.get(id).map_or(0, |a| a.version as i64);
        assert_eq!(count, expected, "stream {i}: appended whole or not at all");
        assert_eq!(last, appended.get(id).map(|a| a.position), "stream {i}: its position");
    }
    let reserved: Vec<(String, Uuid)> =
        sqlx::query_as("select slug, post_id from slug_reservations where post_id = any($1) order by slug")
            .bind(&ids)
            .fetch_all(pool)
            .await
            .unwrap();
    let twin = if appended.contains_key(&ids[3]) { ids[3] } else { ids[4] };
    assert_eq!(
        reserved,
        vec![("fresh".to_string(), ids[0]), ("twin".to_string(), twin)],
        "only appended streams hold slugs"
    );
}
