//! Public author pages: the directory of active authors with at least one published post (keyset pages
//! by name), and one such author by slug. Admins, contributors without a published post and deactivated
//! accounts are not public.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use shared::store::db::ReadRoute;
use uuid::Uuid;

use crate::consistency::projected_read;
use crate::error::{ReadError, ReadResult};
use crate::page;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/authors", get(list)).route("/v1/authors/{slug}", get(by_slug))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub post_count: i32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorList {
    authors: Vec<AuthorView>,
    next_cursor: Option<String>,
}

/// A directory cursor: the last author's id and name (base64url), so the next page starts right after.
fn encode_cursor(name: &str, id: Uuid) -> String {
    use base64::Engine as _;
    format!("{}.{}", id.simple(), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name))
}

fn decode_cursor(raw: &str) -> Option<(String, Uuid)> {
    use base64::Engine as _;
    let (id, name) = raw.split_once('.')?;
    let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(name).ok()?;
    Some((String::from_utf8(name).ok()?, Uuid::try_parse(id).ok()?))
}

/// Active authors with at least one published post, by name: `{authors: [...], next_cursor}`.
#[utoipa::path(get, path = "/v1/authors", tag = "authors",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"), ("cursor" = Option<String>, Query),
        ("Pressroom-Min-Position" = Option<i64>, Header, minimum = 1, description = "read your writes: a position a command returned")),
    responses((status = 200, body = AuthorList)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let limit = page::limit(&params)?;
    let cursor = page::cursor(&params, decode_cursor)?;
    projected_read(&state, &headers, "authors.list", ReadRoute::Replica, &["posts"], |pool| async move {
        let mut authors = sqlx::query_as!(
            AuthorView,
            "select id, slug, name, bio, avatar_url, post_count from read.post_authors
             where post_count > 0 and active and ($1::text is null or (name, id) > ($1, $2))
             order by name, id limit $3",
            cursor.as_ref().map(|c| c.0.as_str()),
            cursor.as_ref().map(|c| c.1),
            limit + 1
        )
        .fetch_all(&pool)
        .await?;
        let next_cursor = page::next_cursor(&mut authors, limit, |a| Some(encode_cursor(&a.name, a.id)));
        Ok(AuthorList { authors, next_cursor })
    })
    .await
}

/// One active author with a published post.
#[utoipa::path(get, path = "/v1/authors/{slug}", tag = "authors", params(("slug" = String, Path)),
    responses((status = 200, body = AuthorView), (status = 404, body = shared::http::problem::ProblemDoc)))]
pub async fn by_slug(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> ReadResult<Response> {
    projected_read(&state, &headers, "authors.by_slug", ReadRoute::Replica, &["posts"], |pool| async move {
        find(&pool, &slug).await
    })
    .await
}

/// The active author with this slug, while they have a published post.
pub async fn find(pool: &sqlx::PgPool, slug: &str) -> ReadResult<AuthorView> {
    sqlx::query_as!(
        AuthorView,
        "select id, slug, name, bio, avatar_url, post_count from read.post_authors
         where slug = $1 and post_count > 0 and active",
        slug
    )
    .fetch_optional(pool)
    .await?
    .ok_or(ReadError::NotFound("author"))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn directory_cursors_round_trip_any_name(name in "\\PC{0,80}") {
            let id = Uuid::now_v7();
            proptest::prop_assert_eq!(decode_cursor(&encode_cursor(&name, id)), Some((name, id)));
        }
    }
}
