//! The `posts` projection: post rows with rendered bodies and denormalised authors and tags, slug history,
//! and a write-through of each published post to Redis after commit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use shared::domain::events::{AuthorProfileUpdated, AuthorRegistered};
use shared::domain::post::{self, Post, PostStatus};
use shared::domain::DomainEvent;
use shared::event_store::RecordedEvent;
use shared::position::LogPosition;
use shared::read_model::{tag_refs, AuthorRef, CachedPost, PostDetail, PostSummary, TagRef};
use shared::render;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Projection, ProjectionError};
use crate::redis_sink::RedisSink;

/// After-commit work: refresh a post's Redis entry, or retire a slug it no longer answers to.
#[derive(Debug)]
pub enum PostEffect {
    Changed(Uuid),
    SlugRetired { slug: String, transaction_id: i64, position: i64 },
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

/// A row of `posts`.
#[derive(Debug, Clone)]
pub struct PostRow {
    pub id: Uuid,
    pub slug: String,
    pub status: String,
    pub title: String,
    pub summary: Option<String>,
    pub body_markdown: String,
    pub body_html: String,
    pub cover_image_url: Option<String>,
    pub tags: Json<Vec<TagRef>>,
    pub author_id: Uuid,
    pub author: Json<AuthorRef>,
    pub reading_time_minutes: i32,
    pub comment_count: i32,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub last_transaction_id: i64,
    pub last_position: i64,
}

impl PostRow {
    fn to_domain(&self) -> Post {
        Post {
            id: self.id,
            author_id: self.author_id,
            version: self.version,
            status: parse_status(&self.status),
            title: self.title.clone(),
            slug: self.slug.clone(),
            body_markdown: self.body_markdown.clone(),
            summary: self.summary.clone(),
            tags: self.tags.0.iter().map(|t| t.name.clone()).collect(),
            cover_image_url: self.cover_image_url.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            published_at: self.published_at,
            scheduled_at: self.scheduled_at,
        }
    }

    /// The public detail this row serves.
    pub fn to_detail(&self) -> PostDetail {
        PostDetail {
            summary: PostSummary {
                id: self.id,
                slug: self.slug.clone(),
                title: self.title.clone(),
                summary: self.summary.clone(),
                author: self.author.0.clone(),
                tags: self.tags.0.clone(),
                published_at: self.published_at,
                updated_at: self.updated_at,
                reading_time_minutes: self.reading_time_minutes,
                comment_count: self.comment_count,
            },
            body_html: self.body_html.clone(),
            version: self.version,
            cover_image_url: self.cover_image_url.clone(),
            status: self.status.clone(),
        }
    }
}

fn parse_status(s: &str) -> PostStatus {
    match s {
        "scheduled" => PostStatus::Scheduled,
        "published" => PostStatus::Published,
        "deleted" => PostStatus::Deleted,
        _ => PostStatus::Draft,
    }
}

async fn load_rows(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<PostRow>, sqlx::Error> {
    sqlx::query_as!(
        PostRow,
        r#"select id, slug, status, title, summary, body_markdown, body_html, cover_image_url,
                  tags as "tags: Json<Vec<TagRef>>", author_id, author as "author: Json<AuthorRef>",
                  reading_time_minutes, comment_count, version, created_at, updated_at, published_at, scheduled_at,
                  last_transaction_id::text::bigint as "last_transaction_id!", last_position
           from posts where id = any($1)"#,
        ids
    )
    .fetch_all(conn)
    .await
}

async fn save_row(conn: &mut PgConnection, r: &PostRow) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"insert into posts (id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags,
                                  author_id, author, reading_time_minutes, comment_count, version, created_at,
                                  updated_at, published_at, scheduled_at, last_transaction_id, last_position)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                   $19::bigint::text::xid8, $20)
           on conflict (id) do update set
               slug = excluded.slug, status = excluded.status, title = excluded.title, summary = excluded.summary,
               body_markdown = excluded.body_markdown, body_html = excluded.body_html,
               cover_image_url = excluded.cover_image_url, tags = excluded.tags, author = excluded.author,
               reading_time_minutes = excluded.reading_time_minutes, version = excluded.version,
               updated_at = excluded.updated_at, published_at = excluded.published_at,
               scheduled_at = excluded.scheduled_at, last_transaction_id = excluded.last_transaction_id,
               last_position = excluded.last_position"#,
        r.id,
        r.slug,
        r.status,
        r.title,
        r.summary,
        r.body_markdown,
        r.body_html,
        r.cover_image_url,
        r.tags as _,
        r.author_id,
        r.author as _,
        r.reading_time_minutes,
        r.comment_count,
        r.version,
        r.created_at,
        r.updated_at,
        r.published_at,
        r.scheduled_at,
        r.last_transaction_id,
        r.last_position,
    )
    .execute(conn)
    .await?;
    Ok(())
}

