//! An author's own posts (JWT): their posts in any status (editors and admins see all), a post by id with
//! drafts included, its version history, and the post as it was at a version or a moment — folded from
//! the post's events, so they are exact whatever the projections' lag.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::author::Author;
use shared::domain::post::Post;
use shared::domain::values::FieldError;
use shared::http::IdPath;
use shared::read::model::{AuthorRef, PostDetail};
use shared::store::db::{ReadRoute, ReadSource};
use shared::store::streams::{self, Loaded, Until};
use uuid::Uuid;

use super::posts::{decode_cursor, encode_cursor};
use crate::consistency::{projected_read, stamp};
use crate::error::{ReadError, ReadResult};
use crate::page;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/author/posts", get(list))
        .route("/v1/author/posts/{id}", get(one))
        .route("/v1/author/posts/{id}/versions", get(versions))
        .route("/v1/author/posts/{id}/versions/{n}", get(at_version))
}

/// The active author behind a valid bearer token, read from their stream.
pub struct Reader(pub Author);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ReadError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let id = shared::http::auth::bearer_subject(&parts.headers, &state.keys)
            .map_err(|_| ReadError::Unauthorized)?
            .ok_or(ReadError::Unauthorized)?;
        let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
        let author = shared::http::auth::active_author(&mut conn, id).await?;
        author.map(Reader).ok_or(ReadError::Unauthorized)
    }
}

impl Reader {
    fn may_read(&self, post: &Post) -> bool {
        post.author_id == self.0.id || self.0.role.acts_on_all_posts()
    }
}

#[derive(Serialize)]
struct AuthorPost {
    #[serde(flatten)]
    post: PostDetail,
}

/// One of the author's posts, any status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListItem {
    id: Uuid,
    slug: String,
    status: String,
    title: String,
    version: i32,
    updated_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
    scheduled_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListPage {
    posts: Vec<ListItem>,
    next_cursor: Option<String>,
}

/// The reader's own posts in any status (editors and admins: everyone's), most recently updated first.
#[utoipa::path(get, path = "/v1/author/posts", tag = "author", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "draft, scheduled, published or deleted", pattern = "^(draft|scheduled|published|deleted)?$"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"), ("cursor" = Option<String>, Query),
        ("Pressroom-Min-Position" = Option<i64>, Header, minimum = 1, description = "read your writes")),
    responses((status = 200, body = ListPage)))]
pub async fn list(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let limit = page::limit(&params)?;
    let status = params.get("status").filter(|s| !s.is_empty()).cloned();
    if status.as_deref().is_some_and(|s| !matches!(s, "draft" | "scheduled" | "published" | "deleted")) {
        return Err(ReadError::Validation(vec![FieldError::new("status", "draft, scheduled, published or deleted")]));
    }
    let cursor = page::cursor(&params, decode_cursor)?;
    let only = (!reader.0.role.acts_on_all_posts()).then_some(reader.0.id);
    projected_read(&state, &headers, "author.posts", ReadRoute::Replica, &["posts"], |pool| async move {
        let mut rows: Vec<ListItem> = sqlx::query_as!(
            ListItem,
            r#"select id, slug, status, title, version, updated_at, published_at, scheduled_at from read.posts
               where ($1::uuid is null or author_id = $1) and ($2::text is null or status = $2)
                 and ($3::timestamptz is null or (updated_at, id) < ($3, $4))
               order by updated_at desc, id desc limit $5"#,
            only,
            status,
            cursor.map(|c| c.0),
            cursor.map(|c| c.1),
            limit + 1
        )
        .fetch_all(&pool)
        .await?;
        let next_cursor = page::next_cursor(&mut rows, limit, |r| Some(encode_cursor(r.updated_at, r.id)));
        Ok(ListPage { posts: rows, next_cursor })
    })
    .await
}

/// Folds the post as far as `until` from the event store on the primary.
async fn fold(state: &AppState, reader: &Reader, id: Uuid, until: Until) -> ReadResult<Response> {
    let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
    let loaded = streams::load::<Post>(&mut conn, id, until).await?;
    let Loaded { state: post, position } =
        loaded.filter(|l| reader.may_read(&l.state)).ok_or(ReadError::NotFound("post"))?;
    if matches!(until, Until::Version(v) if v > post.version) {
        return Err(ReadError::NotFound("version"));
    }
    let author = streams::load_author(&mut conn, post.author_id)
        .await?
        .map(|a| AuthorRef::from(&a))
        .ok_or(ReadError::NotFound("author"))?;
    // Its comments as they were at the same point: a version's is where the post's event at that version is.
    let comments_until = match until {
        Until::Version(_) => Until::Position(position),
        other => other,
    };
    let comments = crate::routes::comments::count_from_events(&mut conn, id, comments_until).await?;
    let body = AuthorPost { post: PostDetail::from_folded(&post, author, comments) };
    Ok(stamp(Json(body).into_response(), position, ReadSource::Events))
}

/// One of the reader's posts (draft included), folded from its events; `as_of` shows it as it was then.
#[utoipa::path(get, path = "/v1/author/posts/{id}", tag = "author", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("as_of" = Option<DateTime<Utc>>, Query, description = "RFC 3339")),
    responses((status = 200, body = PostDetail)))]
pub async fn one(
    State(state): State<AppState>,
    reader: Reader,
    IdPath(id): IdPath,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let as_of = match params.get("as_of") {
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw)
                .map_err(|_| ReadError::Validation(vec![FieldError::new("as_of", "must be an RFC 3339 timestamp")]))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    fold(&state, &reader, id, as_of.map_or(Until::Head, Until::Time)).await
}

/// The post as it was at version `n`, folded from its events.
#[utoipa::path(get, path = "/v1/author/posts/{id}/versions/{n}", tag = "author", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("n" = i32, Path, minimum = 1)), responses((status = 200, body = PostDetail)))]
pub async fn at_version(
    State(state): State<AppState>,
    reader: Reader,
    Path((id, n)): Path<(String, String)>,
) -> ReadResult<Response> {
    let id = Uuid::try_parse(&id).map_err(|_| ReadError::NotFound("post"))?;
    let n: i32 = n.parse().ok().filter(|n| *n >= 1).ok_or(ReadError::NotFound("version"))?;
    fold(&state, &reader, id, Until::Version(n)).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionList {
    versions: Vec<Version>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Version {
    version: i32,
    event_type: String,
    actor_id: Option<Uuid>,
    recorded_at: DateTime<Utc>,
}

/// The post's version list: `{versions: [{version, event_type, actor_id, recorded_at}]}`.
#[utoipa::path(get, path = "/v1/author/posts/{id}/versions", tag = "author", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = VersionList)))]
pub async fn versions(State(state): State<AppState>, reader: Reader, IdPath(id): IdPath) -> ReadResult<Response> {
    let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
    let events = shared::store::log::read_stream(&mut conn, id, None).await?;
    streams::load_post(&mut conn, id).await?.filter(|p| reader.may_read(p)).ok_or(ReadError::NotFound("post"))?;
    let versions: Vec<Version> = events
        .iter()
        .map(|e| Version {
            version: e.version,
            event_type: e.event_type.clone(),
            actor_id: e.metadata.get("actor_id").and_then(|v| v.as_str()).and_then(|s| s.parse().ok()),
            recorded_at: e.recorded_at,
        })
        .collect();
    let position = events.last().map_or(0, |e| e.global_position);
    Ok(stamp(Json(VersionList { versions }).into_response(), position, ReadSource::Events))
}
