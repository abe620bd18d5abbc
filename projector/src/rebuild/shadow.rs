//! The rebuild's shadow schema and its surroundings: creating it, indexing it like live, reading its
//! checkpoint, checksumming a table in either schema, waiting for the replicas after the swap, and
//! bumping the Redis namespace.

use std::collections::HashSet;
use std::time::Duration;

use shared::read::redis_keys;
use shared::store::db::LIVE_SCHEMA;
use shared::store::position::LogPosition;
use sqlx::{PgConnection, PgPool};

use super::{DERIVED_COLUMNS, FOREIGN_COLUMNS, POSTS_TABLES};

/// How long the rebuild waits for the streaming replicas to replay its swap before it moves on (with a warning).
const REPLICA_REPLAY_WAIT: Duration = Duration::from_secs(10);

/// Waits until every streaming replica has replayed the primary's WAL as it is now (the swap): until then a
/// replica still answers from the tables the swap dropped, and the Redis namespace bump that follows would
/// send readers there to refill the caches with them. A replica this role cannot see the progress of (no
/// `pg_read_all_stats`) is not waited for.
pub(super) async fn wait_for_replicas(pool: &PgPool) -> Result<(), sqlx::Error> {
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
/// constraints and triggers; indexes come after the bulk write) and its own checkpoint table. The live
/// `posts` trigger comes along: a post whose text comes out as live has it takes live's search vector.
pub(super) async fn create_shadow(pool: &PgPool, shadow: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("drop schema if exists {shadow} cascade")).execute(&mut *tx).await?;
    sqlx::query(&format!("create schema {shadow}")).execute(&mut *tx).await?;
    for table in POSTS_TABLES {
        let qualified = format!("{LIVE_SCHEMA}.{table}");
        sqlx::query(&format!("create table {shadow}.{table} (like {qualified} including all excluding indexes)"))
            .execute(&mut *tx)
            .await?;
        let triggers = sqlx::query_scalar::<_, String>(
            "select pg_get_triggerdef(oid) from pg_trigger where tgrelid = $1::text::regclass and not tgisinternal
             order by tgname",
        )
        .bind(&qualified)
        .fetch_all(&mut *tx)
        .await?;
        for def in triggers {
            sqlx::query(&on_shadow(&def, shadow, table)).execute(&mut *tx).await?;
        }
    }
    sqlx::query(&format!("create table {shadow}.checkpoints (like {LIVE_SCHEMA}.checkpoints including all)"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// A live table's index or trigger definition (`pg_get_indexdef`, `pg_get_triggerdef`) made for its shadow copy.
fn on_shadow(def: &str, shadow: &str, table: &str) -> String {
    def.replacen(&format!(" ON {LIVE_SCHEMA}.{table} "), &format!(" ON {shadow}.{table} "), 1)
}

/// Memory each index build may use (PostgreSQL's default of 64 MB makes the GIN builds spill and merge).
const INDEX_BUILD_MEMORY: &str = "256MB";

/// The live tables' indexes and the constraints they back, recreated on the shadow tables under the
/// same names (which the swap then carries into `read`). The builds run on one connection per core,
/// largest first; the constraints are attached once all are built.
pub(super) async fn create_indexes(pool: &PgPool, shadow: &str) -> Result<(), sqlx::Error> {
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
            let def = on_shadow(&index.def, shadow, table);
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
    Ok(())
}

/// Gathers the planner's statistics on the shadow tables. It runs beside the catch-up and the checksums
/// (its lock lets rows be written and read, not the swap's `alter table`), so it must end before the swap.
pub(super) async fn analyze(pool: PgPool, shadow: String) -> Result<(), sqlx::Error> {
    for table in POSTS_TABLES {
        sqlx::query(&format!("analyze {shadow}.{table}")).execute(&pool).await?;
    }
    Ok(())
}

/// Connections to keep PostgreSQL busy on: one per core, at least two.
pub(super) fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

pub(super) async fn skipped_positions(pool: &PgPool, name: &str) -> Result<std::sync::Arc<HashSet<i64>>, sqlx::Error> {
    let skipped = sqlx::query_scalar!("select global_position from projection_skips where projection = $1", name)
        .fetch_all(pool)
        .await?;
    Ok(std::sync::Arc::new(skipped.into_iter().collect()))
}

pub(super) async fn shadow_checkpoint(
    conn: &mut PgConnection,
    shadow: &str,
    name: &str,
) -> Result<LogPosition, sqlx::Error> {
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
/// nothing is sorted), leaving out columns other projections keep and columns derived from the others
/// (generated ones, and the search vector its trigger keeps).
pub(super) async fn checksum(conn: &mut PgConnection, schema: &str, table: &str) -> Result<(i64, String), sqlx::Error> {
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
        .filter(|c| !FOREIGN_COLUMNS.iter().chain(DERIVED_COLUMNS).any(|(t, fc)| *t == table && fc == c))
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

pub(super) async fn bump_namespace(redis_url: &str, keys: &shared::read::redis_keys::RedisKeys) -> Option<i64> {
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
