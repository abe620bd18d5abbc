//! Redis key names, in one place so the projector and the query API agree on them. Every key and the
//! invalidation channel start with the deployment's prefix (`PRESSROOM_REDIS_PREFIX`, default
//! `pressroom`), so several deployments (or test databases) can share one Redis.

/// The invalidation message that evicts every cached post and list (after a rebuild swapped the tables).
pub const FLUSH_MESSAGE: &str = "all";

/// Invalidation messages that announce a list generation start with this, then the generation.
pub const LISTS_MESSAGE_PREFIX: &str = "lists:";
/// Invalidation messages that evict one post start with this, then its slug.
pub const SLUG_MESSAGE_PREFIX: &str = "slug:";

/// The invalidation message announcing list generation `generation`.
pub fn lists_message(generation: i64) -> String {
    format!("{LISTS_MESSAGE_PREFIX}{generation}")
}

/// The invalidation message that evicts the post at `slug`.
pub fn slug_message(slug: &str) -> String {
    format!("{SLUG_MESSAGE_PREFIX}{slug}")
}

/// The key names of one deployment.
#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: std::sync::Arc<str>,
}

impl Default for RedisKeys {
    fn default() -> Self {
        RedisKeys::new(DEFAULT_PREFIX)
    }
}

/// The prefix when `PRESSROOM_REDIS_PREFIX` is not set.
pub const DEFAULT_PREFIX: &str = "pressroom";

impl RedisKeys {
    pub fn new(prefix: &str) -> Self {
        RedisKeys { prefix: std::sync::Arc::from(prefix) }
    }

    /// Channel on which the projector publishes invalidations: `slug:<slug>` (evict that post),
    /// `lists:<generation>` (list pages of older generations are stale) and [`FLUSH_MESSAGE`].
    pub fn invalidation_channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    /// The namespace counter: a rebuild bumps it so that every older post entry is ignored at once.
    pub fn namespace(&self) -> String {
        format!("{}:ns", self.prefix)
    }

    /// A published post's cached detail, by slug, in namespace `namespace`.
    pub fn post_by_slug(&self, namespace: i64, slug: &str) -> String {
        format!("{}:{namespace}:post:slug:{slug}", self.prefix)
    }

    /// Hash of pending page views: post id → count since the last flush.
    pub fn views(&self) -> String {
        format!("{}:views", self.prefix)
    }

    /// The list generation: the projector bumps it whenever a projected change can alter a list page,
    /// and query APIs key their cached list pages by it.
    pub fn list_generation(&self) -> String {
        format!("{}:lists:generation", self.prefix)
    }

    /// A rate-limit bucket's state for one client.
    pub fn rate_limit(&self, bucket: &str, client: &str) -> String {
        format!("{}:rl:{bucket}:{client}", self.prefix)
    }
}
