//! The public JSON shapes of the read side, shared by the projector (Redis write-through), the query API,
//! and the event-store fallback that folds a post the projection has not reached yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::author::Author;
use crate::domain::post::Post;
use crate::domain::slug::Slug;
use crate::read::render;

/// The author as embedded in a post summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthorRef {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub avatar_url: Option<String>,
}

impl From<&Author> for AuthorRef {
    fn from(a: &Author) -> Self {
        AuthorRef { id: a.id, slug: a.slug.clone(), name: a.name.clone(), avatar_url: a.avatar_url.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagRef {
    pub slug: String,
    pub name: String,
}

/// Tag names to `{slug, name}` pairs.
pub fn tag_refs(names: &[String]) -> Vec<TagRef> {
    names
        .iter()
        .filter_map(|n| Slug::from_title(n).map(|s| TagRef { slug: s.into_string(), name: n.clone() }))
        .collect()
}

/// A post in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostSummary {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub summary: Option<String>,
    pub author: AuthorRef,
    pub tags: Vec<TagRef>,
    pub published_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub reading_time_minutes: i32,
    pub comment_count: i32,
}

/// A single post: the summary plus its rendered body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostDetail {
    #[serde(flatten)]
    pub summary: PostSummary,
    pub body_html: String,
    pub version: i32,
    pub cover_image_url: Option<String>,
    /// The uploaded cover image's id, if any (`cover` describes it).
    pub cover_media_id: Option<Uuid>,
    /// The cover image with its variant URLs, filled in by the query API when it serves the post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<crate::media::urls::MediaRef>,
    pub status: String,
}

/// The one constructor of a [`PostSummary`] from a row: any value with the summary's columns as fields of
/// the same names (`author` and `tags` as sqlx `Json`), which it moves out — every summary-shaped read
/// (lists, trending, search, the projector's rows) builds through it, so a new field is added once.
#[macro_export]
macro_rules! post_summary {
    ($row:ident) => {
        $crate::read::model::PostSummary {
            id: $row.id,
            slug: $row.slug,
            title: $row.title,
            summary: $row.summary,
            author: $row.author.0,
            tags: $row.tags.0,
            published_at: $row.published_at,
            updated_at: $row.updated_at,
            reading_time_minutes: $row.reading_time_minutes,
            comment_count: $row.comment_count,
        }
    };
}

/// The one constructor of a [`PostDetail`] from a row: the [`post_summary!`] columns plus `body_html`,
/// `version`, `cover_image_url`, `cover_media_id` and `status`.
#[macro_export]
macro_rules! post_detail {
    ($row:ident) => {
        $crate::read::model::PostDetail {
            body_html: $row.body_html,
            version: $row.version,
            cover_image_url: $row.cover_image_url,
            cover_media_id: $row.cover_media_id,
            cover: None,
            status: $row.status,
            summary: $crate::post_summary!($row),
        }
    };
}

impl PostDetail {
    /// Renders a folded post (the events fallback and author reads).
    pub fn from_folded(post: &Post, author: AuthorRef, comment_count: i32) -> Self {
        PostDetail {
            summary: PostSummary {
                id: post.id,
                slug: post.slug.clone(),
                title: post.title.clone(),
                summary: post.summary.clone(),
                author,
                tags: tag_refs(&post.tags),
                published_at: post.published_at,
                updated_at: post.updated_at,
                reading_time_minutes: render::reading_time_minutes(&post.body_markdown),
                comment_count,
            },
            body_html: render::markdown_to_safe_html(&post.body_markdown),
            version: post.version,
            cover_image_url: post.cover_image_url.clone(),
            cover_media_id: post.cover_media_id,
            cover: None,
            status: post.status.as_str().to_string(),
        }
    }
}

/// What the projector writes through to Redis for a post: the detail and the position it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedPost {
    pub transaction_id: i64,
    pub position: i64,
    pub post: PostDetail,
}
