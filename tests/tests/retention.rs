//! Work that must not be lost, and records that must not be kept forever: page views whose flush to the
//! database failed arrive on the next run (exactly once), and the retention sweep deletes expired
//! idempotency keys, delivery-log rows and view-batch records while keeping recent ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_projector::retention::{self, Retention};
use pressroom_projector::stats::flush_and_score;
use pressroom_tests::TestDb;
use shared::read::redis_keys::RedisKeys;
use shared::store::db::LazyRedis;
use uuid::Uuid;

async fn views_of(db: &TestDb, post: Uuid) -> Option<i64> {
    sqlx::query_scalar("select views from read.post_stats where post_id = $1")
        .bind(post)
        .fetch_optional(&db.admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn views_whose_flush_failed_are_counted_on_the_next_run_exactly_once() {
    let db = TestDb::fresh().await;
    let keys = RedisKeys::new(&db.name);
    let redis = LazyRedis::new(&db.redis_url);
    let mut conn =
        redis::Client::open(db.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let post = Uuid::now_v7();
    let hincr = |n: i64| redis::cmd("HINCRBY").arg(keys.views()).arg(post.to_string()).arg(n).clone();
    let _: i64 = hincr(5).query_async(&mut conn).await.unwrap();

    // The database is unreachable for this run: the batch is taken from the live hash but not stored.
    let unreachable = shared::store::db::pool("postgres://pressroom_app@127.0.0.1:1/nowhere", 1, "test").unwrap();
    assert!(flush_and_score(&unreachable, &redis, &keys).await.is_err());
    assert_eq!(views_of(&db, post).await, None);

    let _: i64 = hincr(2).query_async(&mut conn).await.unwrap();
    let pool = db.app_pool().await;
    flush_and_score(&pool, &redis, &keys).await.unwrap();
    assert_eq!(views_of(&db, post).await, Some(7), "the left-behind batch and the new views");
    flush_and_score(&pool, &redis, &keys).await.unwrap();
    assert_eq!(views_of(&db, post).await, Some(7), "nothing counted twice");
    let leftovers: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:flushing:*", keys.views())).query_async(&mut conn).await.unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A batch that was stored but whose Redis key survived (the run died before DEL) is not counted again.
    let stale = format!("{}:flushing:{}", keys.views(), Uuid::now_v7());
    let _: i64 = redis::cmd("HSET").arg(&stale).arg(post.to_string()).arg(100).query_async(&mut conn).await.unwrap();
    sqlx::query("insert into read.view_batches (batch) values ($1)").bind(&stale).execute(&db.admin).await.unwrap();
    flush_and_score(&pool, &redis, &keys).await.unwrap();
    assert_eq!(views_of(&db, post).await, Some(7));
    let exists: i64 = redis::cmd("EXISTS").arg(&stale).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0, "the already-counted batch is removed");
}

#[tokio::test]
async fn the_retention_sweep_deletes_expired_keys_and_delivery_logs_and_keeps_recent_ones() {
    let db = TestDb::fresh().await;
    sqlx::query(
        "insert into idempotency_keys (principal, method, path, key, request_hash, created_at)
         values ('ip:127.0.0.1', 'POST', '/v1/posts', 'old', 'h', now() - interval '25 hours'),
                ('ip:127.0.0.1', 'POST', '/v1/posts', 'new', 'h', now() - interval '1 hour')",
    )
    .execute(&db.admin)
    .await
    .unwrap();
    sqlx::query(
        "insert into webhook_deliveries (subscription_id, event_id, global_position, attempt, succeeded, attempted_at)
         values (gen_random_uuid(), gen_random_uuid(), 1, 1, true, now() - interval '31 days'),
                (gen_random_uuid(), gen_random_uuid(), 2, 1, true, now() - interval '1 day')",
    )
    .execute(&db.admin)
    .await
    .unwrap();
    sqlx::query(
        "insert into read.view_batches (batch, applied_at) values ('old', now() - interval '8 days'), ('new', now())",
    )
    .execute(&db.admin)
    .await
    .unwrap();
    let retention =
        Retention { idempotency_ttl: Duration::from_secs(86_400), webhook_log: Duration::from_secs(30 * 86_400) };
    let purged = retention::purge(&db.app_pool().await, retention).await.unwrap();
    assert_eq!((purged.idempotency_keys, purged.webhook_deliveries, purged.view_batches), (1, 1, 1));
    let left: (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from idempotency_keys where key = 'new'),
                (select count(*) from webhook_deliveries where attempted_at > now() - interval '30 days'),
                (select count(*) from read.view_batches where batch = 'new')",
    )
    .fetch_one(&db.admin)
    .await
    .unwrap();
    assert_eq!(left, (1, 1, 1), "recent rows stay");
}
