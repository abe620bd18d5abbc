//! Operator rebuilds of a projection (DESIGN §6), beside the live tables and without downtime:
//!
//! 1. shadow tables in their own schema (`rebuild_<name>`), shaped like the live ones;
//! 2. the bulk of the log folded in memory at full batch speed and written set-based, indexes built after;
//! 3. catch-up through the projection's own code (the same `apply` the live runner uses), bounded by the
//!    live checkpoint;
//! 4. with the live checkpoint locked (the live runner waits), the last events, then row counts and a
//!    checksum per table compared against live — a mismatch aborts and keeps the live copy;
//! 5. the swap in that same transaction (drop live, move the shadow in), then a Redis namespace bump so
//!    no entry written before the swap is read again.
//!
//! Readers never see an empty or partial table: until the swap they read the live tables, after it the
//! complete new ones. Only `posts` can be rebuilt this way today.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use shared::domain::events::{AuthorProfileUpdated, AuthorRegistered};
use shared::domain::post::{self, Post};
use shared::domain::DomainEvent;
use shared::event_store::{self, RecordedEvent};
use shared::position::LogPosition;
use shared::read_model::{tag_refs, AuthorRef};
use shared::{redis_keys, render};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::projections::posts::{count_change, PostsProjection};
use crate::projections::ProjectionError;
use crate::redis_sink::RedisSink;
use crate::runner::{apply_batch_in, set_search_path, BatchScope, LIVE_SCHEMA};

/// The tables the `posts` projection owns, in `read`.
pub const POSTS_TABLES: &[&str] = &["posts", "post_authors", "tags", "slug_history"];

