//! Read routing: a pool per replica plus the primary, replica health and lag checked in the background,
//! and the choice of a source that has projected at least a requested position (read-your-writes).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared::store::db::{ReadRoute, ReadSource};
use shared::store::position::LogPosition;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// One replica and what the health loop last saw of it.
pub struct Replica {
    pub name: String,
    pub pool: PgPool,
    healthy: AtomicBool,
    lag_ms: AtomicU64,
    lag_bytes: AtomicU64,
}

impl Replica {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn lag(&self) -> (Duration, u64) {
        (Duration::from_millis(self.lag_ms.load(Ordering::Relaxed)), self.lag_bytes.load(Ordering::Relaxed))
    }
}

/// The primary and the replicas, with round-robin over healthy replicas.
pub struct ReadPools {
    /// Reached only through [`ReadPools::route`] and [`ReadPools::acquire`], so every read names its route.
    primary: PgPool,
    pub replicas: Vec<Arc<Replica>>,
    next: AtomicUsize,
    max_lag: Duration,
    consistency_wait: Duration,
}

/// The source chosen for a read and the projected position it had when chosen.
pub struct Chosen {
    pub pool: PgPool,
    pub source: ReadSource,
    /// The source's checkpoint for the projection the read uses.
    pub position: LogPosition,
    /// False when even the primary has not projected the requested position.
    pub reached: bool,
}

impl ReadPools {
    pub fn new(
        primary: PgPool,
        replicas: Vec<(String, PgPool)>,
        max_lag: Duration,
        consistency_wait: Duration,
    ) -> Self {
        let replicas = replicas
            .into_iter()
            .map(|(name, pool)| {
                Arc::new(Replica {
                    name,
                    pool,
                    healthy: AtomicBool::new(true),
                    lag_ms: AtomicU64::new(0),
                    lag_bytes: AtomicU64::new(0),
                })
            })
            .collect();
        ReadPools { primary, replicas, next: AtomicUsize::new(0), max_lag, consistency_wait }
    }

    /// The pool for a route: for `Replica`, the next healthy replica, else the primary.
    pub fn route(&self, route: ReadRoute) -> (PgPool, ReadSource) {
        if route == ReadRoute::Replica {
            if let Some(r) = self.healthy_replicas().next() {
                return (r.pool.clone(), ReadSource::Replica);
            }
        }
        (self.primary.clone(), ReadSource::Primary)
    }

    /// A connection on the route's pool (the event store and reservations: `ReadRoute::Primary`).
    pub async fn acquire(&self, route: ReadRoute) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
        self.route(route).0.acquire().await
    }

    /// Healthy replicas starting at a rotating offset.
    fn healthy_replicas(&self) -> impl Iterator<Item = &Arc<Replica>> {
        let n = self.replicas.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        self.replicas.iter().cycle().skip(start).take(self.replicas.len()).filter(|r| r.healthy())
    }

    /// Chooses where to read projection `projection` from. Without a token: the route as usual. With one:
    /// a replica that has projected it (waiting up to the consistency wait), else the primary.
    pub async fn choose(
        &self,
        route: ReadRoute,
        projections: &[&str],
        token: Option<LogPosition>,
    ) -> Result<Chosen, sqlx::Error> {
        let Some(token) = token else {
            let (pool, source) = self.route(route);
            return match checkpoint(&pool, projections).await {
                Ok(position) => Ok(Chosen { pool, source, position, reached: true }),
                Err(e) if source == ReadSource::Replica => {
                    tracing::warn!(error = %e, "replica failed; reading the primary");
                    let pool = self.primary.clone();
                    let position = checkpoint(&pool, projections).await?;
                    Ok(Chosen { pool, source: ReadSource::Primary, position, reached: true })
                }
                Err(e) => Err(e),
            };
        };
        if route == ReadRoute::Replica && !self.replicas.is_empty() {
            let deadline = tokio::time::Instant::now() + self.consistency_wait;
            loop {
                for r in self.healthy_replicas() {
                    if let Ok(position) = checkpoint(&r.pool, projections).await {
                        if position.reached(&token) {
                            return Ok(Chosen {
                                pool: r.pool.clone(),
                                source: ReadSource::Replica,
                                position,
                                reached: true,
                            });
                        }
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let pool = self.primary.clone();
        let position = checkpoint(&pool, projections).await?;
        Ok(Chosen { pool, source: ReadSource::Primary, reached: position.reached(&token), position })
    }

    /// Checks every replica every 500 ms until shutdown: reachable, and lag under the limit.
    pub async fn watch_health(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            for r in &self.replicas {
                let verdict = tokio::time::timeout(Duration::from_secs(2), self.probe(r)).await;
                let healthy = match verdict {
                    Ok(Ok((lag, bytes))) => {
                        r.lag_ms.store(lag.as_millis() as u64, Ordering::Relaxed);
                        r.lag_bytes.store(bytes, Ordering::Relaxed);
                        lag <= self.max_lag
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(replica = %r.name, error = %e, "replica probe failed");
                        false
                    }
                    Err(_) => false,
                };
                let (lag, bytes) = r.lag();
                metrics::gauge!("pressroom_replica_lag_seconds", "replica" => r.name.clone()).set(lag.as_secs_f64());
                metrics::gauge!("pressroom_replica_lag_bytes", "replica" => r.name.clone()).set(bytes as f64);
                metrics::gauge!("pressroom_replica_healthy", "replica" => r.name.clone())
                    .set(f64::from(u8::from(healthy)));
                if healthy != r.healthy.swap(healthy, Ordering::Relaxed) {
                    tracing::warn!(replica = %r.name, healthy, "replica health changed");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Lag of one replica: zero when it has replayed everything the primary had written a moment ago,
    /// else the age of its last replayed transaction.
    async fn probe(&self, r: &Replica) -> Result<(Duration, u64), sqlx::Error> {
        let primary_lsn =
            sqlx::query_scalar!(r#"select pg_current_wal_lsn()::text as "lsn!""#).fetch_one(&self.primary).await?;
        let row = sqlx::query!(
            r#"select coalesce(pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()), 0)::bigint as "behind!",
                      coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()), 0)::float8 as "age!""#,
            primary_lsn
        )
        .fetch_one(&r.pool)
        .await?;
        if row.behind <= 0 {
            return Ok((Duration::ZERO, 0));
        }
        Ok((Duration::from_secs_f64(row.age.max(0.0)), row.behind as u64))
    }
}

/// The lowest checkpoint among `projections` as the given database sees it: data read from several
/// projections is at least this current. A projection that never ran counts as the start of the log.
pub async fn checkpoint(pool: &PgPool, projections: &[&str]) -> Result<LogPosition, sqlx::Error> {
    let names: Vec<String> = projections.iter().map(|p| p.to_string()).collect();
    let rows = sqlx::query!(
        r#"select transaction_id::text::bigint as "tx!", global_position from read.checkpoints where name = any($1)"#,
        &names
    )
    .fetch_all(pool)
    .await?;
    if rows.len() < names.len() {
        return Ok(LogPosition::START);
    }
    Ok(rows.into_iter().map(|r| LogPosition::new(r.tx, r.global_position)).min().unwrap_or(LogPosition::START))
}
