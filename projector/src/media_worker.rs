//! The variant worker: makes each uploaded image's WebP variants in the background (leader-elected like
//! the other jobs, a bounded number at once, the CPU work on blocking threads) and records them in
//! `read.media`; a failure is retried with backoff. Variants are derived data: a crash mid-way or a reset
//! row makes them again (objects already in the store are only recorded). Beside it, the sweep removes
//! objects no event names (an upload whose append failed) or whose media was deleted, after a grace period.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::media::store::MediaStore;
use shared::media::urls::{original_key, variant_key};
use shared::media::variants::{self, widths_for};
use shared::media::{is_hash, media_id, MediaKind};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runner::acquire_leadership;
use crate::status::StatusBoard;

pub const NAME: &str = "media-variants";
/// How often the backlog is looked at without a wake-up (the media projection may lead in another process).
const TICK: Duration = Duration::from_secs(1);
const SWEEP_EVERY: Duration = Duration::from_secs(600);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct WorkerConfig {
    pub store: MediaStore,
    /// Images made at once.
    pub workers: usize,
    /// How old an unreferenced object must be before the sweep removes it.
    pub sweep_grace: Duration,
    /// Rung by this process's media projection when it recorded an upload.
    pub wake: Arc<Notify>,
}

/// Runs until shutdown: stands by while another instance leads; makes variants and sweeps while leading.
pub async fn run(
    pool: PgPool,
    direct_url: String,
    config: WorkerConfig,
    status: StatusBoard,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let Some(mut lock) = acquire_leadership(NAME, &direct_url, &status, &shutdown).await else {
            break;
        };
        status.set_leader(NAME, true);
        status.set_state(NAME, "running", None);
        let mut tasks: JoinSet<Uuid> = JoinSet::new();
        let mut under_way: HashSet<Uuid> = HashSet::new();
        let mut last_sweep: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(TICK) => {}
                _ = config.wake.notified() => {}
                Some(Ok(id)) = tasks.join_next(), if !tasks.is_empty() => { under_way.remove(&id); }
            }
            if sqlx::Connection::ping(&mut lock).await.is_err() {
                tracing::warn!("media worker lost its leadership connection");
                break;
            }
            while let Some(done) = tasks.try_join_next() {
                if let Ok(id) = done {
                    under_way.remove(&id);
                }
            }
            let room = config.workers.saturating_sub(under_way.len());
            if room > 0 {
                match pending(&pool, room as i64 + under_way.len() as i64).await {
                    Ok(rows) => {
                        status.set_state(NAME, "running", None);
                        let fresh: Vec<Pending> =
                            rows.into_iter().filter(|r| !under_way.contains(&r.id)).take(room).collect();
                        for row in fresh {
                            under_way.insert(row.id);
                            tasks.spawn(make_and_record(pool.clone(), config.store.clone(), row));
                        }
                    }
                    Err(e) => status.set_state(NAME, "retrying", Some(e.to_string())),
                }
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(Instant::now());
                match sweep(&pool, &config.store, config.sweep_grace).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "media sweep removed unreferenced objects"),
                    Err(e) => tracing::warn!(error = %e, "media sweep failed; next pass retries"),
                }
            }
        }
        // Variants under way are abandoned, not awaited: their rows stay pending and the next leader redoes them.
        tasks.shutdown().await;
        status.set_leader(NAME, false);
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Pending {
    id: Uuid,
    hash: String,
    kind: String,
    width: i32,
    height: i32,
}

impl Pending {
    fn megapixels(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height) / 1e6
    }
}

/// Images whose variants are not all made, oldest first, skipping those waiting out a failure.
async fn pending(pool: &PgPool, limit: i64) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query_as(
        "select id, hash, kind, width, height from read.media
         where variants_at is null and not deleted and (variant_retry_at is null or variant_retry_at <= now())
         order by uploaded_at limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Debug, thiserror::Error)]
