//! The query API: public reads served from replicas by default, with read-your-writes on request.

pub mod cache;
pub mod consistency;
pub mod error;
pub mod mcp;
pub mod openapi;
pub mod page;
pub mod routes;
pub mod routing;
pub mod site;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use cache::ReadCache;
use routing::ReadPools;
use shared::service::config::Config;
use shared::store::db::ReadRoute;

#[derive(Clone)]
pub struct AppState {
    pub reads: Arc<ReadPools>,
    pub cache: Arc<ReadCache>,
    /// The public site's settings; its `url` (`PRESSROOM_PUBLIC_URL`) is the base of every absolute link.
    pub site: Arc<site::Site>,
    /// Verifies author tokens for the `/v1/author/…` reads.
    pub keys: Arc<shared::http::auth::JwtKeys>,
    /// Reads per client IP and minute (`PRESSROOM_RATE_LIMIT_READS`, shared through Redis; 0 disables).
    pub read_limit: Arc<ReadLimit>,
    /// The media store and the base URL of media links.
    pub media: Arc<routes::media::MediaReads>,
}

/// The per-IP read rate limit and how the client IP is found.
pub struct ReadLimit {
    pub limiter: shared::http::rate_limit::RateLimiter,
    pub per_minute: u32,
    pub trusted_proxies: shared::http::client_ip::TrustedProxies,
}

/// How long an in-process entry lives before it is re-read (jittered by up to a quarter).
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl AppState {
    /// The primary pool and one pool per replica URL (`replica1`, `replica2`…), and the cache.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let primary =
            shared::store::db::pool(&config.database_primary_url, config.db_pool_size, "pressroom-query-api")?;
        let mut replicas = Vec::new();
        for (i, url) in config.database_replica_urls.iter().enumerate() {
            replicas.push((
                format!("replica{}", i + 1),
                shared::store::db::pool(url, config.db_pool_size, "pressroom-query-api")?,
            ));
        }
        let store = shared::media::store::MediaStore::open(&config.media.store)?;
        let reads = ReadPools::new(primary, replicas, config.max_replica_lag, config.consistency_wait);
        Ok(AppState {
            reads: Arc::new(reads),
            cache: Arc::new(ReadCache::new(&config.redis_url, CACHE_TTL, config.redis_keys.clone())),
            site: Arc::new(site::Site::from_config(config)),
            keys: Arc::new(shared::http::auth::JwtKeys::new(config.require_jwt_secret()?, config.session_ttl)),
            read_limit: Arc::new(ReadLimit {
                limiter: shared::http::rate_limit::RateLimiter::new(&config.redis_url, config.redis_keys.clone()),
                per_minute: config.rate_limits.reads,
                trusted_proxies: config.trusted_proxies.clone(),
            }),
            media: Arc::new(routes::media::MediaReads::new(
                store,
                config.media_base(),
                config.media.public_url.is_some(),
            )),
        })
    }
}

/// The whole query API router, as the binary and the tests serve it.
pub fn app(state: AppState, request_timeout: std::time::Duration) -> Router {
    let router = Router::new()
        .route("/health", get(shared::http::health))
        .route("/ready", get(ready))
        .merge(
            routes::router()
                .merge(site::router())
                .merge(mcp::router(&state))
                .route_layer(axum::middleware::from_fn_with_state(state.read_limit.clone(), rate_limit_reads)),
        )
        .merge(openapi::router())
        .fallback(not_found)
        .with_state(state);
    shared::http::standard_layers(router, request_timeout)
}

/// No route: an HTML page for a browser (it asks for `text/html`), problem+json for everyone else.
async fn not_found(State(state): State<AppState>, headers: axum::http::HeaderMap) -> axum::response::Response {
    let wants_html =
        headers.get(axum::http::header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return site::not_found_page(&state.site, &headers);
    }
    shared::http::not_found().await
}

/// Counts the request against its client's read limit; over it → 429 with Retry-After.
async fn rate_limit_reads(
    State(limit): State<Arc<ReadLimit>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if limit.per_minute > 0 {
        let ip = limit.trusted_proxies.of_request(request.extensions(), request.headers());
        // Decided in process, reconciled with Redis in the background: a Redis round trip per read would
        // cost more than the read.
        if let Err(limited) = limit.limiter.check_local("reads", &ip.to_string(), limit.per_minute) {
            return error::ReadError::RateLimited(limited.retry_after_secs()).into_response();
        }
    }
    next.run(request).await
}

/// Ready when the primary answers (replicas are optional: reads fall back to the primary).
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let replicas: Vec<_> = state
        .reads
        .replicas
        .iter()
        .map(|r| serde_json::json!({"name": r.name, "healthy": r.healthy(), "lag_ms": r.lag().0.as_millis()}))
        .collect();
    match sqlx::query_scalar!("select 1 as one").fetch_one(&state.reads.route(ReadRoute::Primary).0).await {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({"status": "ready", "replicas": replicas}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: primary unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "unavailable", "replicas": replicas})))
        }
    }
}
