//! Operator rebuilds of a projection (DESIGN §6), beside the live tables and without downtime:
//!
//! 1. shadow tables in their own schema (`rebuild_<name>`), shaped like the live ones;
//! 2. the bulk of the log folded in memory at full batch speed and written set-based, indexes built after
//!    (the `posts` trigger gives a post whose text comes out as live has it live's search vector:
//!    computing them all again was most of a rebuild's time);
//! 3. catch-up through the projection's own code (the same `apply` the live runner uses), bounded by the
//!    live checkpoint;
//! 4. with the live checkpoint locked (the live runner waits), the last events, then row counts and a
//!    checksum per table compared against live — a mismatch aborts and keeps the live copy;
//! 5. the swap in that same transaction (live moved aside, the shadow moved in), then a Redis namespace
//!    bump so no entry written before the swap is read again; the old live tables are dropped after the
//!    commit, while the replicas replay the swap.
//!
//! Readers never see an empty or partial table: until the swap they read the live tables, after it the
//! complete new ones. Only `posts` can be rebuilt this way today.

mod copy;
mod fold;
mod shadow;
mod swap;

use std::time::{Duration, Instant};

use shared::store::db::{set_search_path, LIVE_SCHEMA};
use sqlx::{Connection, PgPool};

use crate::projections::posts::PostsProjection;
use crate::projections::ProjectionError;
use crate::redis_sink::RedisSink;
use crate::runner::{apply_batch_in, BatchScope};
use shadow::{
    analyze, bump_namespace, create_indexes, create_shadow, shadow_checkpoint, skipped_positions, wait_for_replicas,
};

/// The tables the `posts` projection owns, in `read`.
pub const POSTS_TABLES: &[&str] = &["posts", "post_authors", "tags", "slug_history"];

/// Columns another projection keeps in a table `posts` owns: not rebuilt, carried over from live at the swap.
const FOREIGN_COLUMNS: &[(&str, &str)] = &[("posts", "comment_count")];

/// Columns a trigger derives from the others (the search vector, from the text and status): not compared
/// at the swap (a `tsvector` has no hash), and right whenever the columns they come from are.
const DERIVED_COLUMNS: &[(&str, &str)] = &[("posts", "search")];

/// Events read per round trip while folding in memory.
const FOLD_CHUNK: i64 = 20_000;
/// Rows written per statement.
const WRITE_CHUNK: usize = 2_000;
/// Events per transaction while catching up through the projection code.
const CATCH_UP_BATCH: i64 = 1_000;
/// How long the rebuilt copy waits for a live projection that is behind it.
const LIVE_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("only `posts` can be rebuilt; `{0}` cannot")]
    Unsupported(String),
    #[error("another rebuild of {0} is running")]
    Busy(String),
    #[error("the rebuilt {table} differs from live (live {live_rows} rows, checksum {live_checksum}; rebuilt {rebuilt_rows} rows, checksum {rebuilt_checksum}); live kept, nothing swapped")]
    Mismatch { table: String, live_rows: i64, live_checksum: String, rebuilt_rows: i64, rebuilt_checksum: String },
    #[error("the live projection stayed at position {live}, behind the rebuilt copy at {rebuilt} (is it halted? see `projections status`); live kept, nothing swapped")]
    LiveBehind { live: i64, rebuilt: i64 },
    #[error(
        "views depend on the live tables ({0}); a swap would leave them on the old tables (live kept, nothing swapped)"
    )]
    Dependents(String),
    #[error("the event at position {position} cannot be folded: {reason}")]
    Fold { position: i64, reason: String },
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a rebuild is doing, for progress bars.
pub trait Progress: Send + Sync {
    /// A new phase begins; `total` is known for the fold (events in the log).
    fn phase(&self, name: &str, total: Option<u64>);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
}

/// Phase timings, passed on to the progress display.
struct Phases<'a> {
    progress: &'a dyn Progress,
    current: Option<(&'static str, Instant)>,
    done: Vec<(String, f64)>,
}

