//! Retention: deletes what is kept only for a while — idempotency keys past `PRESSROOM_IDEMPOTENCY_TTL`,
//! webhook delivery-log rows past `PRESSROOM_WEBHOOK_LOG_RETENTION`, and the record of counted view
//! batches after a week — shortly after start-up and then every 10 minutes, in bounded batches so no
//! statement holds locks for long. Deleting is idempotent, so every projector process may run it.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement.
const BATCH: i64 = 5_000;
const EVERY: Duration = Duration::from_secs(600);
/// A counted view batch is only looked up while its Redis key may still exist: minutes, not a week.
const VIEW_BATCHES_KEPT: Duration = Duration::from_secs(7 * 86_400);

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub idempotency_ttl: Duration,
    pub webhook_log: Duration,
}

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub idempotency_keys: u64,
    pub webhook_deliveries: u64,
    pub view_batches: u64,
}

/// Sweeps until shutdown.
pub async fn run(pool: PgPool, retention: Retention, shutdown: CancellationToken) {
    let mut wait = Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        match purge(&pool, retention).await {
            Ok(p) if p != Purged::default() => tracing::info!(?p, "retention sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying in 10 minutes"),
        }
    }
}

/// One sweep: every expired row of each kind, `BATCH` rows per statement.
pub async fn purge(pool: &PgPool, retention: Retention) -> Result<Purged, sqlx::Error> {
    let idempotency_keys = in_batches(|| {
        sqlx::query!(
            "delete from idempotency_keys where ctid = any(array(
                select ctid from idempotency_keys where created_at < now() - make_interval(secs => $1) limit $2))",
            retention.idempotency_ttl.as_secs_f64(),
            BATCH
        )
        .execute(pool)
    })
    .await?;
    let webhook_deliveries = in_batches(|| {
        sqlx::query!(
            "delete from webhook_deliveries where id = any(array(
                select id from webhook_deliveries where attempted_at < now() - make_interval(secs => $1) limit $2))",
            retention.webhook_log.as_secs_f64(),
            BATCH
        )
        .execute(pool)
    })
    .await?;
    let view_batches = in_batches(|| {
        sqlx::query!(
            "delete from read.view_batches where batch = any(array(
                select batch from read.view_batches where applied_at < now() - make_interval(secs => $1) limit $2))",
            VIEW_BATCHES_KEPT.as_secs_f64(),
            BATCH
        )
        .execute(pool)
    })
    .await?;
    Ok(Purged { idempotency_keys, webhook_deliveries, view_batches })
}

/// Runs a `BATCH`-limited delete until it deletes fewer; the total deleted.
async fn in_batches<F, Fut>(mut delete: F) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<sqlx::postgres::PgQueryResult, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let n = delete().await?.rows_affected();
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}
