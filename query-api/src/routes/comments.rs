//! Approved comments of a published post, oldest first, keyset-paginated by (created_at, id).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::store::db::ReadRoute;
use uuid::Uuid;

use super::posts::{decode_cursor, encode_cursor};
use crate::consistency::projected_read;
use crate::error::{ReadError, ReadResult};
use crate::page;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/posts/{slug}/comments", get(list))
}

#[derive(Serialize)]
pub struct CommentView {
    pub id: Uuid,
    pub author_name: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize)]
pub struct CommentPage {
    pub comments: Vec<CommentView>,
    pub next_cursor: Option<String>,
}

/// Approved comments of a published post: `{comments: [...], next_cursor}`.
#[utoipa::path(get, path = "/v1/posts/{slug}/comments", tag = "comments",
    params(("slug" = String, Path), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "oldest first"), (status = 404, body = shared::http::problem::ProblemDoc)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let limit = page::limit(&params)?;
    let cursor = page::cursor(&params, decode_cursor)?;
    projected_read(&state, &headers, "comments.list", ReadRoute::Replica, &["posts", "comments"], |pool| async move {
        let post = sqlx::query_scalar!("select id from read.posts where slug = $1 and status = 'published'", slug)
            .fetch_optional(&pool)
            .await?
            .ok_or(ReadError::NotFound("post"))?;
        approved(&pool, post, limit, cursor).await
    })
    .await
}

/// A page of the approved comments of post `post`, oldest first, after `cursor`.
pub async fn approved(
    pool: &sqlx::PgPool,
    post: Uuid,
    limit: i64,
    cursor: Option<(DateTime<Utc>, Uuid)>,
) -> ReadResult<CommentPage> {
    let mut comments = sqlx::query_as!(
        CommentView,
        r#"select id, author_name, body, created_at from read.comments
           where post_id = $1 and status = 'approved'
             and ($2::timestamptz is null or (created_at, id) > ($2, $3))
           order by created_at, id limit $4"#,
        post,
        cursor.map(|c| c.0),
        cursor.map(|c| c.1),
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let next_cursor = page::next_cursor(&mut comments, limit, |c| Some(encode_cursor(c.created_at, c.id)));
    Ok(CommentPage { comments, next_cursor })
}