impl Phases<'_> {
    fn start(&mut self, name: &'static str, total: Option<u64>) {
        if let Some((previous, at)) = self.current.replace((name, Instant::now())) {
            self.done.push((previous.to_string(), at.elapsed().as_secs_f64()));
        }
        self.progress.phase(name, total);
    }
}

/// Progress nobody watches.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
}

#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Swap even when the rebuilt tables differ from live (after a deliberate change to the projection).
    pub accept_changes: bool,
    /// Where the projector writes through (the namespace to bump), and the deployment's key names.
    pub redis_url: String,
    pub redis_keys: shared::read::redis_keys::RedisKeys,
}

/// One table compared at the swap.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCheck {
    pub table: String,
    pub live_rows: i64,
    pub rebuilt_rows: i64,
    pub live_checksum: String,
    pub rebuilt_checksum: String,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildReport {
    pub projection: String,
    /// Events folded in memory, and how long that took (read, fold, render, write, index).
    pub folded_events: u64,
    pub fold_seconds: f64,
    /// Seconds spent in each phase, in order.
    pub phases: Vec<(String, f64)>,
    /// Events applied through the projection code afterwards.
    pub caught_up_events: u64,
    pub total_seconds: f64,
    /// The position both copies were at when compared and swapped.
    pub position: i64,
    pub tables: Vec<TableCheck>,
    /// The Redis namespace now in use (None when Redis was unreachable).
    pub redis_namespace: Option<i64>,
}

impl RebuildReport {
    /// Events per second over the whole log (fold phase).
    pub fn events_per_second(&self) -> f64 {
        self.folded_events as f64 / self.fold_seconds.max(1e-9)
    }
}

