//! The read side's shared shapes: the public JSON of posts, Markdown rendering and excerpts, and the Redis
//! key names the projector writes and the query API reads.

pub mod model;
pub mod redis_keys;
pub mod render;
