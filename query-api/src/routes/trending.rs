//! `GET /v1/trending?limit=`: published posts by trending score (views / (age_hours + 2)^1.5), as the
//! projector's stats job last computed it.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::db::ReadRoute;
use shared::read_model::{AuthorRef, PostSummary, TagRef};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use super::posts::parse_limit;
use crate::consistency::projected_read;
use crate::error::ReadResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/trending", get(trending))
}

struct Row {
    id: Uuid,
    slug: String,
    title: String,
    summary: Option<String>,
    author: SqlJson<AuthorRef>,
    tags: SqlJson<Vec<TagRef>>,
    published_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    reading_time_minutes: i32,
    comment_count: i32,
}

#[derive(Serialize)]
struct Trending {
    posts: Vec<PostSummary>,
}

/// Trending posts: `{posts: [...]}`.
#[utoipa::path(get, path = "/v1/trending", tag = "posts", params(("limit" = Option<i64>, Query)),
    responses((status = 200, description = "highest trending score first")))]
pub async fn trending(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let limit = parse_limit(&params)?;
    projected_read(&state, &headers, ReadRoute::Replica, &["posts"], |pool| async move {
        let rows = sqlx::query_as!(
            Row,
            r#"select p.id, p.slug, p.title, p.summary, p.author as "author: SqlJson<AuthorRef>",
                      p.tags as "tags: SqlJson<Vec<TagRef>>", p.published_at, p.updated_at, p.reading_time_minutes,
                      p.comment_count
               from read.post_stats s join read.posts p on p.id = s.post_id
               where p.status = 'published' and s.score > 0
               order by s.score desc, s.post_id limit $1"#,
            limit
        )
        .fetch_all(&pool)
        .await?;
        let posts = rows
            .into_iter()
            .map(|r| PostSummary {
                id: r.id,
                slug: r.slug,
                title: r.title,
                summary: r.summary,
                author: r.author.0,
                tags: r.tags.0,
                published_at: r.published_at,
                updated_at: r.updated_at,
                reading_time_minutes: r.reading_time_minutes,
                comment_count: r.comment_count,
            })
            .collect();
        Ok(Trending { posts })
    })
    .await
}
