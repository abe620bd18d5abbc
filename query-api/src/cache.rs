//! The read cache: in process (moka: bounded, short jittered TTL, single-flight per key) in front of
//! Redis (entries the projector writes through) in front of the database. The projector's invalidation
//! messages on Redis pub/sub evict entries in every instance; the TTL bounds staleness while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use moka::future::Cache;
use rand::Rng;
use shared::read::model::{CachedPost, PostDetail};
use shared::read::redis_keys::{self, RedisKeys};
use shared::store::db::{LazyRedis, ReadSource};
use tokio_util::sync::CancellationToken;

/// Counts a cache lookup: `layer` is `process` or `redis`.
pub fn count(layer: &'static str, hit: bool) {
    counters()[usize::from(layer == "redis") * 2 + usize::from(!hit)].increment(1);
}

/// The four cache counters (process/redis × hit/miss), registered on first use: calling this at start-up
/// makes every series visible at 0 before the first lookup.
pub fn counters() -> &'static [metrics::Counter; 4] {
    static HANDLES: std::sync::OnceLock<[metrics::Counter; 4]> = std::sync::OnceLock::new();
    HANDLES.get_or_init(|| {
        let c = |layer: &'static str, result: &'static str| {
            metrics::counter!("pressroom_cache_requests_total", "layer" => layer, "result" => result)
        };
        [c("process", "hit"), c("process", "miss"), c("redis", "hit"), c("redis", "miss")]
    })
}

/// A rendered single-post response, ready to send.
#[derive(Debug, Clone)]
pub struct PostEntry {
    pub body: Bytes,
    pub detail: Arc<PostDetail>,
    /// ETag, Last-Modified and Surrogate-Key, formatted once when the entry is built.
    pub headers: [axum::http::HeaderValue; 3],
    /// `Pressroom-Position` to answer with.
    pub header_position: i64,
    /// The projection position this entry is known to reflect (row position, or the checkpoint it was read at).
    pub valid_through: shared::store::position::LogPosition,
    /// Where it came from on the miss that loaded it.
    pub source: ReadSource,
    /// The site's page of this post, rendered on first use: dropped with the entry, so it is never older
    /// than the entry itself.
    pub page: Arc<tokio::sync::OnceCell<RenderedPage>>,
    /// The post's Markdown (for agents), read on first use and dropped with the entry.
    pub markdown: Arc<tokio::sync::OnceCell<Arc<str>>>,
    /// The MCP `get_post` result of this post, built on first use and dropped with the entry.
    pub tool_result: Arc<tokio::sync::OnceCell<rmcp::model::CallToolResult>>,
}

/// A rendered HTML page and its ETag.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    pub body: Bytes,
    pub etag: axum::http::HeaderValue,
}

/// What a slug resolves to.
#[derive(Debug, Clone)]
pub enum SlugEntry {
    Post(PostEntry),
    /// The slug is an old one: 301 to this slug.
    Moved(String),
    NotFound,
}

pub struct ReadCache {
    /// Page views since the last flush to Redis, by post id.
    views: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, i64>>,
    pub posts: Cache<String, Arc<SlugEntry>>,
    /// List pages by list generation and query string: the projector bumps the generation on every
    /// change that can alter a list, so older pages are never found again (and age out).
    pub lists: Cache<String, Arc<crate::routes::posts::ListPage>>,
    list_generation: std::sync::atomic::AtomicI64,
    /// Invalidations received, striped by slug: a load that overlapped one of its slug's may have read what
    /// the invalidation replaced, and must not stay cached (see [`ReadCache::slug_generation`]).
    slug_invalidations: [std::sync::atomic::AtomicU64; INVALIDATION_STRIPES],
    pub redis: LazyRedis,
    keys: RedisKeys,
}

const INVALIDATION_STRIPES: usize = 256;

fn jittered(base: Duration) -> Duration {
    let jitter = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 4);
    base + Duration::from_millis(jitter)
}

struct JitteredExpiry(Duration);

impl<K, V> moka::Expiry<K, V> for JitteredExpiry {
    fn expire_after_create(&self, _: &K, _: &V, _: std::time::Instant) -> Option<Duration> {
        Some(jittered(self.0))
    }
}

