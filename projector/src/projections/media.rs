//! The `media` projection: every uploaded image's facts in `read.media` (the variant worker reads its
//! backlog there, woken after an upload commits). An alt-text change or a deletion evicts the cached posts
//! whose cover it is.

use shared::domain::DomainEvent;
use shared::store::event_store::RecordedEvent;
use sqlx::PgConnection;
use std::sync::Arc;
use tokio::sync::Notify;

use super::{Projection, ProjectionError};
use crate::redis_sink::RedisSink;

pub struct MediaProjection {
    redis: RedisSink,
    uploaded: Arc<Notify>,
}

impl MediaProjection {
    /// `uploaded` is rung after a batch with an upload commits (the variant worker waits on it).
    pub fn new(redis: RedisSink, uploaded: Arc<Notify>) -> Self {
        Self { redis, uploaded }
    }
}

impl Projection for MediaProjection {
    /// The slug of a post whose cover changed, or None for an upload (variants to make).
    type Effect = Option<String>;

    fn name(&self) -> &'static str {
        "media"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["Media%"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<Option<String>>,
    ) -> Result<(), ProjectionError> {
        let id = event.stream_id;
        match decoded {
            DomainEvent::MediaUploaded(u) => {
                // A re-upload after a deletion starts the image over, variants included (they are the same
                // bytes, so the worker finds its earlier objects and only records them).
                sqlx::query(
                    "insert into read.media (id, hash, kind, width, height, size, alt, uploaded_by, uploaded_at, version)
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     on conflict (id) do update set alt = excluded.alt, uploaded_by = excluded.uploaded_by,
                         uploaded_at = excluded.uploaded_at, version = excluded.version, deleted = false,
                         variant_widths = '{}', variants_at = null, variant_attempts = 0, variant_error = null,
                         variant_retry_at = null
                     where read.media.version < excluded.version",
                )
                .bind(id)
                .bind(&u.hash)
                .bind(u.kind.as_str())
                .bind(u.width as i32)
                .bind(u.height as i32)
                .bind(u.size as i64)
                .bind(&u.alt)
                .bind(u.uploaded_by)
                .bind(event.recorded_at)
                .bind(event.version)
                .execute(&mut *conn)
                .await?;
                effects.push(None);
                return Ok(());
            }
            DomainEvent::MediaAltChanged(a) => {
                sqlx::query("update read.media set alt = $2, version = $3 where id = $1 and version < $3")
                    .bind(id)
                    .bind(&a.alt)
                    .bind(event.version)
                    .execute(&mut *conn)
                    .await?;
            }
            DomainEvent::MediaDeleted(_) => {
                sqlx::query("update read.media set deleted = true, version = $2 where id = $1 and version < $2")
                    .bind(id)
                    .bind(event.version)
                    .execute(&mut *conn)
                    .await?;
            }
            _ => return Ok(()),
        }
        let slugs: Vec<String> =
            sqlx::query_scalar("select slug from read.posts where cover_media_id = $1 and status = 'published'")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
        effects.extend(slugs.into_iter().map(Some));
        Ok(())
    }

    async fn after_commit(&self, effects: Vec<Option<String>>) -> bool {
        if effects.iter().any(Option::is_none) {
            self.uploaded.notify_one();
        }
        let slugs: Vec<String> = effects.into_iter().flatten().collect();
        slugs.is_empty() || self.redis.evict_posts(slugs).await
    }
}
