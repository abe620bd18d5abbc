//! The projector: turns the event log into read tables and Redis entries, one leader per projection.

pub mod checkpoint;
pub mod projections;
pub mod redis_sink;
pub mod runner;
pub mod scheduler;
pub mod status;

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shared::config::Config;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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

/// Starts the listener and every projection runner; returns when `shutdown` is cancelled and all stopped.
pub async fn run_projections(
    config: &Config,
    pool: PgPool,
    status: StatusBoard,
    shutdown: CancellationToken,
) {
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let runner_config = RunnerConfig {
        direct_url: config.database_primary_direct_url.clone(),
        batch_size: config.projector_batch_size,
        poll_interval: config.projector_poll_interval,
    };
    let redis = RedisSink::new(config.redis_url.clone());
    let listener = tokio::spawn(runner::listen_for_events(
        config.database_primary_direct_url.clone(),
        wake_tx,
        shutdown.clone(),
    ));
    let posts = Arc::new(PostsProjection::new(pool.clone(), redis));
    let scheduler = tokio::spawn(scheduler::run(
        pool.clone(),
        config.database_primary_direct_url.clone(),
        status.clone(),
        shutdown.clone(),
    ));
    let posts_runner = tokio::spawn(runner::run(
        posts,
        pool,
        runner_config,
        wake_rx,
        status,
        shutdown.clone(),
    ));
    let (l, p, s) = tokio::join!(listener, posts_runner, scheduler);
    for (what, r) in [("listener", l), ("posts", p), ("scheduler", s)] {
        if let Err(e) = r {
            tracing::error!(task = what, error = %e, "task ended abnormally");
        }
    }
}
