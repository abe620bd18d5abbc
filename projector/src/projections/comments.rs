//! The `comments` projection: comments with their moderation state, and each post's count of approved
//! comments. A count change rewrites the post's Redis entry from its row and evicts it in every query API.

use shared::domain::DomainEvent;
use shared::store::event_store::RecordedEvent;
use shared::store::position::LogPosition;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Projection, ProjectionError};
use crate::redis_sink::RedisSink;

pub struct CommentsProjection {
    pool: PgPool,
    redis: RedisSink,
}

impl CommentsProjection {
    pub fn new(pool: PgPool, redis: RedisSink) -> Self {
        Self { pool, redis }
    }
}

impl Projection for CommentsProjection {
    /// Posts whose comment count changed.
    type Effect = Uuid;

    fn name(&self) -> &'static str {
        "comments"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["Comment%"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<Uuid>,
    ) -> Result<(), ProjectionError> {
        let id = event.stream_id;
        let status = match decoded {
            DomainEvent::CommentSubmitted(c) => {
                sqlx::query!(
                    "insert into read.comments (id, post_id, author_name, body, status, version, created_at)
                     values ($1, $2, $3, $4, 'pending', $5, $6) on conflict (id) do nothing",
                    id,
                    c.post_id,
                    c.author_name,
                    c.body,
                    event.version,
                    event.recorded_at
                )
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            DomainEvent::CommentApproved(_) => "approved",
            DomainEvent::CommentRejected(_) => "rejected",
            _ => return Ok(()),
        };
        let before = sqlx::query!("select post_id, status, version from read.comments where id = $1 for update", id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| ProjectionError::Invalid {
                position: event.global_position,
                reason: format!("{} for unknown comment {id}", event.event_type),
            })?;
        if before.version >= event.version {
            return Ok(()); // already applied
        }
        sqlx::query!(
            "update read.comments set status = $2, version = $3,
                    approved_at = case when $2 = 'approved' then $4 else approved_at end
             where id = $1",
            id,
            status,
            event.version,
            event.recorded_at
        )
        .execute(&mut *conn)
        .await?;
        let delta = i32::from(status == "approved") - i32::from(before.status == "approved");
        if delta != 0 {
            // Against the posts projection inserting the row right now (migration 28): a row not there yet
            // counts this approval itself when it is inserted.
            sqlx::query("select pg_advisory_xact_lock(read.post_comment_count_key($1))")
                .bind(before.post_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query!(
                "update read.posts set comment_count = comment_count + $2 where id = $1",
                before.post_id,
                delta
            )
            .execute(&mut *conn)
            .await?;
            effects.push(before.post_id);
        }
        Ok(())
    }

    /// The posts' entries are rewritten, not dropped: a posts batch that read a row before this count
    /// committed may write its entry after any eviction, and the row's position, which the count does not
    /// move, would keep it.
    async fn after_commit(&self, mut posts: Vec<Uuid>) -> bool {
        posts.sort_unstable();
        posts.dedup();
        posts.is_empty() || super::posts::refresh_entries(&self.pool, &self.redis, &posts).await
    }

    async fn redo_effects(&self, since: LogPosition) -> bool {
        let posts = sqlx::query_scalar!(
            "select distinct c.post_id from events e join read.comments c on c.id = e.stream_id
             where (e.transaction_id, e.global_position) > ($1::bigint::text::xid8, $2)
               and e.event_type in ('CommentApproved', 'CommentRejected')",
            since.transaction_id,
            since.global_position
        )
        .fetch_all(&self.pool)
        .await;
        match posts {
            Ok(posts) => {
                for chunk in posts.chunks(1_000) {
                    if !super::posts::refresh_entries(&self.pool, &self.redis, chunk).await {
                        return false;
                    }
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the posts whose comment counts to redo in Redis");
                false
            }
        }
    }
}