enum VariantFailure {
    #[error(transparent)]
    Store(#[from] shared::media::store::StoreError),
    #[error("the original is not in the media store")]
    NoOriginal,
    #[error("unknown media kind `{0}`")]
    Kind(String),
    #[error(transparent)]
    Make(#[from] variants::VariantError),
    #[error("the variant task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Makes one image's variants and records the outcome; returns its id.
async fn make_and_record(pool: PgPool, store: MediaStore, row: Pending) -> Uuid {
    let started = Instant::now();
    let megapixels = row.megapixels();
    let result = make(&store, &row).await;
    let recorded = match &result {
        Ok(widths) => {
            let seconds = started.elapsed().as_secs_f64();
            metrics::histogram!("pressroom_media_variant_seconds").record(seconds);
            metrics::histogram!("pressroom_media_variant_seconds_per_megapixel").record(seconds / megapixels.max(0.01));
            sqlx::query(
                "update read.media set variant_widths = $3, variants_at = now(), variant_error = null
                 where id = $1 and hash = $2",
            )
            .bind(row.id)
            .bind(&row.hash)
            .bind(widths.iter().map(|&w| w as i32).collect::<Vec<_>>())
            .execute(&pool)
            .await
        }
        Err(e) => {
            tracing::warn!(media = %row.id, error = %e, "variants not made; retrying later");
            metrics::counter!("pressroom_media_variant_failures_total").increment(1);
            sqlx::query(
                "update read.media set variant_attempts = variant_attempts + 1, variant_error = $2,
                        variant_retry_at = now() + least(power(2, variant_attempts) * interval '1 second', $3)
                 where id = $1",
            )
            .bind(row.id)
            .bind(e.to_string())
            .bind(MAX_BACKOFF)
            .execute(&pool)
            .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(media = %row.id, error = %e, "variant outcome not recorded; it will be redone");
    }
    row.id
}

/// The variants of one image, made (or found already made) and stored; the widths.
async fn make(store: &MediaStore, row: &Pending) -> Result<Vec<u32>, VariantFailure> {
    let kind = MediaKind::parse(&row.kind).ok_or_else(|| VariantFailure::Kind(row.kind.clone()))?;
    let widths = widths_for(row.width as u32);
    let mut missing = Vec::new();
    for &w in &widths {
        if !store.exists(&variant_key(&row.hash, w)).await? {
            missing.push(w);
        }
    }
    if missing.is_empty() {
        return Ok(widths);
    }
    let original = store.get(&original_key(&row.hash, kind)).await?.ok_or(VariantFailure::NoOriginal)?;
    let made = tokio::task::spawn_blocking(move || variants::make(&original, kind, &missing)).await??;
    for (w, bytes) in made {
        store.put(&variant_key(&row.hash, w), bytes.into()).await?;
    }
    Ok(widths)
}

/// Removes the objects of every hash that no live media names and that nothing wrote for `grace`;
/// returns how many objects were removed.
pub async fn sweep(
    pool: &PgPool,
    store: &MediaStore,
    grace: Duration,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace)?;
    let mut by_hash: HashMap<String, Vec<(String, bool)>> = HashMap::new();
    for object in store.list().await? {
        let Some(hash) = object.key.split('/').next().filter(|h| is_hash(h)) else {
            continue;
        };
        by_hash.entry(hash.to_string()).or_default().push((object.key.clone(), object.last_modified < cutoff));
    }
    let mut removed = 0;
    for (hash, objects) in by_hash {
        if objects.iter().any(|(_, old)| !old) {
            continue;
        }
        let Some(id) = media_id(&hash) else { continue };
        let last: Option<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "select event_type, recorded_at from events where stream_id = $1 order by version desc limit 1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        let orphan = match &last {
            None => true,
            Some((event_type, at)) => event_type == "MediaDeleted" && *at < cutoff,
        };
        if orphan {
            for (key, _) in objects {
                // Written again since the listing (the same bytes uploaded anew): theirs now, not the sweep's.
                if store.last_modified(&key).await?.is_some_and(|at| at < cutoff) {
                    store.delete(&key).await?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}
