//! Runs one projection: wins leadership through a Postgres advisory lock, then applies batches in
//! projection order, waking on NOTIFY with polling as the fallback, halting at an event it cannot apply.

use std::sync::Arc;
use std::time::Duration;

use shared::store::db::{begin_derived, LIVE_SCHEMA};
use shared::store::position::LogPosition;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint;
use crate::projections::{Applying, Projection, ProjectionError};
use crate::status::StatusBoard;

/// How a runner reads the log.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// A real session to the primary (not PgBouncer): the advisory lock lives as long as it does.
    pub direct_url: String,
    pub batch_size: i64,
    pub poll_interval: Duration,
}

use shared::store::notify::EVENTS_CHANNEL;

/// After a batch that emptied the backlog, a leader waits as long as that batch took (at most this) before
/// looking again: events that arrive meanwhile share one batch, the projector spends at most about half its
/// time applying, and a light stream waits only as long as its small batches take. The first event after a
/// quiet spell is applied at once.
pub const BATCH_LINGER: Duration = Duration::from_millis(10);

/// Listens for event notifications and bumps `wake`; reconnects on failure until shutdown.
pub async fn listen_for_events(direct_url: String, wake: watch::Sender<u64>, shutdown: CancellationToken) {
    loop {
        let result = async {
            let mut listener = sqlx::postgres::PgListener::connect(&direct_url).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            tracing::info!("listening for event notifications");
            loop {
                listener.recv().await?;
                wake.send_modify(|n| *n = n.wrapping_add(1));
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = result => if let Err(e) = r {
                tracing::warn!(error = %e, "event listener lost its connection; polling until it reconnects");
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Runs `projection` until shutdown: stands by while another instance leads, leads when it can.
pub async fn run<P: Projection>(
    projection: Arc<P>,
    pool: PgPool,
    config: RunnerConfig,
    mut wake: watch::Receiver<u64>,
    status: StatusBoard,
    shutdown: CancellationToken,
) {
    let name = projection.name();
    while !shutdown.is_cancelled() {
        let Some(mut lock) = acquire_leadership(name, &config.direct_url, &status, &shutdown).await else {
            break;
        };
        tracing::info!(projection = name, "leading");
        status.set_leader(name, true);
        lead(&*projection, &pool, &config, &mut wake, &mut lock, &status, &shutdown).await;
        status.set_leader(name, false);
        let _ = lock.close().await;
    }
    tracing::info!(projection = name, "stopped");
}

/// Waits until this instance holds the advisory lock named after `name`; None on shutdown.
pub(crate) async fn acquire_leadership(
    name: &'static str,
    direct_url: &str,
    status: &StatusBoard,
    shutdown: &CancellationToken,
) -> Option<PgConnection> {
    let key = format!("pressroom:projection:{name}");
    let mut announced = false;
    loop {
        let attempt = async {
            let mut conn = PgConnection::connect(direct_url).await?;
            let got = sqlx::query_scalar!(r#"select pg_try_advisory_lock(hashtextextended($1, 0)) as "got!""#, key)
                .fetch_one(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(got.then_some(conn))
        };
        match attempt.await {
            Ok(Some(conn)) => return Some(conn),
            Ok(None) if !announced => {
                tracing::info!(projection = name, "another instance leads; standing by");
                status.set_state(name, "standby", None);
                announced = true;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(projection = name, error = %e, "cannot reach the primary for leadership")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn lead<P: Projection>(
    projection: &P,
    pool: &PgPool,
    config: &RunnerConfig,
    wake: &mut watch::Receiver<u64>,
    lock: &mut PgConnection,
    status: &StatusBoard,
    shutdown: &CancellationToken,
) {
    let name = projection.name();
    let mut limit = config.batch_size;
    let mut backoff = Duration::from_millis(500);
    let mut last_lock_check = tokio::time::Instant::now();
    // A previous leader may have died between a commit and its effects: redo what is not known to have landed.
    let mut effects = EffectsLedger { behind: !redo_effects(projection, pool).await, ..EffectsLedger::default() };
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        if last_lock_check.elapsed() > Duration::from_secs(1) {
            if let Err(e) = lock.ping().await {
                tracing::warn!(projection = name, error = %e, "lost the leadership connection");
                return;
            }
            last_lock_check = tokio::time::Instant::now();
        }
        wake.borrow_and_update();
        let started = tokio::time::Instant::now();
        match shared::service::metrics::timed_query(name, "primary", apply_batch(projection, pool, limit)).await {
            Ok(Batch { events: 0, .. }) => {
                status.set_state(name, "running", None);
                effects.idle(projection, pool).await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(config.poll_interval) => {}
                }
            }
            Ok(batch) => {
                effects.record(name, pool, batch).await;
                status.set_state(name, "running", None);
                limit = config.batch_size;
                backoff = Duration::from_millis(500);
                if (batch.events as i64) < limit {
                    // Caught up with a trickle: let a few more events gather, so that a steady stream of
                    // commands costs one batch (a handful of statements) per linger rather than per event.
                    // A batch of other projections' events only (the comments runner amid post edits) wrote
                    // no table, only moved the checkpoint: at most one such batch per linger.
                    let linger = if batch.applied == 0 { BATCH_LINGER } else { started.elapsed().min(BATCH_LINGER) };
                    sleep_or_shutdown(linger, shutdown).await;
                }
            }
            Err(ProjectionError::Database(e)) if shared::store::db::is_unavailable(&e) => {
                tracing::warn!(projection = name, error = %e, "database unavailable; retrying");
                status.set_state(name, "retrying", Some(e.to_string()));
                sleep_or_shutdown(backoff, shutdown).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) if limit > 1 => {
                // Narrow down to the failing event so everything before it still lands.
                tracing::warn!(projection = name, error = %e, "batch failed; retrying one event at a time");
                limit = 1;
            }
            Err(e) => {
                let error = e.to_string();
                tracing::error!(projection = name, error = %error, "projection halted at an event it cannot apply");
                status.set_state(name, "failed", Some(error.clone()));
                if let Ok(mut conn) = pool.acquire().await {
                    let _ = checkpoint::mark_failed(&mut conn, name, &error).await;
                }
                sleep_or_shutdown(backoff, shutdown).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Tracks how far after-commit effects have landed and records it in the checkpoint row (at most once a
/// second while busy, and when idle), so that a new leader knows where to redo them from.
#[derive(Default)]
struct EffectsLedger {
    /// Some effect since the recorded position did not land: redo from there when idle.
    behind: bool,
    /// Landed up to here, not yet recorded.
    pending: Option<LogPosition>,
    recorded_at: Option<tokio::time::Instant>,
    last_redo: Option<tokio::time::Instant>,
}

impl EffectsLedger {
    async fn record(&mut self, name: &str, pool: &PgPool, batch: Batch) {
        if !batch.effects_landed {
            self.behind = true;
            self.pending = None;
        } else if !self.behind {
            self.pending = batch.last.or(self.pending);
        }
        if self.recorded_at.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            self.flush(name, pool).await;
        }
    }

    async fn idle<P: Projection>(&mut self, projection: &P, pool: &PgPool) {
        self.flush(projection.name(), pool).await;
        if self.behind && self.last_redo.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
            self.last_redo = Some(tokio::time::Instant::now());
            self.behind = !redo_effects(projection, pool).await;
        }
    }

    async fn flush(&mut self, name: &str, pool: &PgPool) {
        let Some(at) = self.pending else { return };
        if let Ok(mut conn) = pool.acquire().await {
            if checkpoint::set_effects(&mut conn, name, at).await.is_ok() {
                self.pending = None;
                self.recorded_at = Some(tokio::time::Instant::now());
            }
        }
    }
}

/// Redoes the projection's effects from where they are known to have landed up to its checkpoint, and
/// records the checkpoint as landed; true when that worked (or there was nothing to redo).
async fn redo_effects<P: Projection>(projection: &P, pool: &PgPool) -> bool {
    let name = projection.name();
    let positions = async {
        let mut conn = pool.acquire().await?;
        let checkpoint = checkpoint::current(&mut conn, name).await?;
        let effects = checkpoint::effects(&mut conn, name).await?;
        Ok::<_, sqlx::Error>((checkpoint, effects))
    };
    let (checkpoint, effects) = match positions.await {
        Ok((Some(c), e)) => (c, e.unwrap_or(LogPosition::START)),
        Ok((None, _)) => return true,
        Err(e) => {
            tracing::warn!(projection = name, error = %e, "cannot read where effects landed");
            return false;
        }
    };
    if effects >= checkpoint {
        return true;
    }
    if !projection.redo_effects(effects).await {
        return false;
    }
    match pool.acquire().await {
        Ok(mut conn) => checkpoint::set_effects(&mut conn, name, checkpoint).await.is_ok(),
        Err(_) => false,
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Where a batch writes and how far it may go: the live `read` schema with after-commit side effects, or a
/// rebuild's shadow schema, bounded by the live checkpoint it has to meet, without side effects.
#[derive(Debug, Clone)]
pub struct BatchScope {
    /// The schema the projection's tables (and its checkpoint) are found in, first on the `search_path`.
    pub schema: String,
    /// Apply nothing past this position.
    pub until: Option<LogPosition>,
    /// Run the projection's after-commit effects (Redis, invalidations).
    pub side_effects: bool,
    /// Positions an operator skipped for this projection (a rebuild passes them by as the live copy did).
    pub skipped: std::sync::Arc<std::collections::HashSet<i64>>,
}

impl BatchScope {
    /// The live read tables.
    pub fn live() -> Self {
        BatchScope { schema: LIVE_SCHEMA.to_string(), until: None, side_effects: true, skipped: Default::default() }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batch {
    /// Events read (applied or passed by).
    pub events: usize,
    /// Of those, the events this projection applied.
    pub applied: usize,
    /// The checkpoint after the batch, when it moved.
    pub last: Option<LogPosition>,
    /// The after-commit effects all landed (or there were none to run).
    pub effects_landed: bool,
}

/// Applies up to `limit` events after the checkpoint in one transaction.
pub async fn apply_batch<P: Projection>(projection: &P, pool: &PgPool, limit: i64) -> Result<Batch, ProjectionError> {
    apply_batch_in(projection, pool, limit, &BatchScope::live()).await
}

/// [`apply_batch`] into the tables of `scope`.
#[tracing::instrument(skip_all, fields(projection = projection.name(), schema = %scope.schema))]
pub async fn apply_batch_in<P: Projection>(
    projection: &P,
    pool: &PgPool,
    limit: i64,
    scope: &BatchScope,
) -> Result<Batch, ProjectionError> {
    let name = projection.name();
    let mut tx = begin_derived(pool, &scope.schema).await?;
    let from = checkpoint::load_for_update(&mut tx, name).await?;
    let mut events = shared::store::log::read_after(&mut tx, from, limit, Some(projection.event_types())).await?;
    if let Some(until) = scope.until {
        events.retain(|e| e.log_position() <= until);
    }
    let Some(last) = events.last().map(|e| e.log_position()) else {
        tx.rollback().await?;
        return Ok(Batch { events: 0, applied: 0, last: None, effects_landed: true });
    };
    // Live batches only: a rebuild's are not on a reader's way.
    let oldest = scope.side_effects.then(|| events.iter().map(|e| e.recorded_at).min()).flatten();
    let age = FreshnessClock { projection: name, recorded_at: oldest };
    age.stage("read");
    let mut batch = Vec::with_capacity(events.len());
    for event in
        events.iter().filter(|e| projection.handles(&e.event_type) && !scope.skipped.contains(&e.global_position))
    {
        let decoded =
            event.decode().map_err(|source| ProjectionError::Decode { position: event.global_position, source })?;
        // The span that applies an event continues the trace of the command that appended it.
        let span = tracing::info_span!(
            "projector.apply",
            projection = name,
            event_type = %event.event_type,
            position = event.global_position
        );
        if let Some(traceparent) = event.metadata.get("traceparent").and_then(|t| t.as_str()) {
            shared::service::telemetry::continue_trace(&span, traceparent);
        }
        batch.push(Applying { event, decoded, span });
    }
    let mut effects = Vec::new();
    projection.apply_all(&mut tx, &batch, &mut effects).await?;
    checkpoint::advance(&mut tx, name, last).await?;
    tx.commit().await?;
    age.stage("committed");
    let effects_landed = !scope.side_effects || projection.after_commit(effects).await;
    age.stage("effects");
    Ok(Batch { events: events.len(), applied: batch.len(), last: Some(last), effects_landed })
}

/// Where an event's way to the readers takes its time: the age of a live batch's oldest event when the batch
/// was read, committed, and its effects (Redis write-through, invalidations) landed —
/// `pressroom_freshness_duration_seconds{projection, stage}`.
struct FreshnessClock {
    projection: &'static str,
    /// None: nothing to record (an empty or a rebuild's batch).
    recorded_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl FreshnessClock {
    fn stage(&self, stage: &'static str) {
        let Some(at) = self.recorded_at else { return };
        let age = (chrono::Utc::now() - at).to_std().unwrap_or_default();
        metrics::histogram!("pressroom_freshness_duration_seconds", "projection" => self.projection, "stage" => stage)
            .record(age.as_secs_f64());
    }
}
