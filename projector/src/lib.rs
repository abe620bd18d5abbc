//! The projector: turns the event log into read tables and Redis entries, one leader per projection.

pub mod checkpoint;
pub mod media_worker;
pub mod projections;
pub mod rebuild;
pub mod redis_sink;
pub mod retention;
pub mod runner;
pub mod scheduler;
pub mod stats;
pub mod status;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shared::service::config::Config;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use projections::comments::CommentsProjection;
use projections::media::MediaProjection;
use projections::posts::PostsProjection;
use redis_sink::RedisSink;
use runner::RunnerConfig;
use status::StatusBoard;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub status: StatusBoard,
}

/// `/health`, `/ready` and `/status` of the projector process.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route("/health", get(shared::http::health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .fallback(shared::http::not_found)
        .with_state(state);
    shared::http::standard_layers(router, std::time::Duration::from_secs(10))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    shared::http::ready_primary(&state.pool).await
}

async fn status(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "projections": state.status.snapshot() }))
}

/// Starts the listener, every projection runner, the scheduler and the other jobs; returns when
/// `shutdown` is cancelled and all of them stopped.
pub async fn run_projections(
    config: &Config,
    pool: PgPool,
    media: media_worker::WorkerConfig,
    status: StatusBoard,
    shutdown: CancellationToken,
) {
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let runner_config = RunnerConfig {
        direct_url: config.database_primary_direct_url.clone(),
        batch_size: config.projector_batch_size,
        poll_interval: config.projector_poll_interval,
    };
    let redis = RedisSink::new(config.redis_url.clone(), config.redis_keys.clone());
    let direct = config.database_primary_direct_url.clone();
    let spawn = |projection| {
        let (pool, config, wake, status, shutdown) =
            (pool.clone(), runner_config.clone(), wake_rx.clone(), status.clone(), shutdown.clone());
        tokio::spawn(async move {
            match projection {
                Runner::Posts(p) => runner::run(p, pool, config, wake, status, shutdown).await,
                Runner::Comments(p) => runner::run(p, pool, config, wake, status, shutdown).await,
                Runner::Media(p) => runner::run(p, pool, config, wake, status, shutdown).await,
            }
        })
    };
    let tasks = vec![
        ("listener", tokio::spawn(runner::listen_for_events(direct.clone(), wake_tx, shutdown.clone()))),
        ("posts", spawn(Runner::Posts(Arc::new(PostsProjection::new(pool.clone(), redis.clone()))))),
        ("comments", spawn(Runner::Comments(Arc::new(CommentsProjection::new(pool.clone(), redis.clone()))))),
        ("media", spawn(Runner::Media(Arc::new(MediaProjection::new(redis, media.wake.clone()))))),
        (
            "media-variants",
            tokio::spawn(media_worker::run(pool.clone(), direct.clone(), media, status.clone(), shutdown.clone())),
        ),
        ("scheduler", tokio::spawn(scheduler::run(pool.clone(), direct, status.clone(), shutdown.clone()))),
        ("lag", tokio::spawn(report_lag(pool.clone(), shutdown.clone()))),
        (
            "webhooks",
            tokio::spawn(webhooks::run(
                pool.clone(),
                config.database_primary_direct_url.clone(),
                webhooks::DeliveryConfig {
                    max_attempts: config.webhook_max_attempts,
                    retry_base: config.webhook_retry_base,
                    allow_private: config.webhook_allow_private,
                },
                status.clone(),
                shutdown.clone(),
            )),
        ),
        (
            "stats",
            tokio::spawn(stats::run(
                pool.clone(),
                config.redis_url.clone(),
                config.redis_keys.clone(),
                config.trending_cron.clone(),
                shutdown.clone(),
            )),
        ),
        (
            "retention",
            tokio::spawn(retention::run(
                pool.clone(),
                retention::Retention {
                    idempotency_ttl: config.idempotency_ttl,
                    webhook_log: config.webhook_log_retention,
                },
                shutdown.clone(),
            )),
        ),
    ];
    for (what, task) in tasks {
        if let Err(e) = task.await {
            tracing::error!(task = what, error = %e, "task ended abnormally");
        }
    }
}

/// The projections this process runs (one runner task each).
enum Runner {
    Posts(Arc<PostsProjection>),
    Comments(Arc<CommentsProjection>),
    Media(Arc<MediaProjection>),
}

/// Publishes every projection's lag (events and seconds behind the log) as gauges every 5 s.
async fn report_lag(pool: PgPool, shutdown: CancellationToken) {
    loop {
        match shared::store::projections::status(&pool).await {
            Ok(rows) => {
                for r in rows {
                    metrics::gauge!("pressroom_projection_lag_events", "projection" => r.name.clone())
                        .set(r.lag_events as f64);
                    metrics::gauge!("pressroom_projection_lag_seconds", "projection" => r.name).set(r.lag_seconds);
                }
            }
            Err(e) => tracing::debug!(error = %e, "lag not measured"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}
