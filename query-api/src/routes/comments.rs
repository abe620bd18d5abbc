//! Approved comments of a published post, oldest first, keyset-paginated by (created_at, id).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::comment::CommentStatus;
use shared::store::db::ReadRoute;
use shared::store::streams::{self, PostComment, Until};
use sqlx::PgConnection;
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

/// The approved comments among a post's comments folded from the event store, oldest first.
fn approved_folded(folded: Vec<PostComment>) -> impl Iterator<Item = CommentView> {
    folded.into_iter().filter(|c| c.state.status == CommentStatus::Approved).map(|c| CommentView {
        id: c.state.id,
        author_name: c.author_name,
        body: c.body,
        created_at: c.created_at,
    })
}

/// The first `limit` approved comments of post `post`, folded from the event store: the read-your-writes
/// fallback's, for a post whose projections even the primary has not brought up to the reader's token.
pub async fn approved_from_events(state: &AppState, post: Uuid, limit: usize) -> ReadResult<Vec<CommentView>> {
    let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
    let folded = streams::load_post_comments(&mut conn, post, Until::Head).await?;
    Ok(approved_folded(folded).take(limit).collect())
}

/// The count of post `post`'s approved comments folded from the event store as far as `until`: the comment
/// count of a post folded from its events (approving a comment moves no post stream).
pub async fn count_from_events(conn: &mut PgConnection, post: Uuid, until: Until) -> ReadResult<i32> {
    let approved = approved_folded(streams::load_post_comments(conn, post, until).await?).count();
    Ok(i32::try_from(approved).unwrap_or(i32::MAX))
}
