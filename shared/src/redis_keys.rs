//! Redis key names, in one place so the projector and the query API agree on them.

/// Channel on which the projector publishes invalidations: `slug:<slug>` (evict that post) and
/// `lists:<generation>` (list pages of older generations are stale).
pub const INVALIDATION_CHANNEL: &str = "pressroom:invalidate";

/// The namespace counter: a rebuild bumps it so that every old key is ignored at once.
pub const NAMESPACE_KEY: &str = "pressroom:ns";

/// A published post's cached detail, by slug.
pub fn post_by_slug(namespace: i64, slug: &str) -> String {
    format!("pressroom:{namespace}:post:slug:{slug}")
}

/// Hash of pending page views: post id → count since the last flush.
pub const VIEWS: &str = "pressroom:views";

/// The list generation: the projector bumps it whenever a projected change can alter a list page, and
/// query APIs key their cached list pages by it.
pub const LIST_GENERATION_KEY: &str = "pressroom:lists:generation";

/// The invalidation message announcing list generation `generation`.
pub fn lists_message(generation: i64) -> String {
    format!("lists:{generation}")
}

/// The invalidation message that evicts every cached post (after a rebuild swapped the tables).
pub const FLUSH_MESSAGE: &str = "all";
