//! The `posts` table's rows: read for a batch, written back set-based, and converted to and from the
//! fold's posts and the public detail.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shared::domain::post::{Post, PostStatus};
use shared::read::model::{tag_refs, AuthorRef, PostDetail, TagRef};
use shared::store::position::LogPosition;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::fold::{FoldedAuthor, FoldedPost, Rendered};

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
    pub cover_media_id: Option<Uuid>,
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
    /// The row as the fold keeps it.
    pub fn into_folded(self) -> FoldedPost {
        let post = Post {
            id: self.id,
            author_id: self.author_id,
            version: self.version,
            status: parse_status(&self.status),
            title: self.title,
            slug: self.slug,
            body_markdown: self.body_markdown,
            summary: self.summary,
            tags: self.tags.0.into_iter().map(|t| t.name).collect(),
            cover_image_url: self.cover_image_url,
            cover_media_id: self.cover_media_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            published_at: self.published_at,
            scheduled_at: self.scheduled_at,
            // Not kept in the read row: projections fold, they never decide with these.
            ever_published: self.published_at.is_some(),
            scheduled_by: None,
        };
        FoldedPost {
            post,
            author: self.author.0,
            comment_count: self.comment_count,
            last: LogPosition::new(self.last_transaction_id, self.last_position),
            rendered: Some(Rendered { body_html: self.body_html, reading_time_minutes: self.reading_time_minutes }),
        }
    }

    /// The public detail this row serves.
    pub fn into_detail(self) -> PostDetail {
        shared::post_detail!(self)
    }
}

