//! `pressroom-ops media status`: the variant worker's backlog — images waiting, failing, and the oldest wait.

use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct MediaStatus {
    /// Images not deleted.
    pub images: i64,
    /// Images whose variants are not all made yet.
    pub pending: i64,
    /// Pending images whose last attempt failed (retried with backoff).
    pub failing: i64,
    /// Seconds the oldest pending image has waited (0 with none pending).
    pub oldest_pending_seconds: f64,
    /// The last failure, if any is pending.
    pub last_error: Option<String>,
}

/// Reads the backlog from `read.media` on the primary.
pub async fn backlog(pool: &PgPool) -> Result<MediaStatus, sqlx::Error> {
    sqlx::query_as(
        "select count(*) filter (where not deleted) as images,
                count(*) filter (where not deleted and variants_at is null) as pending,
                count(*) filter (where not deleted and variants_at is null and variant_error is not null) as failing,
                coalesce(extract(epoch from now() - min(uploaded_at) filter (where not deleted and variants_at is null)), 0)::float8
                    as oldest_pending_seconds,
                (array_agg(variant_error order by uploaded_at desc) filter (where not deleted and variant_error is not null))[1]
                    as last_error
         from read.media",
    )
    .fetch_one(pool)
    .await
}

/// `media status [--json]`.
pub async fn status(pool: &PgPool, json: bool) -> anyhow::Result<()> {
    let s = backlog(pool).await?;
    if json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!("images   {}", s.images);
    println!("pending  {} (oldest waiting {:.1} s)", s.pending, s.oldest_pending_seconds);
    println!("failing  {}{}", s.failing, s.last_error.map(|e| format!(" (last: {e})")).unwrap_or_default());
    Ok(())
}
