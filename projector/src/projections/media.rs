//! The `media` projection: every uploaded image's facts in `read.media` (the variant worker reads its
//! backlog there). An alt-text change or a deletion evicts the cached posts whose cover it is.

use shared::domain::DomainEvent;
use shared::store::event_store::RecordedEvent;
use sqlx::PgConnection;

use super::{Projection, ProjectionError};
use crate::redis_sink::RedisSink;

pub struct MediaProjection {
    redis: RedisSink,
}

impl MediaProjection {
    pub fn new(redis: RedisSink) -> Self {
        Self { redis }
    }
}

impl Projection for MediaProjection {
    /// Slugs of posts whose cover changed.
    type Effect = String;

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
        effects: &mut Vec<String>,
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
        effects.extend(slugs);
        Ok(())
    }

    async fn after_commit(&self, slugs: Vec<String>) -> bool {
        slugs.is_empty() || self.redis.evict_posts(slugs).await
    }
}
