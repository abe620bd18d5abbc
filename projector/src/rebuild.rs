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

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use shared::domain::events::{AuthorProfileUpdated, AuthorRegistered};
use shared::domain::post::{self, Post};
use shared::domain::DomainEvent;
use shared::event_store;
use shared::position::LogPosition;
use shared::read_model::{tag_refs, AuthorRef, TagRef};
use shared::{redis_keys, render};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::projections::posts::PostsProjection;
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
    create_shadow(pool, shadow).await?;
    let skipped = skipped_positions(pool, name).await?;

    // Fold the log in memory, write it set-based, then index.
    let fold_started = Instant::now();
    let total = sqlx::query_scalar!(r#"select count(*) as "n!" from events"#).fetch_one(pool).await?;
    progress.phase("folding events", Some(total as u64));
    let (fold, at) = fold_log(pool, &skipped, progress).await?;
    let folded_events = fold.events;
    progress.phase("writing rows", Some(fold.posts.len() as u64));
    write_fold(pool, shadow, name, fold, at, progress).await?;
    progress.phase("building indexes", None);
    create_indexes(pool, shadow).await?;
    let fold_seconds = fold_started.elapsed().as_secs_f64();

    // Catch up through the projection's own code to the head of the log.
    progress.phase("catching up", None);
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
    progress.phase("waiting for the live projection", None);
    let rebuilt_at = {
        let mut conn = pool.acquire().await?;
        shadow_checkpoint(&mut conn, shadow, name).await?
    };
    let waiting = Instant::now();
    loop {
        let mut conn = pool.acquire().await?;
        let live = crate::checkpoint::current(&mut conn, name).await?.unwrap_or_default();
        if live >= rebuilt_at {
            break;
        }
        if waiting.elapsed() > LIVE_WAIT {
            return Err(RebuildError::LiveBehind { live: live.global_position, rebuilt: rebuilt_at.global_position });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Meet the live copy exactly, compare, swap — with the live checkpoint locked throughout.
    progress.phase("verifying and swapping", None);
    let mut tx = pool.begin().await?;
    sqlx::query!("set local lock_timeout = '10s'").execute(&mut *tx).await?;
    let live = sqlx::query!(
        r#"select transaction_id::text::bigint as "tx!", global_position from read.checkpoints where name = $1 for update"#,
        name
    )
    .fetch_one(&mut *tx)
    .await?;
    let live_at = LogPosition::new(live.tx, live.global_position);
    scope.until = Some(live_at);
    loop {
        let n = apply_batch_in(&projection, pool, CATCH_UP_BATCH, &scope).await?.events;
        caught_up_events += n as u64;
        if n == 0 {
            break;
        }
    }
    let shadow_at = shadow_checkpoint(&mut tx, shadow, name).await?;
    if shadow_at != live_at {
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
        let (live_rows, live_checksum) = checksum(&mut tx, LIVE_SCHEMA, table).await?;
        let (rebuilt_rows, rebuilt_checksum) = checksum(&mut tx, shadow, table).await?;
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

    let redis_namespace = bump_namespace(&options.redis_url, &options.redis_keys).await;
    Ok(RebuildReport {
        projection: name.to_string(),
        folded_events,
        fold_seconds,
        caught_up_events,
        total_seconds: started.elapsed().as_secs_f64(),
        position: live_at.global_position,
        tables,
        redis_namespace,
    })
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

/// The live tables' indexes and the constraints they back, recreated on the shadow tables under the
/// same names (which the swap then carries into `read`).
async fn create_indexes(pool: &PgPool, shadow: &str) -> Result<(), sqlx::Error> {
    for table in POSTS_TABLES {
        let qualified = format!("{LIVE_SCHEMA}.{table}");
        let indexes = sqlx::query!(
            r#"select c.relname as "index!", pg_get_indexdef(i.indexrelid) as "def!", k.conname as "constraint?",
                      k.contype as "kind?"
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
            sqlx::query(&def).execute(pool).await?;
            if let (Some(constraint), Some(kind)) = (index.constraint, index.kind) {
                let kind = if kind == b'p' as i8 { "primary key" } else { "unique" };
                sqlx::query(&format!(
                    "alter table {shadow}.{table} add constraint {constraint} {kind} using index {}",
                    index.index
                ))
                .execute(pool)
                .await?;
            }
        }
        sqlx::query(&format!("analyze {shadow}.{table}")).execute(pool).await?;
    }
    Ok(())
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

/// Row count and an md5 over every row in primary-key order, leaving out columns other projections keep.
async fn checksum(conn: &mut PgConnection, schema: &str, table: &str) -> Result<(i64, String), sqlx::Error> {
    let qualified = format!("{schema}.{table}");
    let columns = sqlx::query_scalar!(
        r#"select attname::text as "name!" from pg_attribute
           where attrelid = $1::text::regclass and attnum > 0 and not attisdropped order by attnum"#,
        qualified
    )
    .fetch_all(&mut *conn)
    .await?;
    let columns: Vec<String> = columns
        .into_iter()
        .filter(|c| !FOREIGN_COLUMNS.iter().any(|(t, fc)| *t == table && fc == c))
        .map(|c| format!("t.{c}"))
        .collect();
    let key = sqlx::query_scalar!(
        r#"select string_agg('t.' || a.attname, ', ' order by array_position(i.indkey::int2[], a.attnum)) as "key!"
           from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
           where i.indrelid = $1::text::regclass and i.indisprimary"#,
        format!("{LIVE_SCHEMA}.{table}")
    )
    .fetch_one(&mut *conn)
    .await?;
    let (rows, sum): (i64, Option<String>) = sqlx::query_as(&format!(
        "select count(*), md5(string_agg(md5(row({})::text), '' order by {key})) from {qualified} t",
        columns.join(", ")
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows, sum.unwrap_or_default()))
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
    let mut fold = Fold::default();
    let mut at = LogPosition::START;
    let mut conn = pool.acquire().await?;
    loop {
        let events = event_store::read_after(&mut conn, at, FOLD_CHUNK).await?;
        let Some(last) = events.last().map(|e| e.log_position()) else { break };
        for event in &events {
            if skipped.contains(&event.global_position) || !handles(&event.event_type) {
                continue;
            }
            let decoded = event
                .decode()
                .map_err(|e| RebuildError::Fold { position: event.global_position, reason: e.to_string() })?;
            fold.apply(event.stream_id, event.version, event.log_position(), event.recorded_at, &decoded)
                .map_err(|reason| RebuildError::Fold { position: event.global_position, reason })?;
        }
        fold.events += events.len() as u64;
        progress.advance(events.len() as u64);
        at = last;
        if (events.len() as i64) < FOLD_CHUNK {
            break;
        }
    }
    Ok((fold, at))
}

fn handles(event_type: &str) -> bool {
    event_type.starts_with("Post") || matches!(event_type, "AuthorRegistered" | "AuthorProfileUpdated")
}

fn is_published(p: &Post) -> bool {
    p.status == post::PostStatus::Published
}

impl Fold {
    fn apply(
        &mut self,
        id: Uuid,
        version: i32,
        at: LogPosition,
        recorded_at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<(), String> {
        match event {
            DomainEvent::AuthorRegistered(AuthorRegistered { name, slug, avatar_url, bio, .. }) => {
                let author = AuthorRef { id, slug: slug.clone(), name: name.clone(), avatar_url: avatar_url.clone() };
                let entry = self.authors.entry(id).or_insert_with(|| FoldedAuthor {
                    author: author.clone(),
                    bio: None,
                    post_count: 0,
                    posts: Vec::new(),
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
            DomainEvent::PostDrafted(_)
            | DomainEvent::PostEdited(_)
            | DomainEvent::PostPublished(_)
            | DomainEvent::PostScheduled(_)
            | DomainEvent::PostUnpublished(_)
            | DomainEvent::PostDeleted(_)
            | DomainEvent::PostRestored(_) => self.apply_post(id, version, at, recorded_at, event),
            _ => Ok(()),
        }
    }

    fn apply_post(
        &mut self,
        id: Uuid,
        version: i32,
        at: LogPosition,
        recorded_at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<(), String> {
        if self.posts.get(&id).is_some_and(|e| e.post.version >= version) {
            return Ok(()); // already applied, as the live projection would skip it
        }
        let existing = self.posts.remove(&id);
        let before = existing.as_ref().map(|e| e.post.clone());
        let mut folded = post::apply(before.clone(), id, event, recorded_at)
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
        if before.as_ref().is_none_or(|b| b.slug != folded.slug) {
            self.slug_history.insert(folded.slug.clone(), id);
        }
        self.count(before.as_ref(), &folded);
        self.posts.insert(id, FoldedPost { post: folded, author, last: at });
        Ok(())
    }

    /// Tag and author published-post counts, moved exactly as the live projection moves them.
    fn count(&mut self, before: Option<&Post>, after: &Post) {
        let refs = |p: &Post| if is_published(p) { tag_refs(&p.tags) } else { Vec::new() };
        let old: Vec<TagRef> = before.map(refs).unwrap_or_default();
        let new: Vec<TagRef> = refs(after);
        for gone in old.iter().filter(|t| !new.iter().any(|n| n.slug == t.slug)) {
            if let Some(t) = self.tags.get_mut(&gone.slug) {
                t.1 -= 1;
            }
        }
        for added in new.iter().filter(|t| !old.iter().any(|o| o.slug == t.slug)) {
            self.tags.entry(added.slug.clone()).or_insert_with(|| (added.name.clone(), 0)).1 += 1;
        }
        let delta = i32::from(is_published(after)) - i32::from(before.is_some_and(is_published));
        if let Some(a) = self.authors.get_mut(&after.author_id) {
            a.post_count += delta;
        }
    }
}

/// Writes the fold into the shadow tables and sets the shadow checkpoint to `at`, in one transaction.
/// Markdown is rendered here, once per post, on every core.
async fn write_fold(
    pool: &PgPool,
    shadow: &str,
    name: &str,
    fold: Fold,
    at: LogPosition,
    progress: &dyn Progress,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("set local synchronous_commit = off").execute(&mut *tx).await?;
    set_search_path(&mut tx, shadow).await?;
    let posts: Vec<FoldedPost> = fold.posts.into_values().collect();
    for chunk in posts.chunks(WRITE_CHUNK) {
        let rendered = render_chunk(chunk);
        insert_posts(&mut tx, chunk, rendered).await?;
        progress.advance(chunk.len() as u64);
    }
    let authors: Vec<(Uuid, FoldedAuthor)> = fold.authors.into_iter().collect();
    for chunk in authors.chunks(WRITE_CHUNK) {
        sqlx::query!(
            "insert into post_authors (id, slug, name, avatar_url, bio, post_count)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])",
            &chunk.iter().map(|a| a.0).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.1.author.slug.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.1.author.name.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.1.author.avatar_url.clone()).collect::<Vec<_>>() as _,
            &chunk.iter().map(|a| a.1.bio.clone()).collect::<Vec<_>>() as _,
            &chunk.iter().map(|a| a.1.post_count).collect::<Vec<_>>(),
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

/// Body HTML and reading time for each post of `chunk`, rendered on every core.
fn render_chunk(chunk: &[FoldedPost]) -> Vec<(String, i32)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = chunk.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = chunk
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            (
                                render::markdown_to_safe_html(&p.post.body_markdown),
                                render::reading_time_minutes(&p.post.body_markdown),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

async fn insert_posts(
    conn: &mut PgConnection,
    chunk: &[FoldedPost],
    rendered: Vec<(String, i32)>,
) -> Result<(), sqlx::Error> {
    let col = |f: &dyn Fn(&FoldedPost) -> String| chunk.iter().map(f).collect::<Vec<String>>();
    let opt = |f: &dyn Fn(&FoldedPost) -> Option<String>| chunk.iter().map(f).collect::<Vec<Option<String>>>();
    let json = |f: &dyn Fn(&FoldedPost) -> serde_json::Value| chunk.iter().map(f).collect::<Vec<_>>();
    let (html, reading): (Vec<String>, Vec<i32>) = rendered.into_iter().unzip();
    sqlx::query!(
        r#"insert into posts (id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags,
                              author_id, author, reading_time_minutes, comment_count, version, created_at,
                              updated_at, published_at, scheduled_at, last_transaction_id, last_position)
           select id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags, author_id, author,
                  reading_time_minutes, 0, version, created_at, updated_at, published_at, scheduled_at,
                  last_tx::text::xid8, last_position
           from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::jsonb[], $10::uuid[], $11::jsonb[], $12::int[], $13::int[], $14::timestamptz[],
                       $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::bigint[], $19::bigint[])
                as u(id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags, author_id,
                     author, reading_time_minutes, version, created_at, updated_at, published_at, scheduled_at,
                     last_tx, last_position)"#,
        &chunk.iter().map(|p| p.post.id).collect::<Vec<_>>(),
        &col(&|p| p.post.slug.clone()),
        &col(&|p| p.post.status.as_str().to_string()),
        &col(&|p| p.post.title.clone()),
        &opt(&|p| p.post.summary.clone()) as _,
        &col(&|p| p.post.body_markdown.clone()),
        &html,
        &opt(&|p| p.post.cover_image_url.clone()) as _,
        &json(&|p| serde_json::to_value(tag_refs(&p.post.tags)).unwrap_or_default()),
        &chunk.iter().map(|p| p.post.author_id).collect::<Vec<_>>(),
        &json(&|p| serde_json::to_value(&p.author).unwrap_or_default()),
        &reading,
        &chunk.iter().map(|p| p.post.version).collect::<Vec<_>>(),
        &chunk.iter().map(|p| p.post.created_at).collect::<Vec<_>>(),
        &chunk.iter().map(|p| p.post.updated_at).collect::<Vec<_>>(),
        &chunk.iter().map(|p| p.post.published_at).collect::<Vec<_>>() as _,
        &chunk.iter().map(|p| p.post.scheduled_at).collect::<Vec<_>>() as _,
        &chunk.iter().map(|p| p.last.transaction_id).collect::<Vec<_>>(),
        &chunk.iter().map(|p| p.last.global_position).collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}
