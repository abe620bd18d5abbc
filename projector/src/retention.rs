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
    Ok(Purged {
        idempotency_keys: expire(pool, Expiring::IDEMPOTENCY_KEYS, retention.idempotency_ttl).await?,
        webhook_deliveries: expire(pool, Expiring::WEBHOOK_DELIVERIES, retention.webhook_log).await?,
        view_batches: expire(pool, Expiring::VIEW_BATCHES, VIEW_BATCHES_KEPT).await?,
    })
}

/// A kind of row that expires: its table, a column that picks rows out, and the time it is dated by.
struct Expiring {
    table: &'static str,
    key: &'static str,
    dated: &'static str,
}

impl Expiring {
    const IDEMPOTENCY_KEYS: Expiring = Expiring { table: "idempotency_keys", key: "ctid", dated: "created_at" };
    const WEBHOOK_DELIVERIES: Expiring = Expiring { table: "webhook_deliveries", key: "id", dated: "attempted_at" };
    const VIEW_BATCHES: Expiring = Expiring { table: "read.view_batches", key: "batch", dated: "applied_at" };
}

/// Deletes the rows of `kind` older than `kept`, `BATCH` at a time until fewer are left; the total deleted.
async fn expire(pool: &PgPool, kind: Expiring, kept: Duration) -> Result<u64, sqlx::Error> {
    let Expiring { table, key, dated } = kind;
    let sql = format!(
        "delete from {table} where {key} = any(array(
             select {key} from {table} where {dated} < now() - make_interval(secs => $1) limit $2))"
    );
    let mut total = 0;
    loop {
        let n = sqlx::query(&sql).bind(kept.as_secs_f64()).bind(BATCH).execute(pool).await?.rows_affected();
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}