impl From<FoldedPost> for PostRow {
    /// The row for a folded post, its body rendered if it changed.
    fn from(mut p: FoldedPost) -> Self {
        let Rendered { body_html, reading_time_minutes } =
            p.rendered.take().unwrap_or_else(|| Rendered::of(&p.post.body_markdown));
        let post = p.post;
        PostRow {
            id: post.id,
            status: post.status.as_str().to_string(),
            tags: Json(tag_refs(&post.tags)),
            slug: post.slug,
            title: post.title,
            summary: post.summary,
            body_markdown: post.body_markdown,
            body_html,
            cover_image_url: post.cover_image_url,
            cover_media_id: post.cover_media_id,
            author_id: post.author_id,
            author: Json(p.author),
            reading_time_minutes,
            comment_count: p.comment_count,
            version: post.version,
            created_at: post.created_at,
            updated_at: post.updated_at,
            published_at: post.published_at,
            scheduled_at: post.scheduled_at,
            last_transaction_id: p.last.transaction_id,
            last_position: p.last.global_position,
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

/// The rows of these posts, from the `posts` table the search path finds.
pub async fn load_rows(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<PostRow>, sqlx::Error> {
    sqlx::query_as!(
        PostRow,
        r#"select id, slug, status, title, summary, body_markdown, body_html, cover_image_url, cover_media_id,
                  tags as "tags: Json<Vec<TagRef>>", author_id, author as "author: Json<AuthorRef>",
                  reading_time_minutes, comment_count, version, created_at, updated_at, published_at, scheduled_at,
                  last_transaction_id::text::bigint as "last_transaction_id!", last_position
           from posts where id = any($1)"#,
        ids
    )
    .fetch_all(conn)
    .await
}

/// These authors as `post_authors` holds them.
pub async fn load_authors(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<FoldedAuthor>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!("select id, slug, name, avatar_url, bio, active from post_authors where id = any($1)", ids)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| FoldedAuthor {
            author: AuthorRef { id: r.id, slug: r.slug, name: r.name, avatar_url: r.avatar_url },
            bio: r.bio,
            active: r.active,
        })
        .collect())
}

/// What the table holds of a saved row that the row in memory may not: the comment count (the comments
/// projection's column: the upsert counts it for a new row and leaves it on an existing one) and the
/// timestamps as stored (to the microsecond).
#[derive(Debug, Clone)]
pub struct Saved {
    comment_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
    scheduled_at: Option<DateTime<Utc>>,
}

impl Saved {
    /// Makes `row` what the table holds.
    pub fn apply(self, row: &mut PostRow) {
        row.comment_count = self.comment_count;
        row.created_at = self.created_at;
        row.updated_at = self.updated_at;
        row.published_at = self.published_at;
        row.scheduled_at = self.scheduled_at;
    }
}

/// Upserts `rows` in one statement (the search vector is kept by the table's trigger); returns, by id,
/// what the table holds of each that the row may not ([`Saved`]). A row new to the table (`new`: ids the
/// batch did not load) takes the count of its post's approved comments: the comments projection, which may
/// run ahead of this one, had no row to add them to. Both take the post's count lock first (migration 28).
pub async fn save_rows(
    conn: &mut PgConnection,
    rows: &[PostRow],
    mut new: Vec<Uuid>,
) -> Result<HashMap<Uuid, Saved>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    if !new.is_empty() {
        // Sorted. A comments batch locks as its events come: should the two ever wait for each other,
        // PostgreSQL aborts one, and its runner retries it one event at a time.
        new.sort_unstable();
        sqlx::query("select pg_advisory_xact_lock(read.post_comment_count_key(id)) from unnest($1::uuid[]) as u(id)")
            .bind(&new)
            .execute(&mut *conn)
            .await?;
    }
    let col = |f: fn(&PostRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&PostRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&PostRow) -> Option<DateTime<Utc>>| rows.iter().map(f).collect::<Vec<_>>();
    let int = |f: fn(&PostRow) -> i32| rows.iter().map(f).collect::<Vec<_>>();
    let json = |v: serde_json::Result<String>| v.unwrap_or_default();
    let saved = sqlx::query!(
        r#"insert into posts (id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags,
                                  author_id, author, reading_time_minutes, comment_count, version, created_at,
                                  updated_at, published_at, scheduled_at, last_transaction_id, last_position, cover_media_id)
           select id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags::jsonb,
                  author_id, author::jsonb, reading_time_minutes,
                  -- A row new to the table counts what was approved before it (locked above); the update
                  -- below leaves the count to the comments projection, so an existing row's is not read.
                  case when r.id = any($21::uuid[])
                       then (select count(*)::int from read.comments c where c.post_id = r.id and c.status = 'approved')
                       else 0 end,
                  version, created_at,
                  updated_at, published_at, scheduled_at, last_transaction_id::text::xid8, last_position,
                  cover_media_id
           from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::uuid[], $11::text[], $12::int[], $13::int[],
                       $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[],
                       $18::bigint[], $19::bigint[], $20::uuid[])
                as r(id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags, author_id,
                     author, reading_time_minutes, version, created_at, updated_at, published_at,
                     scheduled_at, last_transaction_id, last_position, cover_media_id)
           on conflict (id) do update set
               slug = excluded.slug, status = excluded.status, title = excluded.title, summary = excluded.summary,
               body_markdown = excluded.body_markdown, body_html = excluded.body_html,
               cover_image_url = excluded.cover_image_url, cover_media_id = excluded.cover_media_id, tags = excluded.tags, author = excluded.author,
               reading_time_minutes = excluded.reading_time_minutes, version = excluded.version,
               updated_at = excluded.updated_at, published_at = excluded.published_at,
               scheduled_at = excluded.scheduled_at, last_transaction_id = excluded.last_transaction_id,
               last_position = excluded.last_position
           returning id, comment_count, created_at, updated_at, published_at, scheduled_at"#,
        &rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        &col(|r| r.slug.clone()),
        &col(|r| r.status.clone()),
        &col(|r| r.title.clone()),
        &opt(|r| r.summary.clone()) as &[Option<String>],
        &col(|r| r.body_markdown.clone()),
        &col(|r| r.body_html.clone()),
        &opt(|r| r.cover_image_url.clone()) as &[Option<String>],
        &rows.iter().map(|r| json(serde_json::to_string(&r.tags.0))).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.author_id).collect::<Vec<_>>(),
        &rows.iter().map(|r| json(serde_json::to_string(&r.author.0))).collect::<Vec<_>>(),
        &int(|r| r.reading_time_minutes),
        &int(|r| r.version),
        &time(|r| Some(r.created_at)) as &[Option<DateTime<Utc>>],
        &time(|r| Some(r.updated_at)) as &[Option<DateTime<Utc>>],
        &time(|r| r.published_at) as &[Option<DateTime<Utc>>],
        &time(|r| r.scheduled_at) as &[Option<DateTime<Utc>>],
        &rows.iter().map(|r| r.last_transaction_id).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.last_position).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.cover_media_id).collect::<Vec<_>>() as &[Option<Uuid>],
        &new,
    )
    .fetch_all(conn)
    .await?;
    Ok(saved
        .into_iter()
        .map(|r| {
            let saved = Saved {
                comment_count: r.comment_count,
                created_at: r.created_at,
                updated_at: r.updated_at,
                published_at: r.published_at,
                scheduled_at: r.scheduled_at,
            };
            (r.id, saved)
        })
        .collect())
}