impl ReadCache {
    pub fn new(redis_url: &str, ttl: Duration, keys: RedisKeys) -> Self {
        ReadCache {
            views: std::sync::Mutex::new(std::collections::HashMap::new()),
            posts: Cache::builder().max_capacity(20_000).expire_after(JitteredExpiry(ttl)).build(),
            lists: Cache::builder().max_capacity(2_000).expire_after(JitteredExpiry(ttl)).build(),
            redis: LazyRedis::new(redis_url),
            keys,
            list_generation: std::sync::atomic::AtomicI64::new(0),
            slug_invalidations: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn stripe(&self, slug: &str) -> &std::sync::atomic::AtomicU64 {
        use std::hash::Hasher;
        // Fixed keys: the same slug must find the same stripe every time.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(slug.as_bytes());
        &self.slug_invalidations[(h.finish() as usize) % INVALIDATION_STRIPES]
    }

    /// How many invalidations could have concerned `slug` so far: read it before loading a slug and again
    /// after; if it moved, the load may predate the change and its entry is dropped again.
    pub fn slug_generation(&self, slug: &str) -> u64 {
        self.stripe(slug).load(std::sync::atomic::Ordering::Acquire)
    }

    /// Drops a slug's entry on the projector's word, counting the invalidation first.
    async fn invalidate_slug(&self, slug: &str) {
        self.stripe(slug).fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.posts.invalidate(slug).await;
    }

    /// Drops every entry, counting an invalidation for every slug first.
    fn invalidate_everything(&self) {
        for stripe in &self.slug_invalidations {
            stripe.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        self.posts.invalidate_all();
        self.lists.invalidate_all();
    }

    /// The current list generation: cached list pages are keyed by it.
    pub fn list_generation(&self) -> i64 {
        self.list_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn advance_lists(&self, generation: i64) {
        self.list_generation.fetch_max(generation, std::sync::atomic::Ordering::AcqRel);
    }

    /// Counts one public view of a post (flushed to Redis in batches, not per request).
    pub fn record_view(&self, post: uuid::Uuid) {
        if let Ok(mut views) = self.views.lock() {
            *views.entry(post).or_default() += 1;
        }
    }

    /// Adds the pending views to the Redis hash every second until shutdown. While Redis is down they
    /// are kept (up to 100,000 posts) and added once it is back.
    pub async fn flush_views(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let pending = match self.views.lock() {
                Ok(mut v) if !v.is_empty() => std::mem::take(&mut *v),
                _ => continue,
            };
            let Some(mut conn) = self.redis.get().await else {
                self.keep(pending);
                continue;
            };
            let mut pipe = redis::pipe();
            for (id, n) in &pending {
                pipe.cmd("HINCRBY").arg(self.keys.views()).arg(id.to_string()).arg(*n).ignore();
            }
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::warn!(error = %e, "views not flushed; keeping them for the next try");
                self.keep(pending);
            }
        }
    }

    fn keep(&self, pending: std::collections::HashMap<uuid::Uuid, i64>) {
        if let Ok(mut views) = self.views.lock() {
            if views.len() < 100_000 {
                for (id, n) in pending {
                    *views.entry(id).or_default() += n;
                }
            }
        }
    }

    /// The projector's write-through entry for a slug, if Redis has a live one.
    pub async fn redis_post(&self, slug: &str) -> Option<CachedPost> {
        let mut conn = self.redis.get().await?;
        let ns: Option<i64> = redis::cmd("GET").arg(self.keys.namespace()).query_async(&mut conn).await.ok()?;
        let body: Option<String> = redis::cmd("HGET")
            .arg(self.keys.post_by_slug(ns.unwrap_or(0), slug))
            .arg("body")
            .query_async(&mut conn)
            .await
            .map_err(|e| tracing::debug!(error = %e, "Redis read failed"))
            .ok()?;
        serde_json::from_str(&body?).ok()
    }

    /// Applies invalidations from the projector until shutdown, resubscribing after Redis failures.
    pub async fn follow_invalidations(self: Arc<Self>, redis_url: String, shutdown: CancellationToken) {
        loop {
            let run = async {
                let client = redis::Client::open(redis_url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(self.keys.invalidation_channel()).await?;
                // Anything may have changed while we were not listening.
                self.invalidate_everything();
                let mut conn = client.get_multiplexed_async_connection().await?;
                let generation: Option<i64> =
                    redis::cmd("GET").arg(self.keys.list_generation()).query_async(&mut conn).await?;
                self.advance_lists(generation.unwrap_or(0));
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    if payload == redis_keys::FLUSH_MESSAGE {
                        self.invalidate_everything();
                    } else if let Some(slug) = payload.strip_prefix(redis_keys::SLUG_MESSAGE_PREFIX) {
                        self.invalidate_slug(slug).await;
                    } else if let Some(generation) =
                        payload.strip_prefix(redis_keys::LISTS_MESSAGE_PREFIX).and_then(|g| g.parse().ok())
                    {
                        self.advance_lists(generation);
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = run => if let Err(e) = r {
                    tracing::debug!(error = %e, "invalidation feed lost; relying on TTLs until Redis is back");
                },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slugs_generation_moves_when_the_projector_invalidates_it_or_everything() {
        let cache = ReadCache::new("", Duration::from_secs(2), RedisKeys::default());
        let before = cache.slug_generation("a-post");
        assert_eq!(cache.slug_generation("a-post"), before, "stable while nothing happens");
        cache.invalidate_slug("a-post").await;
        let after_one = cache.slug_generation("a-post");
        assert_ne!(after_one, before, "a load that overlapped this is not kept");
        cache.invalidate_everything();
        assert_ne!(cache.slug_generation("a-post"), after_one, "a flush concerns every slug");
    }
}