/// Columns another projection keeps in a table `posts` owns: not rebuilt, carried over from live at the swap.
const FOREIGN_COLUMNS: &[(&str, &str)] = &[("posts", "comment_count")];

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
    pub redis_keys: shared::redis_keys::RedisKeys,
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
    create_shadow(pool, shadow).await?;
    let skipped = skipped_positions(pool, name).await?;

    // Fold the log in memory, write it set-based, then index.
    let fold_started = Instant::now();
    let total = sqlx::query_scalar!(r#"select count(*) as "n!" from events"#).fetch_one(pool).await?;
    phases.start("folding events", Some(total as u64));
    let (fold, at) = fold_log(pool, &skipped, progress).await?;
    let folded_events = fold.events;
    phases.start("writing rows", Some(fold.posts.len() as u64));
    write_fold(pool, shadow, name, fold, at, progress).await?;
    phases.start("building indexes", None);
    create_indexes(pool, shadow).await?;
    let fold_seconds = fold_started.elapsed().as_secs_f64();

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
    sqlx::query!("insert into read.checkpoints (name) values ($1) on conflict (name) do nothing", name)
        .execute(&mut *tx)
        .await?;
    let live = sqlx::query!(
        r#"select transaction_id::text::bigint as "tx!", global_position from read.checkpoints where name = $1 for update"#,
        name
    )
    .fetch_one(&mut *tx)
    .await?;
    let live_at = LogPosition::new(live.tx, live.global_position);
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
        set_search_path(&mut tx, LIVE_SCHEMA).await?;
        crate::checkpoint::advance(&mut tx, name, shadow_at).await?;
    } else if shadow_at != live_at {
        return Err(RebuildError::Fold {
            position: shadow_at.global_position,
            reason: format!("the rebuilt copy stopped at {shadow_at:?}, live is at {live_at:?}"),
        });
    }
    let tables_sql = POSTS_TABLES.iter().map(|t| format!("{LIVE_SCHEMA}.{t}")).collect::<Vec<_>>().join(", ");
    // Writers of the live tables (the comments projection's counts) wait from here; readers do not.
    sqlx::query(&format!("lock table {tables_sql} in exclusive mode")).execute(&mut *tx).await?;
    for (table, column) in FOREIGN_COLUMNS {
        sqlx::query(&format!(
            "update {shadow}.{table} s set {column} = l.{column} from {LIVE_SCHEMA}.{table} l
             where l.id = s.id and s.{column} is distinct from l.{column}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    let mut tables = Vec::new();
    for table in POSTS_TABLES {
        // The shadow side on another connection at the same time (nothing else writes the shadow).
        let mut other = pool.acquire().await?;
        let (live, rebuilt) = tokio::join!(checksum(&mut tx, LIVE_SCHEMA, table), checksum(&mut other, shadow, table));
        let ((live_rows, live_checksum), (rebuilt_rows, rebuilt_checksum)) = (live?, rebuilt?);
        let check = TableCheck { table: table.to_string(), live_rows, rebuilt_rows, live_checksum, rebuilt_checksum };
        if (check.live_rows, &check.live_checksum) != (check.rebuilt_rows, &check.rebuilt_checksum)
            && !options.accept_changes
        {
            return Err(RebuildError::Mismatch {
                table: check.table,
                live_rows: check.live_rows,
                live_checksum: check.live_checksum,
                rebuilt_rows: check.rebuilt_rows,
                rebuilt_checksum: check.rebuilt_checksum,
            });
        }
        tables.push(check);
    }
    sqlx::query(&format!("drop table {tables_sql}")).execute(&mut *tx).await?;
    for table in POSTS_TABLES {
        sqlx::query(&format!("alter table {shadow}.{table} set schema {LIVE_SCHEMA}")).execute(&mut *tx).await?;
        sqlx::query(&format!("grant select, insert, update, delete on {LIVE_SCHEMA}.{table} to pressroom_app"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("drop schema {shadow} cascade")).execute(&mut *tx).await?;
    tx.commit().await?;
    wait_for_replicas(pool).await?;

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

/// How long the rebuild waits for the streaming replicas to replay its swap before it moves on (with a warning).
const REPLICA_REPLAY_WAIT: Duration = Duration::from_secs(10);

/// Waits until every streaming replica has replayed the primary's WAL as it is now (the swap): until then a
/// replica still answers from the tables the swap dropped, and the Redis namespace bump that follows would
/// send readers there to refill the caches with them. A replica this role cannot see the progress of (no
/// `pg_read_all_stats`) is not waited for.
async fn wait_for_replicas(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let swapped: String =
        sqlx::query_scalar!(r#"select pg_current_wal_lsn()::text as "lsn!""#).fetch_one(&mut *conn).await?;
    let deadline = tokio::time::Instant::now() + REPLICA_REPLAY_WAIT;
    loop {
        let behind = sqlx::query_scalar!(
            r#"select count(*) as "n!" from pg_stat_replication
               where state = 'streaming' and replay_lsn < $1::text::pg_lsn"#,
            swapped
        )
        .fetch_one(&mut *conn)
        .await?;
        if behind == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(replicas = behind, lsn = %swapped, "replicas have not replayed the swap yet; moving on");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh shadow schema with empty tables shaped like the live ones (defaults, generated columns,
/// constraints; indexes come after the bulk write) and its own checkpoint table.
async fn create_shadow(pool: &PgPool, shadow: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("drop schema if exists {shadow} cascade")).execute(&mut *tx).await?;
    sqlx::query(&format!("create schema {shadow}")).execute(&mut *tx).await?;
    for table in POSTS_TABLES {
        sqlx::query(&format!(
            "create table {shadow}.{table} (like {LIVE_SCHEMA}.{table} including all excluding indexes)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(&format!("create table {shadow}.checkpoints (like {LIVE_SCHEMA}.checkpoints including all)"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Memory each index build may use (PostgreSQL's default of 64 MB makes the GIN builds spill and merge).
const INDEX_BUILD_MEMORY: &str = "256MB";

/// The live tables' indexes and the constraints they back, recreated on the shadow tables under the
/// same names (which the swap then carries into `read`). The builds run on one connection per core,
/// largest first; the constraints are attached and the tables analysed once all are built.
async fn create_indexes(pool: &PgPool, shadow: &str) -> Result<(), sqlx::Error> {
    let mut builds = Vec::new();
    let mut constraints = Vec::new();
    for table in POSTS_TABLES {
        let qualified = format!("{LIVE_SCHEMA}.{table}");
        let indexes = sqlx::query!(
            r#"select c.relname as "index!", pg_get_indexdef(i.indexrelid) as "def!", k.conname as "constraint?",
                      k.contype as "kind?", pg_relation_size(i.indexrelid) as "size!"
               from pg_index i join pg_class c on c.oid = i.indexrelid
               left join pg_constraint k on k.conindid = i.indexrelid and k.conrelid = i.indrelid
               where i.indrelid = $1::text::regclass
               order by c.relname"#,
            qualified
        )
        .fetch_all(pool)
        .await?;
        for index in indexes {
            let def = index.def.replacen(&format!(" ON {qualified} "), &format!(" ON {shadow}.{table} "), 1);
            builds.push((index.size, def));
            if let (Some(constraint), Some(kind)) = (index.constraint, index.kind) {
                let kind = if kind == b'p' as i8 { "primary key" } else { "unique" };
                constraints.push(format!(
                    "alter table {shadow}.{table} add constraint {constraint} {kind} using index {}",
                    index.index
                ));
            }
        }
    }
    builds.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    let queue = std::sync::Mutex::new(builds.into_iter().map(|(_, def)| def));
    let next = || -> Option<String> { queue.lock().ok()?.next() };
    let builder = || async {
        let mut conn = pool.acquire().await?;
        sqlx::query(&format!("set maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")).execute(&mut *conn).await?;
        while let Some(def) = next() {
            sqlx::query(&def).execute(&mut *conn).await?;
        }
        sqlx::query("reset maintenance_work_mem").execute(&mut *conn).await?;
        Ok::<_, sqlx::Error>(())
    };
    futures::future::try_join_all((0..parallelism()).map(|_| builder())).await?;
    for constraint in constraints {
        sqlx::query(&constraint).execute(pool).await?;
    }
    for table in POSTS_TABLES {
        sqlx::query(&format!("analyze {shadow}.{table}")).execute(pool).await?;
    }
    Ok(())
}

/// Connections to keep PostgreSQL busy on: one per core, at least two.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

async fn skipped_positions(pool: &PgPool, name: &str) -> Result<std::sync::Arc<HashSet<i64>>, sqlx::Error> {
    let skipped = sqlx::query_scalar!("select global_position from projection_skips where projection = $1", name)
        .fetch_all(pool)
        .await?;
    Ok(std::sync::Arc::new(skipped.into_iter().collect()))
}

async fn shadow_checkpoint(conn: &mut PgConnection, shadow: &str, name: &str) -> Result<LogPosition, sqlx::Error> {
    let (tx, pos): (i64, i64) = sqlx::query_as(&format!(
        "select transaction_id::text::bigint, global_position from {shadow}.checkpoints where name = $1"
    ))
    .bind(name)
    .fetch_optional(conn)
    .await?
    .unwrap_or((0, 0));
    Ok(LogPosition::new(tx, pos))
}

/// Row count and a checksum of every row (the sum of 64-bit row hashes: independent of row order, so
/// nothing is sorted), leaving out columns other projections keep and generated columns (derived from
/// the others: the search vector).
async fn checksum(conn: &mut PgConnection, schema: &str, table: &str) -> Result<(i64, String), sqlx::Error> {
    let qualified = format!("{schema}.{table}");
    let columns = sqlx::query_scalar!(
        r#"select attname::text as "name!" from pg_attribute
           where attrelid = $1::text::regclass and attnum > 0 and not attisdropped and attgenerated = ''
           order by attnum"#,
        qualified
    )
    .fetch_all(&mut *conn)
    .await?;
    let columns: Vec<String> = columns
        .into_iter()
        .filter(|c| !FOREIGN_COLUMNS.iter().any(|(t, fc)| *t == table && fc == c))
        .map(|c| format!("t.{c}"))
        .collect();
    let (rows, sum): (i64, String) = sqlx::query_as(&format!(
        "select count(*), coalesce(sum(hash_record_extended(row({}), 0)::numeric), 0)::text from {qualified} t",
        columns.join(", ")
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows, sum))
}

async fn bump_namespace(redis_url: &str, keys: &shared::redis_keys::RedisKeys) -> Option<i64> {
    let bump = async {
        let client = redis::Client::open(redis_url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let ns: i64 = redis::cmd("INCR").arg(keys.namespace()).query_async(&mut conn).await?;
        let generation: i64 = redis::cmd("INCR").arg(keys.list_generation()).query_async(&mut conn).await?;
        for message in [redis_keys::FLUSH_MESSAGE.to_string(), redis_keys::lists_message(generation)] {
            let _: i64 =
                redis::cmd("PUBLISH").arg(keys.invalidation_channel()).arg(message).query_async(&mut conn).await?;
        }
        Ok::<_, redis::RedisError>(ns)
    };
    match tokio::time::timeout(Duration::from_secs(5), bump).await {
        Ok(Ok(ns)) => Some(ns),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Redis namespace not bumped; cached posts expire by TTL");
            None
        }
        Err(_) => {
            tracing::warn!("Redis namespace not bumped (timeout); cached posts expire by TTL");
            None
        }
    }
}

/// A post as the fold keeps it: the domain state plus what the row denormalises.
struct FoldedPost {
    post: Post,
    author: AuthorRef,
    last: LogPosition,
}

struct FoldedAuthor {
    author: AuthorRef,
    bio: Option<String>,
    post_count: i32,
    posts: Vec<Uuid>,
    active: bool,
}

/// The posts projection's tables, in memory.
#[derive(Default)]
struct Fold {
    posts: HashMap<Uuid, FoldedPost>,
    authors: HashMap<Uuid, FoldedAuthor>,
    /// slug → (name, published post count)
    tags: HashMap<String, (String, i32)>,
    slug_history: HashMap<String, Uuid>,
    events: u64,
}

/// Reads the whole log (as far as it is safely ordered) and folds it exactly as the live projection
/// applies it, event by event.
async fn fold_log(
    pool: &PgPool,
    skipped: &HashSet<i64>,
    progress: &dyn Progress,
) -> Result<(Fold, LogPosition), RebuildError> {
    // The next chunk is read while this one is folded (PostgreSQL and the fold each keep a core busy).
    let (chunks, mut incoming) = tokio::sync::mpsc::channel(1);
    tokio::spawn(read_log(pool.clone(), chunks));
    let mut fold = Fold::default();
    let mut at = LogPosition::START;
    while let Some(events) = incoming.recv().await {
        let events = events?;
        let Some(last) = events.last().map(|e| e.log_position()) else { break };
        for event in &events {
            if skipped.contains(&event.global_position) || !crate::projections::posts::handles(&event.event_type) {
                continue;
            }
            let decoded = event
                .decode()
                .map_err(|e| RebuildError::Fold { position: event.global_position, reason: e.to_string() })?;
            fold.apply(event, &decoded)
                .map_err(|reason| RebuildError::Fold { position: event.global_position, reason })?;
        }
        fold.events += events.len() as u64;
        progress.advance(events.len() as u64);
        at = last;
    }
    Ok((fold, at))
}

/// Sends the log in chunks of [`FOLD_CHUNK`] events, as far as it is safely ordered, until a short chunk,
/// an error, or the receiver is gone.
async fn read_log(pool: PgPool, chunks: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, sqlx::Error>>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            let _ = chunks.send(Err(e)).await;
            return;
        }
    };
    let mut at = LogPosition::START;
    loop {
        let chunk =
            event_store::read_after(&mut conn, at, FOLD_CHUNK, Some(crate::projections::posts::EVENT_TYPES)).await;
        let next = match &chunk {
            Ok(events) if events.len() as i64 == FOLD_CHUNK => events.last().map(|e| e.log_position()),
            _ => None,
        };
        if chunks.send(chunk).await.is_err() {
            return;
        }
        match next {
            Some(last) => at = last,
            None => return,
        }
    }
}

fn is_published(p: &Post) -> bool {
    p.status == post::PostStatus::Published
}

impl Fold {
    /// Applies one event (`recorded`, decoded as `event`) as the live projection would.
    fn apply(&mut self, recorded: &RecordedEvent, event: &DomainEvent) -> Result<(), String> {
        let (id, at) = (recorded.stream_id, recorded.log_position());
        match event {
            DomainEvent::AuthorRegistered(AuthorRegistered { name, slug, avatar_url, bio, .. }) => {
                let author = AuthorRef { id, slug: slug.clone(), name: name.clone(), avatar_url: avatar_url.clone() };
                let entry = self.authors.entry(id).or_insert_with(|| FoldedAuthor {
                    author: author.clone(),
                    bio: None,
                    post_count: 0,
                    posts: Vec::new(),
                    active: true,
                });
                entry.author = author;
                entry.bio = bio.clone();
                Ok(())
            }
            DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { name, slug, avatar_url, bio, .. }) => {
                let a = self.authors.get_mut(&id).ok_or_else(|| format!("profile update for unknown author {id}"))?;
                if let Some(bio) = bio {
                    a.bio = bio.clone();
                }
                if name.is_none() && slug.is_none() && avatar_url.is_none() {
                    return Ok(());
                }
                a.author.name = name.clone().unwrap_or_else(|| a.author.name.clone());
                a.author.slug = slug.clone().unwrap_or_else(|| a.author.slug.clone());
                a.author.avatar_url = avatar_url.clone().unwrap_or_else(|| a.author.avatar_url.clone());
                for post_id in &a.posts {
                    if let Some(p) = self.posts.get_mut(post_id) {
                        p.author = a.author.clone();
                        p.last = at;
                    }
                }
                Ok(())
            }
            DomainEvent::AuthorDeactivated(_) => {
                // As live: an author without a row has nothing to hide.
                if let Some(a) = self.authors.get_mut(&id) {
                    a.active = false;
                }
                Ok(())
            }
            e if e.is_post_event() => self.apply_post(recorded, event),
            _ => Ok(()),
        }
    }

    fn apply_post(&mut self, recorded: &RecordedEvent, event: &DomainEvent) -> Result<(), String> {
        let (id, version, at) = (recorded.stream_id, recorded.version, recorded.log_position());
        if self.posts.get(&id).is_some_and(|e| e.post.version >= version) {
            return Ok(()); // already applied, as the live projection would skip it
        }
        let existing = self.posts.remove(&id);
        let before = existing.as_ref().map(|e| e.post.clone());
        let mut folded = post::apply(before.clone(), id, event, recorded.recorded_at)
            .ok_or_else(|| format!("post event for post {id}, which has no PostDrafted"))?;
        if folded.version != version {
            return Err(format!("post {id} would be at version {}, event is {version}", folded.version));
        }
        // The row keeps tags as {slug, name}: names without a slug do not survive, as in the live table.
        folded.tags = tag_refs(&folded.tags).into_iter().map(|t| t.name).collect();
        let author = match &existing {
            Some(e) => e.author.clone(),
            None => {
                let a = self
                    .authors
                    .get_mut(&folded.author_id)
                    .ok_or_else(|| format!("post {id} names unknown author {}", folded.author_id))?;
                a.posts.push(id);
                a.author.clone()
            }
        };
        // As the live projection: the history keeps the slugs a post no longer has.
        if let Some(old) = before.as_ref().filter(|b| b.slug != folded.slug) {
            self.slug_history.insert(old.slug.clone(), id);
            self.slug_history.remove(&folded.slug);
        }
        self.count(before.as_ref(), &folded);
        self.posts.insert(id, FoldedPost { post: folded, author, last: at });
        Ok(())
    }

    /// Tag and author published-post counts, moved exactly as the live projection moves them.
    fn count(&mut self, before: Option<&Post>, after: &Post) {
        let (old_tags, new_tags) = (before.map(|b| tag_refs(&b.tags)), tag_refs(&after.tags));
        let before = before.zip(old_tags.as_deref()).map(|(b, tags)| (is_published(b), tags));
        let change = count_change(before, (is_published(after), &new_tags));
        for gone in change.gone {
            if let Some(t) = self.tags.get_mut(&gone.slug) {
                t.1 -= 1;
            }
        }
        for added in change.added {
            self.tags.entry(added.slug).or_insert_with(|| (added.name, 0)).1 += 1;
        }
        if let Some(a) = self.authors.get_mut(&after.author_id) {
            a.post_count += change.author_delta;
        }
    }
}

/// Writes the fold into the shadow tables (posts on several connections), then the rest and the shadow checkpoint.
/// Markdown is rendered here, once per post.
async fn write_fold(
    pool: &PgPool,
    shadow: &str,
    name: &str,
    fold: Fold,
    at: LogPosition,
    progress: &dyn Progress,
) -> Result<(), sqlx::Error> {
    // Posts on one connection per core: PostgreSQL computes each row's search vector, the costliest part.
    let writers = parallelism();
    let mut parts: Vec<Vec<Vec<FoldedPost>>> = (0..writers).map(|_| Vec::new()).collect();
    let mut posts = fold.posts.into_values().peekable();
    let mut i = 0;
    while posts.peek().is_some() {
        parts[i % writers].push(posts.by_ref().take(WRITE_CHUNK).collect());
        i += 1;
    }
    let write_part = |chunks: Vec<Vec<FoldedPost>>| async move {
        let mut tx = pool.begin().await?;
        sqlx::query!("set local synchronous_commit = off").execute(&mut *tx).await?;
        set_search_path(&mut tx, shadow).await?;
        for chunk in chunks {
            let (chunk, rendered) = tokio::task::spawn_blocking(move || {
                let rendered = render(&chunk);
                (chunk, rendered)
            })
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("rendering failed: {e}")))?;
            insert_posts(&mut tx, &chunk, rendered).await?;
            progress.advance(chunk.len() as u64);
        }
        tx.commit().await
    };
    futures::future::try_join_all(parts.into_iter().map(write_part)).await?;

    let mut tx = pool.begin().await?;
    sqlx::query!("set local synchronous_commit = off").execute(&mut *tx).await?;
    set_search_path(&mut tx, shadow).await?;
    let authors: Vec<(Uuid, FoldedAuthor)> = fold.authors.into_iter().collect();
    for chunk in authors.chunks(WRITE_CHUNK) {
        sqlx::query!(
            "insert into post_authors (id, slug, name, avatar_url, bio, post_count, active)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bool[])",
            &chunk.iter().map(|a| a.0).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.1.author.slug.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.1.author.name.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.1.author.avatar_url.clone()).collect::<Vec<_>>() as _,
            &chunk.iter().map(|a| a.1.bio.clone()).collect::<Vec<_>>() as _,
            &chunk.iter().map(|a| a.1.post_count).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.1.active).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    let tags: Vec<(String, (String, i32))> = fold.tags.into_iter().collect();
    for chunk in tags.chunks(WRITE_CHUNK) {
        sqlx::query!(
            "insert into tags (slug, name, post_count) select * from unnest($1::text[], $2::text[], $3::int[])",
            &chunk.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|t| t.1 .0.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|t| t.1 .1).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    let history: Vec<(String, Uuid)> = fold.slug_history.into_iter().collect();
    for chunk in history.chunks(WRITE_CHUNK) {
        sqlx::query!(
            "insert into slug_history (slug, post_id) select * from unnest($1::text[], $2::uuid[])",
            &chunk.iter().map(|h| h.0.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|h| h.1).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "insert into checkpoints (name, transaction_id, global_position) values ($1, $2::bigint::text::xid8, $3)",
        name,
        at.transaction_id,
        at.global_position
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Body HTML and reading time for each post of `chunk`.
fn render(chunk: &[FoldedPost]) -> Vec<(String, i32)> {
    chunk
        .iter()
        .map(|p| {
            (render::markdown_to_safe_html(&p.post.body_markdown), render::reading_time_minutes(&p.post.body_markdown))
        })
        .collect()
}

/// Writes a chunk of posts with COPY (text format) into the `posts` table the search path finds.
async fn insert_posts<'a>(
    conn: &mut PgConnection,
    chunk: &'a [FoldedPost],
    rendered: Vec<(String, i32)>,
) -> Result<(), sqlx::Error> {
    let mut rows = String::with_capacity(chunk.len() * 4096);
    for (p, (html, reading)) in chunk.iter().zip(rendered) {
        let owned = |v: String| Some(Cow::Owned(v));
        let borrowed = |v: &'a str| Some(Cow::Borrowed(v));
        let fields: [Option<Cow<'a, str>>; 20] = [
            owned(p.post.id.to_string()),
            borrowed(p.post.slug.as_str()),
            borrowed(p.post.status.as_str()),
            borrowed(p.post.title.as_str()),
            p.post.summary.as_deref().map(Cow::Borrowed),
            borrowed(p.post.body_markdown.as_str()),
            owned(html),
            p.post.cover_image_url.as_deref().map(Cow::Borrowed),
            owned(serde_json::to_string(&tag_refs(&p.post.tags)).unwrap_or_default()),
            owned(p.post.author_id.to_string()),
            owned(serde_json::to_string(&p.author).unwrap_or_default()),
            owned(reading.to_string()),
            borrowed("0"),
            owned(p.post.version.to_string()),
            owned(copy_time(p.post.created_at)),
            owned(copy_time(p.post.updated_at)),
            p.post.published_at.map(copy_time).map(Cow::Owned),
            p.post.scheduled_at.map(copy_time).map(Cow::Owned),
            owned(p.last.transaction_id.to_string()),
            owned(p.last.global_position.to_string()),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                rows.push('\t');
            }
            match field {
                None => rows.push_str("\\N"),
                Some(v) => copy_escape(&mut rows, v),
            }
        }
        rows.push('\n');
    }
    let mut copy = conn
        .copy_in_raw(
            "copy posts (id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags, author_id,
                         author, reading_time_minutes, comment_count, version, created_at, updated_at, published_at,
                         scheduled_at, last_transaction_id, last_position) from stdin",
        )
        .await?;
    copy.send(rows.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// A timestamp as PostgreSQL stores it: microseconds, truncated as sqlx's binary encoding truncates
/// (PostgreSQL would round the nanoseconds of a longer text form).
fn copy_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Appends `value` in COPY text format: backslash, tab, newline and carriage return escaped.
fn copy_escape(out: &mut String, value: &str) {
    let mut plain = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => continue,
        };
        // ASCII bytes never occur inside a multi-byte character: `i` is a character boundary.
        out.push_str(&value[plain..i]);
        out.push_str(escaped);
        plain = i + 1;
    }
    out.push_str(&value[plain..]);
}

#[cfg(test)]
mod tests {
    use super::copy_escape;

    #[test]
    fn copy_escape_escapes_only_copy_specials_and_keeps_multibyte_text_whole() {
        let mut out = String::from("x\t");
        copy_escape(&mut out, "é\\\tñ\n—\r");
        assert_eq!(out, "x\té\\\\\\tñ\\n—\\r");
        let mut plain = String::new();
        copy_escape(&mut plain, "Éclair — no specials");
        assert_eq!(plain, "Éclair — no specials");
    }
}
