//! The command API: authors write through it; every command appends events and answers with the
//! position of the last one.

pub mod error;
pub mod extract;
pub mod idempotency;
pub mod mcp;
pub mod openapi;
pub mod routes;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

use shared::http::auth::JwtKeys;
use shared::http::rate_limit::RateLimiter;
use shared::service::config::Config;
use shared::store::db::StatementConnections;
use shared::store::grouped::GroupedAppends;
use shared::store::notify::AppendSignal;
use sqlx::PgPool;

/// Bodies over 1 MiB are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Draft appends, grouped into shared statements on connections of their own (no release ping).
    pub appends: GroupedAppends,
    pub keys: Arc<JwtKeys>,
    pub limiter: Arc<RateLimiter>,
    pub config: Arc<Config>,
    /// Wakes the projector (NOTIFY, coalesced) after a command committed events.
    pub appended: AppendSignal,
    /// Where uploaded media is stored.
    pub media: shared::media::store::MediaStore,
    /// Authors as last read, for commands whose append re-checks the author's version.
    pub authors: Arc<extract::AuthorCache>,
}

impl AppState {
    /// Builds the state from configuration (pools connect lazily).
    pub fn from_config(config: Config) -> Result<Self, shared::service::config::ConfigError> {
        let keys = Arc::new(JwtKeys::new(config.require_jwt_secret()?, config.session_ttl));
        let pool = shared::store::db::pool(&config.database_primary_url, config.db_pool_size, "pressroom-command-api")
            .map_err(|e| shared::service::config::ConfigError::Invalid {
                name: "DATABASE_PRIMARY_URL",
                value: config.database_primary_url.clone(),
                reason: e.to_string(),
            })?;
        let limiter = Arc::new(RateLimiter::new(&config.redis_url, config.redis_keys.clone()));
        let appended = AppendSignal::new(pool.clone());
        let media = shared::media::store::MediaStore::open(&config.media.store).map_err(|e| {
            shared::service::config::ConfigError::Invalid {
                name: "PRESSROOM_MEDIA_STORE",
                value: config.media.store.clone(),
                reason: e.to_string(),
            }
        })?;
        let appends = GroupedAppends::new(StatementConnections::new(pool.clone(), config.db_pool_size));
        Ok(AppState {
            pool,
            appends,
            keys,
            limiter,
            config: Arc::new(config),
            appended,
            media,
            authors: Default::default(),
        })
    }
}

/// After a command that committed (a success carrying `Pressroom-Position`), wake the projector.
async fn wake_projector(
    State(signal): State<AppendSignal>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let res = next.run(req).await;
    if res.status().is_success() && res.headers().contains_key(shared::store::position::POSITION_HEADER) {
        signal.appended();
    }
    res
}

/// The whole command API router, as the binary and the tests serve it.
pub fn app(state: AppState, request_timeout: std::time::Duration) -> Router {
    let router = Router::new()
        .route("/health", get(shared::http::health))
        .route("/ready", get(ready))
        .merge(routes::router(&state))
        .merge(mcp::router(&state))
        .merge(openapi::router())
        .fallback(shared::http::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.appended.clone(), wake_projector))
        .with_state(state);
    shared::http::standard_layers(router, request_timeout)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    shared::http::ready_primary(&state.pool).await
}
