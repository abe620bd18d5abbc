//! The `stats` job (tokio-cron-scheduler, `PRESSROOM_TRENDING_CRON`): moves page views counted in Redis
//! into `read.post_stats` and recomputes the trending score `views / (age_hours + 2)^1.5`. The flush takes
//! the whole Redis hash at once (RENAME to a batch key) and adds a batch's views in the transaction that
//! records the batch in `read.view_batches`, so a batch is counted exactly once: a batch a failed run
//! left behind is taken by the next run (of any projector process) before the new views.

use shared::read::redis_keys::RedisKeys;
use shared::store::db::LazyRedis;
use sqlx::PgPool;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Schedules the job and runs it until shutdown.
pub async fn run(pool: PgPool, redis_url: String, keys: RedisKeys, cron: String, shutdown: CancellationToken) {
    let redis = std::sync::Arc::new(LazyRedis::new(&redis_url));
    let scheduled = async {
        let scheduler = JobScheduler::new().await?;
        let job = Job::new_async(cron.as_str(), move |_, _| {
            let (pool, redis, keys) = (pool.clone(), redis.clone(), keys.clone());
            Box::pin(async move {
                match flush_and_score(&pool, &redis, &keys).await {
                    Ok(n) => tracing::debug!(posts = n, "views flushed, trending recomputed"),
                    Err(e) => tracing::warn!(error = %e, "stats job failed; views stay in Redis for the next run"),
                }
            })
        })?;
        scheduler.add(job).await?;
        scheduler.start().await?;
        Ok::<_, tokio_cron_scheduler::JobSchedulerError>(scheduler)
    };
    match scheduled.await {
        Ok(mut scheduler) => {
            shutdown.cancelled().await;
            let _ = scheduler.shutdown().await;
        }
        Err(e) => tracing::error!(error = %e, cron = %cron, "stats job not scheduled (check PRESSROOM_TRENDING_CRON)"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Batches left behind taken per run (each a Redis hash of views).
const LEFTOVERS_PER_RUN: usize = 100;

/// One run: flush batches left behind by failed runs, then the pending views, then rescore every
/// published post that has views.
pub async fn flush_and_score(pool: &PgPool, redis: &LazyRedis, keys: &RedisKeys) -> Result<usize, StatsError> {
    if let Some(mut conn) = redis.get().await {
        let prefix = format!("{}:flushing:", keys.views());
        for batch in leftover_batches(&mut conn, &prefix).await? {
            flush_batch(pool, &mut conn, &batch).await?;
        }
        let batch = format!("{prefix}{}", Uuid::now_v7());
        let renamed: redis::RedisResult<()> =
            redis::cmd("RENAME").arg(keys.views()).arg(&batch).query_async(&mut conn).await;
        // RENAME of a missing key fails: no views since the last run.
        if renamed.is_ok() {
            flush_batch(pool, &mut conn, &batch).await?;
        }
    }
    let scored = sqlx::query!(
        "update read.post_stats s
            set score = s.views / power(greatest(extract(epoch from now() - p.published_at) / 3600, 0) + 2, 1.5),
                updated_at = now()
           from read.posts p
          where p.id = s.post_id and p.status = 'published'"
    )
    .execute(pool)
    .await?;
    Ok(scored.rows_affected() as usize)
}

/// Batch keys under `prefix` (up to `LEFTOVERS_PER_RUN`): ones a run renamed but could not store.
async fn leftover_batches(conn: &mut redis::aio::ConnectionManager, prefix: &str) -> Result<Vec<String>, StatsError> {
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        found.extend(keys);
        if next == 0 || found.len() >= LEFTOVERS_PER_RUN {
            found.truncate(LEFTOVERS_PER_RUN);
            return Ok(found);
        }
        cursor = next;
    }
}

/// Adds one batch's views unless the batch was counted already, then deletes it from Redis. A failure
/// leaves the batch in Redis for the next run.
async fn flush_batch(pool: &PgPool, conn: &mut redis::aio::ConnectionManager, batch: &str) -> Result<(), StatsError> {
    let views: Vec<(String, i64)> = redis::cmd("HGETALL").arg(batch).query_async(conn).await?;
    let (ids, counts): (Vec<Uuid>, Vec<i64>) =
        views.into_iter().filter_map(|(id, n)| Some((id.parse::<Uuid>().ok()?, n))).unzip();
    let mut tx = pool.begin().await?;
    let first = sqlx::query!("insert into read.view_batches (batch) values ($1) on conflict do nothing", batch)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if first {
        sqlx::query!(
            "insert into read.post_stats (post_id, views)
             select * from unnest($1::uuid[], $2::bigint[])
             on conflict (post_id) do update set views = read.post_stats.views + excluded.views",
            &ids,
            &counts
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    // Only after the views are stored (or known stored).
    let _: i64 = redis::cmd("DEL").arg(batch).query_async(conn).await?;
    Ok(())
}
