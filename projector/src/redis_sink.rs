//! Redis side effects of the projector: post entries written through after commit with a compare-and-set
//! on the projected position (never an older version over a newer one), and invalidations on pub/sub.
//! Redis being down only costs cache warmth: the database stays the source of every read.

use std::sync::Arc;

use rand::Rng;
use redis::aio::ConnectionManager;
use shared::read::model::CachedPost;
use shared::read::redis_keys::{self, RedisKeys};

/// Sets a hash {tx, pos, body} only when (tx, pos) is newer than what the key holds — or, with ARGV[5] = 1
/// (a refresh), as new. An empty body is a tombstone: the post is not publicly readable at that position.
const CAS_SCRIPT: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'tx', 'pos')
local ctx = tonumber(cur[1] or '-1')
local cpos = tonumber(cur[2] or '-1')
local ntx = tonumber(ARGV[1])
local npos = tonumber(ARGV[2])
if ntx > ctx or (ntx == ctx and (npos > cpos or (npos == cpos and ARGV[5] == '1'))) then
  redis.call('HSET', KEYS[1], 'tx', ARGV[1], 'pos', ARGV[2], 'body', ARGV[3])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
  return 1
end
return 0
"#;

/// Moves the list generation on (KEYS[1]) and announces it on the invalidation channel (ARGV[1]) as
/// ARGV[2] followed by the generation: every cached list page is from an older one. In a script so that it
/// rides in a batch's one pipeline.
const BUMP_LISTS_SCRIPT: &str = r#"
local generation = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. generation)
return generation
"#;

/// A post entry to write through: written only over an older one (by projection position).
pub struct PostWrite {
    pub slug: String,
    /// The row's projection position: its last event's transaction id and global position.
    pub transaction_id: i64,
    pub position: i64,
    /// The public detail, or None for a tombstone (the slug serves nothing public now).
    pub entry: Option<CachedPost>,
}

#[derive(Clone)]
pub struct RedisSink {
    inner: Arc<Inner>,
}

struct Inner {
    redis: shared::store::db::LazyRedis,
    keys: RedisKeys,
    script: redis::Script,
    bump_lists: redis::Script,
}

impl RedisSink {
    pub fn new(url: String, keys: RedisKeys) -> Self {
        RedisSink {
            inner: Arc::new(Inner {
                redis: shared::store::db::LazyRedis::new(&url),
                keys,
                script: redis::Script::new(CAS_SCRIPT),
                bump_lists: redis::Script::new(BUMP_LISTS_SCRIPT),
            }),
        }
    }

    /// Writes post entries and publishes one invalidation per slug. False when some did not land.
    ///
    /// Each lands only over an older entry (by projection position) — or, with `refresh`, over one at the
    /// same position too: a change the position does not show (a comment count, which the comments
    /// projection keeps), read after it committed, so newer than what a posts batch read before it.
    pub async fn write_posts(&self, writes: Vec<PostWrite>, refresh: bool) -> bool {
        let Some(mut conn) = self.inner.redis.get().await else {
            return false;
        };
        let result = self.try_write_posts(&mut conn, writes, refresh).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "Redis write-through failed; the projector redoes it when Redis is back");
        }
        result.is_ok()
    }

    /// Drops post entries (their next read goes to the database) and tells every query API to evict them.
    /// False when Redis could not be reached.
    pub async fn evict_posts(&self, slugs: Vec<String>) -> bool {
        let Some(mut conn) = self.inner.redis.get().await else {
            return false;
        };
        let result: redis::RedisResult<()> = async {
            let keys = &self.inner.keys;
            let ns: Option<i64> = redis::cmd("GET").arg(keys.namespace()).query_async(&mut conn).await?;
            for slug in slugs {
                let _: i64 =
                    redis::cmd("DEL").arg(keys.post_by_slug(ns.unwrap_or(0), &slug)).query_async(&mut conn).await?;
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(keys.invalidation_channel())
                    .arg(redis_keys::slug_message(&slug))
                    .query_async(&mut conn)
                    .await?;
            }
            self.inner.bump_lists().invoke_async::<i64>(&mut conn).await.map(|_| ())
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "Redis eviction failed; entries expire by TTL");
        }
        result.is_ok()
    }

    /// One pipeline for the whole batch: the scripts (re)loaded, then each entry's compare-and-set and its
    /// invalidation, then the list generation — two round trips with the namespace read before.
    async fn try_write_posts(
        &self,
        conn: &mut ConnectionManager,
        writes: Vec<PostWrite>,
        refresh: bool,
    ) -> redis::RedisResult<()> {
        let keys = &self.inner.keys;
        let ns: Option<i64> = redis::cmd("GET").arg(keys.namespace()).query_async(conn).await?;
        let ns = ns.unwrap_or(0);
        let script = &self.inner.script;
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore().load_script(&self.inner.bump_lists).ignore();
        for PostWrite { slug, transaction_id: tx, position: pos, entry } in writes {
            let (body, ttl) = match entry {
                Some(e) => {
                    (serde_json::to_string(&e).unwrap_or_default(), 86_400 + rand::thread_rng().gen_range(0..3_600))
                }
                None => (String::new(), 3_600),
            };
            pipe.invoke_script(
                script.key(keys.post_by_slug(ns, &slug)).arg(tx).arg(pos).arg(body).arg(ttl).arg(u8::from(refresh)),
            )
            .ignore();
            pipe.cmd("PUBLISH").arg(keys.invalidation_channel()).arg(redis_keys::slug_message(&slug)).ignore();
        }
        pipe.invoke_script(&self.inner.bump_lists()).ignore();
        pipe.query_async::<()>(conn).await
    }
}

impl Inner {
    /// Moves the list generation on and announces it ([`BUMP_LISTS_SCRIPT`]).
    fn bump_lists(&self) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.bump_lists.key(self.keys.list_generation());
        invocation.arg(self.keys.invalidation_channel()).arg(redis_keys::LISTS_MESSAGE_PREFIX);
        invocation
    }
}