/// Rebuilds `name` beside the live tables and swaps it in. `pool` must connect to the primary as a role
/// that may create schemas and drop the live tables (the operator's superuser), not through PgBouncer.
pub async fn rebuild(
    pool: &PgPool,
    name: &str,
    options: &RebuildOptions,
    progress: &dyn Progress,
) -> Result<RebuildReport, RebuildError> {
    if name != "posts" {
        return Err(RebuildError::Unsupported(name.to_string()));
    }
    let started = Instant::now();
    // One rebuild of a projection at a time, for as long as this connection lives.
    let mut guard = pool.acquire().await?.detach();
    let key = format!("pressroom:rebuild:{name}");
    let got = sqlx::query_scalar!(r#"select pg_try_advisory_lock(hashtextextended($1, 0)) as "got!""#, key)
        .fetch_one(&mut guard)
        .await?;
    if !got {
        return Err(RebuildError::Busy(name.to_string()));
    }
    let shadow = format!("rebuild_{name}");
    let result = run(pool, name, &shadow, options, progress, started).await;
    if result.is_err() {
        // Leave nothing half-built behind; the live tables were never touched.
        let _ = sqlx::query(&format!("drop schema if exists {shadow} cascade")).execute(pool).await;
    }
    let _ = guard.close().await;
    result
}

async fn run(
    pool: &PgPool,
    name: &str,
    shadow: &str,
    options: &RebuildOptions,
    progress: &dyn Progress,
    started: Instant,
) -> Result<RebuildReport, RebuildError> {
    let mut phases = Phases { progress, current: None, done: Vec::new() };
    phases.start("creating shadow tables", None);
    // Where the swap moves the live tables until they are dropped (left behind only by an interrupted run).
    let retired = format!("{shadow}_retired");
    swap::drop_retired(pool, &retired).await?;
    create_shadow(pool, shadow).await?;
    let skipped = skipped_positions(pool, name).await?;

    // Fold the log in memory, write it set-based, then index.
    let fold_started = Instant::now();
    let total = sqlx::query_scalar!(r#"select count(*) as "n!" from events"#).fetch_one(pool).await?;
    phases.start("folding events", Some(total as u64));
    let folded = fold::fold_log(pool, &skipped, progress).await?;
    let folded_events = folded.events;
    phases.start("writing rows", Some(folded.fold.posts.len() as u64));
    copy::write_fold(pool, shadow, name, folded, progress).await?;
    phases.start("building indexes", None);
    create_indexes(pool, shadow).await?;
    let fold_seconds = fold_started.elapsed().as_secs_f64();
    let analyzing = tokio::spawn(analyze(pool.clone(), shadow.to_string()));

    // Catch up through the projection's own code to the head of the log.
    phases.start("catching up", None);
    let projection =
        PostsProjection::new(pool.clone(), RedisSink::new(options.redis_url.clone(), options.redis_keys.clone()));
    let mut scope = BatchScope { schema: shadow.to_string(), until: None, side_effects: false, skipped };
    let mut caught_up_events = 0u64;
    loop {
        let n = apply_batch_in(&projection, pool, CATCH_UP_BATCH, &scope).await?.events;
        caught_up_events += n as u64;
        progress.advance(n as u64);
        if (n as i64) < CATCH_UP_BATCH {
            break;
        }
    }
    // The copies can only be compared at one position: let the live projection reach this one.
    phases.start("waiting for the live projection", None);
    let rebuilt_at = {
        let mut conn = pool.acquire().await?;
        shadow_checkpoint(&mut conn, shadow, name).await?
    };
    let waiting = Instant::now();
    loop {
        let mut conn = pool.acquire().await?;
        let live = crate::checkpoint::current(&mut conn, name).await?.unwrap_or_default();
        // With --accept-changes a live copy that is behind is simply replaced (and its checkpoint moved).
        if live >= rebuilt_at || options.accept_changes {
            break;
        }
        if waiting.elapsed() > LIVE_WAIT {
            return Err(RebuildError::LiveBehind { live: live.global_position, rebuilt: rebuilt_at.global_position });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Meet the live copy exactly, compare, swap — with the live checkpoint locked throughout.
    phases.start("verifying and swapping", None);
    let mut tx = pool.begin().await?;
    sqlx::query!("set local lock_timeout = '10s'").execute(&mut *tx).await?;
    set_search_path(&mut tx, LIVE_SCHEMA).await?;
    let live_at = crate::checkpoint::load_for_update(&mut tx, name).await?;
    // Meet live exactly; a live copy behind the rebuilt one (only with --accept-changes) is overtaken.
    let overtaking = live_at < rebuilt_at;
    scope.until = if overtaking { None } else { Some(live_at) };
    loop {
        let n = apply_batch_in(&projection, pool, CATCH_UP_BATCH, &scope).await?.events;
        caught_up_events += n as u64;
        if n == 0 {
            break;
        }
    }
    let shadow_at = shadow_checkpoint(&mut tx, shadow, name).await?;
    if overtaking {
        crate::checkpoint::advance(&mut tx, name, shadow_at).await?;
    } else if shadow_at != live_at {
        return Err(RebuildError::Fold {
            position: shadow_at.global_position,
            reason: format!("the rebuilt copy stopped at {shadow_at:?}, live is at {live_at:?}"),
        });
    }
    let tables = swap::compare(&mut tx, pool, shadow, options.accept_changes).await?;
    analyzing.await.map_err(|e| sqlx::Error::Protocol(format!("analyze failed: {e}")))??;
    swap::swap(&mut tx, shadow, &retired).await?;
    tx.commit().await?;
    let (replayed, dropped) = tokio::join!(wait_for_replicas(pool), swap::drop_retired(pool, &retired));
    replayed?;
    if let Err(e) = dropped {
        // The swap has committed: the rebuild succeeded. The next rebuild drops what is left.
        tracing::warn!(error = %e, schema = %retired, "the retired live tables were not dropped");
    }

    phases.start("done", None);
    let redis_namespace = bump_namespace(&options.redis_url, &options.redis_keys).await;
    Ok(RebuildReport {
        projection: name.to_string(),
        folded_events,
        fold_seconds,
        phases: phases.done,
        caught_up_events,
        total_seconds: started.elapsed().as_secs_f64(),
        position: shadow_at.global_position,
        tables,
        redis_namespace,
    })
}
