//! `GET /v1/trending?limit=`: published posts by trending score (views / (age_hours + 2)^1.5), as the
//! projector's stats job last computed it.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use shared::read::model::{AuthorRef, PostSummary, TagRef};
use shared::store::db::ReadRoute;
use sqlx::types::Json as SqlJson;

use super::posts::SummaryRow;
use crate::consistency::projected_read;
use crate::error::ReadResult;
use crate::page;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/trending", get(trending))
}

#[derive(Serialize)]
struct Trending {
    posts: Vec<PostSummary>,
}

/// Trending posts: `{posts: [...]}`.
#[utoipa::path(get, path = "/v1/trending", tag = "posts", params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20")),
    responses((status = 200, description = "highest trending score first")))]
pub async fn trending(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let limit = page::limit(&params)?;
    projected_read(&state, &headers, "trending", ReadRoute::Replica, &["posts"], |pool| async move {
        Ok(Trending { posts: top(&pool, limit).await? })
    })
    .await
}

/// The `limit` published posts with the highest trending score.
pub async fn top(pool: &sqlx::PgPool, limit: i64) -> ReadResult<Vec<PostSummary>> {
    let rows = sqlx::query_as!(
        SummaryRow,
        r#"select p.id, p.slug, p.title, p.summary, p.author as "author: SqlJson<AuthorRef>",
                  p.tags as "tags: SqlJson<Vec<TagRef>>", p.published_at, p.updated_at, p.reading_time_minutes,
                  p.comment_count
           from read.post_stats s join read.posts p on p.id = s.post_id
           where p.status = 'published' and s.score > 0
           order by s.score desc, s.post_id limit $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(PostSummary::from).collect())
}
