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

/// The schema of the live read tables (a rebuild builds its copy in a schema of its own).
pub const LIVE_SCHEMA: &str = "read";

/// Begins a transaction on the read tables of `schema` in one round trip: `schema` first on its
/// `search_path` (then `public`, where the event store lives) and `synchronous_commit` off — the tables are
/// derived, and a crash that loses their last moments is repaired by replaying from the checkpoint that
/// was lost with them.
pub async fn begin_derived(
    pool: &PgPool,
    schema: &str,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let schema = schema.replace('"', "\"\"");
    pool.begin_with(format!("begin; set local synchronous_commit = off; set local search_path = \"{schema}\", public"))
        .await
}

/// Puts `schema` first on the transaction's `search_path` (then `public`, where the event store lives).
pub async fn set_search_path(conn: &mut sqlx::PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("select set_config('search_path', $1, true) as path", format!("{schema}, public"))
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// A pooled connection idle for longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);
/// A connection idle for longer than this is closed instead of handed out.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A lazily connecting pool: services start (and report not-ready) while the database is down.
///
/// sqlx pings every connection when it goes back to the pool and, by default, again when it is taken
/// out: two extra round trips (through PgBouncer, two extra transactions) per checkout. The release
/// ping stays (it flushes an abandoned transaction's rollback and drops broken connections); the
/// acquire ping is kept only for connections that sat idle long enough to have gone stale.
pub fn pool(url: &str, max_connections: u32, application_name: &str) -> Result<PgPool, sqlx::Error> {
    let opts: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .application_name(application_name)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(100));
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(IDLE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                ping_if_idle(conn, meta.idle_for).await?;
                Ok(true)
            })
        })
        .connect_lazy_with(opts))
}

/// Pings `conn` when it has been idle for longer than [`PING_IF_IDLE_FOR`]; an error means it is gone.
async fn ping_if_idle(conn: &mut sqlx::PgConnection, idle_for: Duration) -> Result<(), sqlx::Error> {
    if idle_for > PING_IF_IDLE_FOR {
        sqlx::Connection::ping(conn).await?;
    }
    Ok(())
}

/// Connections for single statements run outside a transaction, on the hottest write path (a draft's
/// one-statement claim and append). A connection goes back to the set as soon as its statement has
/// answered, without the ping sqlx's pool sends on every release: through PgBouncer that ping is a
/// transaction of its own, as costly as half the append. A connection whose statement was cancelled or
/// failed on the wire is dropped, never reused; one idle for a while is pinged before it is handed out.
/// New connections come from `pool` (its options and timeouts) and are detached from it; `max` bounds
/// how many exist at once, apart from the pool's own.
#[derive(Clone)]
pub struct StatementConnections {
    inner: std::sync::Arc<StatementInner>,
}

struct StatementInner {
    pool: PgPool,
    idle: std::sync::Mutex<Vec<(sqlx::PgConnection, std::time::Instant)>>,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// A connection of a [`StatementConnections`] set. [`Lease::settle`] hands it back after a statement
/// that answered; dropped without that, the connection is closed.
pub struct Lease {
    conn: Option<sqlx::PgConnection>,
    inner: std::sync::Arc<StatementInner>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl StatementConnections {
    pub fn new(pool: PgPool, max: u32) -> Self {
        let inner = StatementInner {
            pool,
            idle: std::sync::Mutex::new(Vec::new()),
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max.max(1) as usize)),
        };
        StatementConnections { inner: std::sync::Arc::new(inner) }
    }

    /// The pool the connections come from, for work that needs a transaction or several statements.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// A connection: an idle one, or a new one. Waits as long as the pool would (then `PoolTimedOut`).
    pub async fn acquire(&self) -> Result<Lease, sqlx::Error> {
        let inner = &self.inner;
        let wait = inner.pool.options().get_acquire_timeout();
        let permit = tokio::time::timeout(wait, inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let popped = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some((mut conn, since)) = popped else { break };
            let idle_for = since.elapsed();
            if idle_for > IDLE_TIMEOUT {
                continue; // dropped: as the pool closes connections idle this long
            }
            if ping_if_idle(&mut conn, idle_for).await.is_ok() {
                return Ok(Lease { conn: Some(conn), inner: inner.clone(), _permit: permit });
            }
        }
        let conn = inner.pool.acquire().await?.detach();
        Ok(Lease { conn: Some(conn), inner: inner.clone(), _permit: permit })
    }
}

impl Lease {
    /// The connection, for one statement.
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        // Only `settle` (which consumes the lease) takes the connection out.
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lease holds its connection until released"))
    }

    /// Ends the lease after a statement with this `outcome`: the connection goes back when the server
    /// answered (successfully, or with an error it sent: outside a transaction the connection is clean
    /// either way) and is closed after anything else (an I/O or protocol error).
    pub fn settle<T>(self, outcome: &Result<T, sqlx::Error>) {
        self.settle_clean(matches!(outcome, Ok(_) | Err(sqlx::Error::Database(_))));
    }

    /// Ends the lease: the connection goes back when `clean` (the server answered), else it is closed.
    pub fn settle_clean(mut self, clean: bool) {
        if !clean {
            return;
        }
        if let Some(conn) = self.conn.take() {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.push((conn, std::time::Instant::now()));
        }
    }
}

/// True when `e` means the database could not be reached (maps to 503, never 500).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08") || c == "53300"))
}

/// True for the errors PostgreSQL raises for text it cannot store (a NUL character in text or jsonb):
/// the client's input, not a server fault.
pub fn is_unstorable_text(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "22021" || c == "22P05"))
}

/// The detail a client gets for such input.
pub const UNSTORABLE_TEXT: &str = "the request contains a NUL (U+0000) character, which cannot be stored";

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
