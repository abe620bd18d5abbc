//! Redis key names, in one place so the projector and the query API agree on them.

/// Channel on which the projector publishes invalidations (`post:<id>` / `slug:<slug>`).
pub const INVALIDATION_CHANNEL: &str = "pressroom:invalidate";

/// The namespace counter: a rebuild bumps it so that every old key is ignored at once.
pub const NAMESPACE_KEY: &str = "pressroom:ns";

/// A published post's cached detail, by slug.
pub fn post_by_slug(namespace: i64, slug: &str) -> String {
    format!("pressroom:{namespace}:post:slug:{slug}")
}

/// Hash of pending page views: post id → count since the last flush.
pub const VIEWS: &str = "pressroom:views";
