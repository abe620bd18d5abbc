//! Public tag pages: tags in use, most used first, and one by slug.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use shared::store::db::ReadRoute;

use crate::consistency::projected_read;
use crate::error::{ReadError, ReadResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tags", get(list)).route("/v1/tags/{slug}", get(by_slug))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TagView {
    pub slug: String,
    pub name: String,
    pub post_count: i32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TagList {
    tags: Vec<TagView>,
}

/// Tags in use, most used first: `{tags: [...]}`.
#[utoipa::path(get, path = "/v1/tags", tag = "tags", responses((status = 200, body = TagList)))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> ReadResult<Response> {
    projected_read(&state, &headers, "tags.list", ReadRoute::Replica, &["posts"], |pool| async move {
        Ok(TagList { tags: in_use(&pool).await? })
    })
    .await
}

/// Tags some published post has, most used first (at most 1,000).
pub async fn in_use(pool: &sqlx::PgPool) -> ReadResult<Vec<TagView>> {
    Ok(sqlx::query_as!(
        TagView,
        "select slug, name, post_count from read.tags where post_count > 0 order by post_count desc, slug limit 1000"
    )
    .fetch_all(pool)
    .await?)
}

/// One tag.
#[utoipa::path(get, path = "/v1/tags/{slug}", tag = "tags", params(("slug" = String, Path)),
    responses((status = 200, body = TagView), (status = 404, body = shared::http::problem::ProblemDoc)))]
pub async fn by_slug(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> ReadResult<Response> {
    projected_read(&state, &headers, "tags.by_slug", ReadRoute::Replica, &["posts"], |pool| async move {
        find(&pool, &slug).await
    })
    .await
}

/// The tag with this slug, while a published post has it.
pub async fn find(pool: &sqlx::PgPool, slug: &str) -> ReadResult<TagView> {
    sqlx::query_as!(TagView, "select slug, name, post_count from read.tags where slug = $1 and post_count > 0", slug)
        .fetch_optional(pool)
        .await?
        .ok_or(ReadError::NotFound("tag"))
}
