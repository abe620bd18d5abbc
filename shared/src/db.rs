//! Database and Redis connections, and the explicit read route every read names.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// Where a read goes. Every read in the code names one of these at its call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRoute {
    /// A healthy replica whose lag is under `PRESSROOM_MAX_REPLICA_LAG`, else the primary.
    Replica,
    /// Always the primary.
    Primary,
}

/// What actually served a read, reported as `Pressroom-Read-Source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    Cache,
    Replica,
    Primary,
    Events,
}

impl ReadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadSource::Cache => "cache",
            ReadSource::Replica => "replica",
            ReadSource::Primary => "primary",
            ReadSource::Events => "events",
        }
    }
}

/// A lazily connecting pool: services start (and report not-ready) while the database is down.
pub fn pool(url: &str, max_connections: u32, application_name: &str) -> Result<PgPool, sqlx::Error> {
    let opts: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .application_name(application_name)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(100));
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(opts))
}

/// True when `e` means the database could not be reached (maps to 503, never 500).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08") || c == "53300"))
}

/// A Redis connection manager that reconnects by itself. Connecting is attempted once with a short
/// timeout; callers treat a missing manager as "Redis down" and carry on without it.
pub async fn redis_manager(url: &str) -> Result<redis::aio::ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_millis(500))
        .set_response_timeout(Duration::from_millis(500))
        .set_number_of_retries(1);
    redis::aio::ConnectionManager::new_with_config(client, config).await
}

/// A Redis connection made on first use and re-attempted at most every 5 s while Redis is down, so a
/// missing Redis costs one failed connect per interval instead of one per request.
pub struct LazyRedis {
    url: String,
    state: tokio::sync::Mutex<(Option<redis::aio::ConnectionManager>, Option<std::time::Instant>)>,
}

impl LazyRedis {
    pub fn new(url: &str) -> Self {
        LazyRedis { url: url.to_string(), state: tokio::sync::Mutex::new((None, None)) }
    }

    /// The connection, or None while Redis is unreachable (logged once per attempt).
    pub async fn get(&self) -> Option<redis::aio::ConnectionManager> {
        if self.url.is_empty() {
            return None;
        }
        let mut guard = self.state.lock().await;
        if let Some(c) = &guard.0 {
            return Some(c.clone());
        }
        if guard.1.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return None;
        }
        guard.1 = Some(std::time::Instant::now());
        match redis_manager(&self.url).await {
            Ok(c) => {
                guard.0 = Some(c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %e, "Redis unavailable; carrying on without it");
                None
            }
        }
    }
}
