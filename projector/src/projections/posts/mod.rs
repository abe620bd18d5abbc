//! The `posts` projection: post rows with rendered bodies and denormalised authors and tags, slug history,
//! and a write-through of each published post to Redis after commit.

mod fold;
mod live;
mod rows;

use std::collections::BTreeMap;

use shared::domain::DomainEvent;
use shared::read::model::CachedPost;
use shared::store::event_store::RecordedEvent;
use shared::store::position::LogPosition;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use fold::{FoldedAuthor, FoldedPost, PostsFold, TagDelta};
pub use rows::PostRow;

use super::{Applying, Projection, ProjectionError};
use crate::redis_sink::{PostWrite, RedisSink};

/// After-commit work: refresh a post's Redis entry, or retire a slug it no longer answers to.
#[derive(Debug)]
pub enum PostEffect {
    /// A post whose row changed: its entry is written from the row as committed (read back).
    Changed(Uuid),
    /// A post whose row the batch wrote: its entry is written from this row.
    Written(Box<PostRow>),
    SlugRetired {
        slug: String,
        transaction_id: i64,
        position: i64,
    },
}

pub struct PostsProjection {
    pool: PgPool,
    redis: RedisSink,
}

impl PostsProjection {
    pub fn new(pool: PgPool, redis: RedisSink) -> Self {
        Self { pool, redis }
    }
}

/// The event types the `posts` projection reads (the rebuild's fold reads the same).
pub const EVENT_TYPES: &[&str] = &["Post%", "AuthorRegistered", "AuthorProfileUpdated", "AuthorDeactivated"];

/// Whether the `posts` projection reads events of this type.
pub fn handles(event_type: &str) -> bool {
    super::matches_types(EVENT_TYPES, event_type)
}

impl Projection for PostsProjection {
    type Effect = PostEffect;

    fn name(&self) -> &'static str {
        "posts"
    }

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let one = [Applying { event, decoded: decoded.clone(), span: tracing::Span::current() }];
        self.apply_all(conn, &one, effects).await
    }

    /// The batch is folded in memory from the rows it touches (one read), then written set-based.
    async fn apply_all(
        &self,
        conn: &mut PgConnection,
        batch: &[Applying<'_>],
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let mut fold = live::load(&mut *conn, batch).await?;
        for a in batch {
            a.span.in_scope(|| fold.apply(a.event, &a.decoded, effects))?;
        }
        live::write(fold, conn, effects).await?;
        Ok(())
    }

    async fn redo_effects(&self, since: LogPosition) -> bool {
        let changed = sqlx::query_scalar!(
            "select id from read.posts where (last_transaction_id, last_position) > ($1::bigint::text::xid8, $2)",
            since.transaction_id,
            since.global_position
        )
        .fetch_all(&self.pool)
        .await;
        let changed = match changed {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the posts whose Redis entries to redo");
                return false;
            }
        };
        if !changed.is_empty() {
            tracing::info!(posts = changed.len(), "redoing Redis entries not known to have landed");
        }
        for ids in changed.chunks(1_000) {
            let retired = sqlx::query!(
                r#"select h.slug, p.last_transaction_id::text::bigint as "tx!", p.last_position
                   from read.slug_history h join read.posts p on p.id = h.post_id
                   where p.id = any($1) and h.slug <> p.slug"#,
                ids
            )
            .fetch_all(&self.pool)
            .await;
            let Ok(retired) = retired else { return false };
            let mut effects: Vec<PostEffect> = ids.iter().copied().map(PostEffect::Changed).collect();
            effects.extend(retired.into_iter().map(|r| PostEffect::SlugRetired {
                slug: r.slug,
                transaction_id: r.tx,
                position: r.last_position,
            }));
            if !self.after_commit(effects).await {
                return false;
            }
        }
        true
    }

    async fn after_commit(&self, effects: Vec<PostEffect>) -> bool {
        if effects.is_empty() {
            return true;
        }
        let mut ids: Vec<Uuid> = Vec::new();
        let mut written: Vec<PostRow> = Vec::new();
        let mut retired: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for e in effects {
            match e {
                PostEffect::Written(row) => written.push(*row),
                PostEffect::Changed(id) if !ids.contains(&id) => ids.push(id),
                PostEffect::Changed(_) => {}
                PostEffect::SlugRetired { slug, transaction_id, position } => {
                    retired.insert(slug, (transaction_id, position));
                }
            }
        }
        write_through(&self.pool, &self.redis, &ids, written, retired, false).await
    }
}

/// Writes the Redis entries of posts `ids` (from their rows as committed now) and `written` (rows a batch
/// wrote), and tombstones for `retired` slugs; `refresh` as [`RedisSink::write_posts`]. False when some
/// did not land.
async fn write_through(
    pool: &PgPool,
    redis: &RedisSink,
    ids: &[Uuid],
    written: Vec<PostRow>,
    retired: BTreeMap<String, (i64, i64)>,
    refresh: bool,
) -> bool {
    let rows = async {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = shared::store::db::begin_derived(pool, shared::store::db::LIVE_SCHEMA).await?;
        rows::load_rows(&mut tx, ids).await
    }
    .await;
    let rows = match rows {
        Ok(rows) => rows.into_iter().chain(written),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read back projected posts for Redis; redone later");
            return false;
        }
    };
    let mut writes = Vec::with_capacity(retired.len());
    for (slug, (transaction_id, position)) in retired {
        writes.push(PostWrite { slug, transaction_id, position, entry: None });
    }
    for r in rows {
        let (slug, transaction_id, position) = (r.slug.clone(), r.last_transaction_id, r.last_position);
        let entry = (r.status == "published").then(|| CachedPost { transaction_id, position, post: r.into_detail() });
        writes.push(PostWrite { slug, transaction_id, position, entry });
    }
    redis.write_posts(writes, refresh).await
}

/// Rewrites the Redis entries of posts `ids` from their rows as committed now, over entries at the same
/// position: for a change to a post's row that is not the posts projection's (its comment count).
pub async fn refresh_entries(pool: &PgPool, redis: &RedisSink, ids: &[Uuid]) -> bool {
    write_through(pool, redis, ids, Vec::new(), BTreeMap::new(), true).await
}
