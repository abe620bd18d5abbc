//! The public JSON shapes of the read side, shared by the projector (Redis write-through), the query API,
//! and the event-store fallback that folds a post the projection has not reached yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::author::Author;
use crate::domain::post::Post;
use crate::domain::slug::Slug;
use crate::render;

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
    pub status: String,
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