impl PostsProjection {
    async fn apply_post_event(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let id = event.stream_id;
        let existing = load_rows(&mut *conn, &[id]).await?.pop();
        if existing.as_ref().is_some_and(|r| r.version >= event.version) {
            return Ok(()); // already applied (a rebuild or replay over existing rows)
        }
        let invalid = |reason: String| ProjectionError::Invalid { position: event.global_position, reason };
        let folded = post::apply(existing.as_ref().map(PostRow::to_domain), id, decoded, event.recorded_at)
            .ok_or_else(|| invalid(format!("{} for post {id}, which has no PostDrafted", event.event_type)))?;
        if folded.version != event.version {
            return Err(invalid(format!(
                "post {id} would be at version {}, event is {}",
                folded.version, event.version
            )));
        }
        let author = match &existing {
            Some(r) => r.author.0.clone(),
            None => load_author(&mut *conn, folded.author_id)
                .await?
                .ok_or_else(|| invalid(format!("post {id} names unknown author {}", folded.author_id)))?,
        };
        let body_html = match &existing {
            Some(r) if r.body_markdown == folded.body_markdown => r.body_html.clone(),
            _ => render::markdown_to_safe_html(&folded.body_markdown),
        };
        let row = PostRow {
            id,
            slug: folded.slug.clone(),
            status: folded.status.as_str().to_string(),
            title: folded.title.clone(),
            summary: folded.summary.clone(),
            reading_time_minutes: render::reading_time_minutes(&folded.body_markdown),
            body_markdown: folded.body_markdown,
            body_html,
            cover_image_url: folded.cover_image_url,
            tags: Json(tag_refs(&folded.tags)),
            author_id: folded.author_id,
            author: Json(author),
            comment_count: existing.as_ref().map_or(0, |r| r.comment_count),
            version: folded.version,
            created_at: folded.created_at,
            updated_at: folded.updated_at,
            published_at: folded.published_at,
            scheduled_at: folded.scheduled_at,
            last_transaction_id: event.transaction_id,
            last_position: event.global_position,
        };
        save_row(&mut *conn, &row).await?;
        if existing.as_ref().is_none_or(|r| r.slug != row.slug) {
            sqlx::query!(
                "insert into slug_history (slug, post_id) values ($1, $2) on conflict (slug) do update set post_id = excluded.post_id",
                row.slug,
                id
            )
            .execute(&mut *conn)
            .await?;
        }
        update_counts(&mut *conn, existing.as_ref(), &row).await?;
        if let Some(old) = existing.filter(|r| r.slug != row.slug) {
            effects.push(PostEffect::SlugRetired {
                slug: old.slug,
                transaction_id: event.transaction_id,
                position: event.global_position,
            });
        }
        effects.push(PostEffect::Changed(id));
        Ok(())
    }

    async fn apply_author_event(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let id = event.stream_id;
        let author = match decoded {
            DomainEvent::AuthorRegistered(AuthorRegistered { name, slug, avatar_url, .. }) => {
                let bio = match decoded {
                    DomainEvent::AuthorRegistered(r) => r.bio.clone(),
                    _ => None,
                };
                sqlx::query!(
                    "insert into post_authors (id, slug, name, avatar_url, bio) values ($1, $2, $3, $4, $5)
                     on conflict (id) do update set slug = excluded.slug, name = excluded.name,
                         avatar_url = excluded.avatar_url, bio = excluded.bio",
                    id,
                    slug,
                    name,
                    avatar_url.as_deref(),
                    bio
                )
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { name, slug, avatar_url, .. }) => {
                let Some(mut a) = load_author(&mut *conn, id).await? else {
                    return Err(ProjectionError::Invalid {
                        position: event.global_position,
                        reason: format!("profile update for unknown author {id}"),
                    });
                };
                if let DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { bio: Some(bio), .. }) = decoded {
                    sqlx::query!("update post_authors set bio = $2 where id = $1", id, bio.as_deref())
                        .execute(&mut *conn)
                        .await?;
                }
                if name.is_none() && slug.is_none() && avatar_url.is_none() {
                    return Ok(()); // nothing a post shows changed
                }
                a.name = name.clone().unwrap_or(a.name);
                a.slug = slug.clone().unwrap_or(a.slug);
                a.avatar_url = avatar_url.clone().unwrap_or(a.avatar_url);
                a
            }
            _ => return Ok(()),
        };
        sqlx::query!(
            "insert into post_authors (id, slug, name, avatar_url) values ($1, $2, $3, $4)
             on conflict (id) do update set slug = excluded.slug, name = excluded.name, avatar_url = excluded.avatar_url",
            author.id,
            author.slug,
            author.name,
            author.avatar_url
        )
        .execute(&mut *conn)
        .await?;
        // One set-based update for every post of the author, stamped with this event's position.
        let changed = sqlx::query_scalar!(
            "update posts set author = $2, last_transaction_id = $3::bigint::text::xid8, last_position = $4
             where author_id = $1 returning id",
            id,
            Json(&author) as _,
            event.transaction_id,
            event.global_position
        )
        .fetch_all(&mut *conn)
        .await?;
        effects.extend(changed.into_iter().map(PostEffect::Changed));
        Ok(())
    }
}

