//! The read tools' arguments and results, with the JSON Schemas agents see (`tools/list`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::read::model::PostSummary;

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SearchArgs {
    /// Words to find (web search syntax: "a phrase", -word, or).
    pub query: String,
    /// 1 to 50, default 10.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Read your writes: a `position` a write returned.
    pub min_position: Option<i64>,
}

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SlugArgs {
    pub slug: String,
    /// Read your writes: a `position` a write returned.
    pub min_position: Option<i64>,
}

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListArgs {
    /// Only posts with this tag (its slug).
    pub tag: Option<String>,
    /// Only posts by this author (their slug).
    pub author: Option<String>,
    /// 1 to 50, default 10.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Read your writes: a `position` a write returned.
    pub min_position: Option<i64>,
}

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct LimitArgs {
    /// 1 to 50, default 10.
    pub limit: Option<i64>,
}

#[derive(Deserialize, rmcp::schemars::JsonSchema, Default)]
#[schemars(crate = "rmcp::schemars")]
pub struct NoArgs {}

/// A post in a list: enough to choose one; `get_post` has the body.
#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostItem {
    pub slug: String,
    pub title: String,
    pub summary: Option<String>,
    pub author: String,
    pub tags: Vec<String>,
    pub published_at: Option<DateTime<Utc>>,
}

impl From<&PostSummary> for PostItem {
    fn from(p: &PostSummary) -> Self {
        PostItem {
            slug: p.slug.clone(),
            title: p.title.clone(),
            summary: p.summary.clone(),
            author: p.author.name.clone(),
            tags: p.tags.iter().map(|t| t.name.clone()).collect(),
            published_at: p.published_at,
        }
    }
}

#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostList {
    pub posts: Vec<PostItem>,
    pub next_cursor: Option<String>,
    /// The log position these results reflect.
    pub position: i64,
}

#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SearchHit {
    #[serde(flatten)]
    pub post: PostItem,
    /// Where the words matched, as plain text (matches between « and »).
    pub snippet: String,
}

#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
    pub next_cursor: Option<String>,
    pub position: i64,
}

/// One published post, its body in Markdown.
#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostOut {
    pub slug: String,
    pub title: String,
    pub summary: Option<String>,
    pub author: String,
    pub author_slug: String,
    pub tags: Vec<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    pub comment_count: i32,
    pub url: String,
    pub body_markdown: String,
    pub position: i64,
}

#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct TagOut {
    pub slug: String,
    pub name: String,
    pub post_count: i32,
}

#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct TagsOut {
    pub tags: Vec<TagOut>,
    pub position: i64,
}

#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct AuthorOut {
    pub slug: String,
    pub name: String,
    pub bio: Option<String>,
    pub post_count: i32,
    pub url: String,
    pub position: i64,
}

#[derive(Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct TrendingOut {
    pub posts: Vec<PostItem>,
    pub position: i64,
}
