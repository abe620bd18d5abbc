//! The `comments` projection: comments with their moderation state, and each post's count of approved
//! comments. A count change evicts the post's cached entries so readers see it.

use shared::domain::DomainEvent;
use shared::store::event_store::RecordedEvent;
use sqlx::PgConnection;

use super::{Projection, ProjectionError};
use crate::redis_sink::RedisSink;

pub struct CommentsProjection {
    redis: RedisSink,
}

impl CommentsProjection {
    pub fn new(redis: RedisSink) -> Self {
        Self { redis }
    }
}

impl Projection for CommentsProjection {
    /// Slugs of posts whose comment count changed.
    type Effect = String;

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
        effects: &mut Vec<String>,
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
            let slug = sqlx::query_scalar!(
                "update read.posts set comment_count = comment_count + $2 where id = $1 returning slug",
                before.post_id,
                delta
            )
            .fetch_optional(&mut *conn)
            .await?;
            effects.extend(slug);
        }
        Ok(())
    }

    async fn after_commit(&self, slugs: Vec<String>) -> bool {
        slugs.is_empty() || self.redis.evict_posts(slugs).await
    }
}
