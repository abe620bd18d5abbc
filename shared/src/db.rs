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
pub fn pool(
    url: &str,
    max_connections: u32,
    application_name: &str,
) -> Result<PgPool, sqlx::Error> {
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
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    ) || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08") || c == "53300"))
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