/// Keeps published-post counts of tags and authors: the difference between what the row counted
/// for before (if it was published) and after.
async fn update_counts(conn: &mut PgConnection, before: Option<&PostRow>, after: &PostRow) -> Result<(), sqlx::Error> {
    let published = |r: &PostRow| r.status == "published";
    let old: Vec<&TagRef> = before.filter(|r| published(r)).map(|r| r.tags.0.iter().collect()).unwrap_or_default();
    let new: Vec<&TagRef> = if published(after) { after.tags.0.iter().collect() } else { Vec::new() };
    for gone in old.iter().filter(|t| !new.iter().any(|n| n.slug == t.slug)) {
        sqlx::query!("update tags set post_count = post_count - 1 where slug = $1", gone.slug)
            .execute(&mut *conn)
            .await?;
    }
    for added in new.iter().filter(|t| !old.iter().any(|o| o.slug == t.slug)) {
        sqlx::query!(
            "insert into tags (slug, name, post_count) values ($1, $2, 1)
             on conflict (slug) do update set post_count = tags.post_count + 1",
            added.slug,
            added.name
        )
        .execute(&mut *conn)
        .await?;
    }
    let delta = i32::from(published(after)) - i32::from(before.is_some_and(published));
    if delta != 0 {
        sqlx::query!("update post_authors set post_count = post_count + $2 where id = $1", after.author_id, delta)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn load_author(conn: &mut PgConnection, id: Uuid) -> Result<Option<AuthorRef>, sqlx::Error> {
    sqlx::query_as!(AuthorRef, "select id, slug, name, avatar_url from post_authors where id = $1", id)
        .fetch_optional(conn)
        .await
}

/// The event types the `posts` projection reads (the rebuild's fold reads the same).
pub fn handles(event_type: &str) -> bool {
    event_type.starts_with("Post") || matches!(event_type, "AuthorRegistered" | "AuthorProfileUpdated")
}

impl Projection for PostsProjection {
    type Effect = PostEffect;

    fn name(&self) -> &'static str {
        "posts"
    }

    fn handles(&self, event_type: &str) -> bool {
        handles(event_type)
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        match decoded {
            e if e.is_post_event() => self.apply_post_event(conn, event, decoded, effects).await,
            DomainEvent::AuthorRegistered(_) | DomainEvent::AuthorProfileUpdated(_) => {
                self.apply_author_event(conn, event, decoded, effects).await
            }
            _ => Ok(()),
        }
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
        let mut retired: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for e in effects {
            match e {
                PostEffect::Changed(id) if !ids.contains(&id) => ids.push(id),
                PostEffect::Changed(_) => {}
                PostEffect::SlugRetired { slug, transaction_id, position } => {
                    retired.insert(slug, (transaction_id, position));
                }
            }
        }
        let rows = async {
            let mut tx = self.pool.begin().await?;
            crate::runner::set_search_path(&mut tx, crate::runner::LIVE_SCHEMA).await?;
            load_rows(&mut tx, &ids).await
        }
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read back projected posts for Redis; redone later");
                return false;
            }
        };
        let mut writes = Vec::with_capacity(rows.len() + retired.len());
        for (slug, (tx, pos)) in retired {
            writes.push((slug, tx, pos, None));
        }
        for r in rows {
            let entry = (r.status == "published").then(|| CachedPost {
                transaction_id: r.last_transaction_id,
                position: r.last_position,
                post: r.to_detail(),
            });
            writes.push((r.slug.clone(), r.last_transaction_id, r.last_position, entry));
        }
        self.redis.write_posts(writes).await
    }
}
