//! The command API: authors write through it; every command appends events and answers with the
//! position of the last one.

pub mod error;
pub mod extract;
pub mod routes;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shared::auth::JwtKeys;
use sqlx::PgPool;

/// Bodies over 1 MiB are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub keys: JwtKeys,
}

/// The whole command API router, as the binary and the tests serve it.
pub fn app(state: AppState, request_timeout: std::time::Duration) -> Router {
    let router = Router::new()
        .route("/health", get(shared::http::health))
        .route("/ready", get(ready))
        .merge(routes::router())
        .fallback(shared::http::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    shared::http::standard_layers(router, request_timeout)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query_scalar!("select 1 as one")
        .fetch_one(&state.pool)
        .await
    {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: primary unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable"})),
            )
        }
    }
}
