//! Public author pages: every author with their published-post count, and one by slug.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use shared::db::ReadRoute;
use uuid::Uuid;

use crate::consistency::projected_read;
use crate::error::{ReadError, ReadResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/authors", get(list)).route("/v1/authors/{slug}", get(by_slug))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorView {
    id: Uuid,
    slug: String,
    name: String,
    bio: Option<String>,
    avatar_url: Option<String>,
    post_count: i32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorList {
    authors: Vec<AuthorView>,
}

/// Every author with their published-post count: `{authors: [...]}`.
#[utoipa::path(get, path = "/v1/authors", tag = "authors", responses((status = 200, body = AuthorList)))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> ReadResult<Response> {
    projected_read(&state, &headers, "authors.list", ReadRoute::Replica, &["posts"], |pool| async move {
        let authors = sqlx::query_as!(
            AuthorView,
            "select id, slug, name, bio, avatar_url, post_count from read.post_authors order by name, id limit 1000"
        )
        .fetch_all(&pool)
        .await?;
        Ok(AuthorList { authors })
    })
    .await
}

/// One author.
#[utoipa::path(get, path = "/v1/authors/{slug}", tag = "authors", params(("slug" = String, Path)),
    responses((status = 200, body = AuthorView), (status = 404, body = crate::openapi::ProblemDoc)))]
pub async fn by_slug(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> ReadResult<Response> {
    projected_read(&state, &headers, "authors.by_slug", ReadRoute::Replica, &["posts"], |pool| async move {
        sqlx::query_as!(
            AuthorView,
            "select id, slug, name, bio, avatar_url, post_count from read.post_authors where slug = $1",
            slug
        )
        .fetch_optional(&pool)
        .await?
        .ok_or(ReadError::NotFound("author"))
    })
    .await
}
