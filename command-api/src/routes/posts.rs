//! Post commands: create, edit (If-Match required), publish or schedule, unpublish, delete, restore.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{patch, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::domain::post::{DraftPost, EditPost, Post, PostCommand};
use shared::domain::slug::{Slug, SlugError};
use shared::domain::values::{parse_tags, BodyMarkdown, FieldError, HttpUrl, Summary, Title};
use shared::http::{IdPath, JsonBody};
use shared::write::posts::{self as post_writes, CreatePost};
use shared::write::WriteError;
use uuid::Uuid;

use super::{committed, idempotent, nullable, Checker};
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_match, metadata, CurrentAuthor, KnownAuthor};
use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/posts", idempotent(state, post(create)))
        .route("/v1/posts/{id}", idempotent(state, patch(edit).delete(delete)))
        .route("/v1/posts/{id}/publish", idempotent(state, post(publish)))
        .route("/v1/posts/{id}/unpublish", idempotent(state, post(unpublish)))
        .route("/v1/posts/{id}/restore", idempotent(state, post(restore)))
}

#[derive(Deserialize, utoipa::ToSchema, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct CreatePostRequest {
    title: String,
    body_markdown: String,
    summary: Option<String>,
    slug: Option<String>,
    tags: Option<Vec<String>>,
    cover_image_url: Option<String>,
    /// An uploaded image (`POST /v1/media`) as the cover.
    cover_media_id: Option<Uuid>,
}

/// A PATCH body: absent fields stay as they are; `null` clears summary or cover image.
#[derive(Deserialize, utoipa::ToSchema, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct EditPostRequest {
    title: Option<String>,
    body_markdown: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    summary: Option<Option<String>>,
    slug: Option<String>,
    tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    cover_image_url: Option<Option<String>>,
    /// An uploaded image as the cover; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    cover_media_id: Option<Option<Uuid>>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostCreated {
    id: Uuid,
    slug: String,
    status: &'static str,
    version: i32,
    position: i64,
}

#[derive(Serialize, utoipa::ToSchema, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostEdited {
    id: Uuid,
    slug: String,
    version: i32,
    position: i64,
}

#[derive(Serialize, utoipa::ToSchema, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostTransitioned {
    id: Uuid,
    status: &'static str,
    version: i32,
    position: i64,
}

fn parse_slug(raw: &str) -> Result<Slug, FieldError> {
    Slug::parse(raw).map_err(|e: SlugError| FieldError::new("slug", e.to_string()))
}

/// Create a draft.
#[utoipa::path(post, path = "/v1/posts", request_body = CreatePostRequest, security(("bearer" = [])), tag = "posts",
    params(("Idempotency-Key" = Option<String>, Header, description = "replay-safe retries")),
    responses((status = 201, body = PostCreated, headers(("Pressroom-Position" = i64))),
        (status = 409, body = shared::http::problem::ProblemDoc, description = "explicit slug taken"),
        (status = 422, body = shared::http::problem::ProblemDoc)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    mut author: KnownAuthor,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreatePostRequest>,
) -> ApiResult<Response> {
    let body = create_draft(&state, &mut author, req, &headers).await?;
    Ok(committed(StatusCode::CREATED, body.position, body))
}

/// Validates and appends a new draft: the route's and the MCP tool's one path.
pub async fn create_draft(
    state: &AppState,
    author: &mut KnownAuthor,
    req: CreatePostRequest,
    headers: &HeaderMap,
) -> ApiResult<PostCreated> {
    let mut c = Checker::default();
    let title = c.check(Title::parse("title", &req.title));
    let body = c.check(BodyMarkdown::parse("body_markdown", req.body_markdown));
    let summary = req.summary.as_deref().and_then(|s| c.check(Summary::parse("summary", s)));
    let tags = c.check(parse_tags("tags", req.tags.as_deref().unwrap_or_default()));
    let cover = req.cover_image_url.as_deref().and_then(|u| c.check(HttpUrl::parse("cover_image_url", u)));
    let explicit = req.slug.is_some();
    let slug = match (&req.slug, &title) {
        (Some(raw), _) => c.check(parse_slug(raw)),
        (None, Some(t)) => c.check(
            Slug::from_title(t.as_str())
                .ok_or_else(|| FieldError::new("title", "needs a letter or digit to make a slug")),
        ),
        (None, None) => None,
    };
    if let Some(media) = req.cover_media_id {
        c.check(check_cover(state, media).await?);
    }
    c.finish()?;
    let (Some(title), Some(body_markdown), Some(tags), Some(slug)) = (title, body, tags, slug) else {
        return Err(ApiError::BadRequest("invalid post".into()));
    };
    let id = author.author.id;
    let draft = DraftPost {
        author_id: id,
        title,
        slug,
        body_markdown,
        summary,
        tags,
        cover_image_url: cover,
        cover_media_id: req.cover_media_id,
    };
    let meta = metadata(headers, Some(id));
    let create = CreatePost { draft, explicit_slug: explicit };
    // The append is guarded by the author's version as last read; if they changed since, read them
    // again and decide again (once: a fresh read is current).
    let (post, appended) = loop {
        let write = post_writes::create(&state.appends, author.actor(), Some(author.author.version), &create, &meta);
        match shared::service::metrics::timed_query("posts.create", "primary", write).await {
            Err(WriteError::AuthorChanged) if !author.fresh => author.refresh(state).await?,
            result => break result?,
        }
    };
    Ok(PostCreated {
        id: post.id,
        slug: post.slug,
        status: "draft",
        version: post.version,
        position: appended.position,
    })
}

/// A cover must be media that exists (and is not deleted).
async fn check_cover(state: &AppState, media: Uuid) -> ApiResult<Result<(), FieldError>> {
    let found = shared::write::media::live(&state.pool, media).await?;
    Ok(if found {
        Ok(())
    } else {
        Err(FieldError::new("cover_media_id", "names no media (upload it with POST /v1/media)"))
    })
}

/// Edit fields of a post; `If-Match: "<version>"` is required.
#[utoipa::path(patch, path = "/v1/posts/{id}", request_body = EditPostRequest, security(("bearer" = [])), tag = "posts",
    params(("id" = Uuid, Path), ("If-Match" = String, Header, description = "\"<version>\"")),
    responses((status = 200, body = PostEdited), (status = 412, body = shared::http::problem::ProblemDoc, description = "stale; body has current_version"),
        (status = 428, body = shared::http::problem::ProblemDoc, description = "If-Match missing")))]
#[tracing::instrument(skip_all, fields(post_id = %id))]
pub async fn edit(
    State(state): State<AppState>,
    author: CurrentAuthor,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(req): JsonBody<EditPostRequest>,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?.ok_or(ApiError::PreconditionRequired)?;
    let body = edit_post(&state, &author, id, expected, req, &headers).await?;
    Ok(committed(StatusCode::OK, body.position, body))
}

/// Validates and applies an edit at version `expected`: the route's and the MCP tool's one path.
pub async fn edit_post(
    state: &AppState,
    author: &CurrentAuthor,
    id: Uuid,
    expected: i32,
    req: EditPostRequest,
    headers: &HeaderMap,
) -> ApiResult<PostEdited> {
    let mut c = Checker::default();
    let edit = EditPost {
        title: req.title.as_deref().and_then(|t| c.check(Title::parse("title", t))),
        slug: req.slug.as_deref().and_then(|s| c.check(parse_slug(s))),
        body_markdown: req.body_markdown.and_then(|b| c.check(BodyMarkdown::parse("body_markdown", b))),
        summary: req.summary.map(|s| s.and_then(|s| c.check(Summary::parse("summary", &s)))),
        tags: req.tags.and_then(|t| c.check(parse_tags("tags", &t))),
        cover_image_url: req.cover_image_url.map(|u| u.and_then(|u| c.check(HttpUrl::parse("cover_image_url", &u)))),
        cover_media_id: req.cover_media_id,
    };
    if let Some(Some(media)) = req.cover_media_id {
        c.check(check_cover(state, media).await?);
    }
    c.finish()?;
    let (post, appended) = run(state, author, id, Some(expected), PostCommand::Edit(edit), headers).await?;
    Ok(PostEdited { id, slug: post.slug, version: post.version, position: appended.position })
}

/// Publish now, or schedule when `at` is in the future.
#[utoipa::path(post, path = "/v1/posts/{id}/publish", request_body(content = Option<PublishRequest>), security(("bearer" = [])), tag = "posts",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = PostTransitioned), (status = 409, body = shared::http::problem::ProblemDoc, description = "not publishable from its state")))]
#[tracing::instrument(skip_all, fields(post_id = %req.id))]
pub async fn publish(
    State(state): State<AppState>,
    req: TransitionRequest,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // The body is optional: empty means "publish now".
    let at = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let req: PublishRequest = serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::Validation(vec![FieldError::new("at", e.to_string())]),
            _ => ApiError::BadRequest(format!("malformed JSON: {e}")),
        })?;
        req.at
    };
    req.run(&state, PostCommand::Publish { at, now: Utc::now() }).await
}

/// Return a published or scheduled post to draft.
#[utoipa::path(post, path = "/v1/posts/{id}/unpublish", security(("bearer" = [])), tag = "posts",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)), responses((status = 200, body = PostTransitioned)))]
pub async fn unpublish(State(state): State<AppState>, req: TransitionRequest) -> ApiResult<Response> {
    req.run(&state, PostCommand::Unpublish).await
}

/// Soft-delete a post.
#[utoipa::path(delete, path = "/v1/posts/{id}", security(("bearer" = [])), tag = "posts",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)), responses((status = 200, body = PostTransitioned)))]
pub async fn delete(State(state): State<AppState>, req: TransitionRequest) -> ApiResult<Response> {
    req.run(&state, PostCommand::Delete).await
}

/// Restore a deleted post to draft.
#[utoipa::path(post, path = "/v1/posts/{id}/restore", security(("bearer" = [])), tag = "posts",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)), responses((status = 200, body = PostTransitioned)))]
pub async fn restore(State(state): State<AppState>, req: TransitionRequest) -> ApiResult<Response> {
    req.run(&state, PostCommand::Restore).await
}

/// A state change's request: the author, the post, the optional If-Match, and the headers that go into
/// the event's metadata.
pub struct TransitionRequest {
    author: CurrentAuthor,
    id: Uuid,
    expected: Option<i32>,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for TransitionRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let author = CurrentAuthor::from_request_parts(parts, state).await?;
        let IdPath(id) = IdPath::from_request_parts(parts, state).await.map_err(|p| ApiError::Problem(Box::new(p)))?;
        let expected = if_match(&parts.headers)?;
        Ok(TransitionRequest { author, id, expected, headers: parts.headers.clone() })
    }
}

impl TransitionRequest {
    /// Runs `cmd` on the post; answers its new status, version and position.
    async fn run(self, state: &AppState, cmd: PostCommand) -> ApiResult<Response> {
        let body = transition(state, &self.author, self.id, self.expected, cmd, &self.headers).await?;
        Ok(committed(StatusCode::OK, body.position, body))
    }
}

/// Runs a state change (publish, unpublish, delete, restore): the routes' and the MCP tools' one path.
pub async fn transition(
    state: &AppState,
    author: &CurrentAuthor,
    id: Uuid,
    expected: Option<i32>,
    cmd: PostCommand,
    headers: &HeaderMap,
) -> ApiResult<PostTransitioned> {
    let (post, appended) = run(state, author, id, expected, cmd, headers).await?;
    Ok(PostTransitioned { id, status: post.status.as_str(), version: post.version, position: appended.position })
}

/// Runs a command; a lost race against a concurrent writer with an If-Match becomes 412 with the
/// version that won.
async fn run(
    state: &AppState,
    author: &CurrentAuthor,
    id: Uuid,
    expected: Option<i32>,
    cmd: PostCommand,
    headers: &HeaderMap,
) -> ApiResult<(Post, shared::store::event_store::Appended)> {
    let meta = metadata(headers, Some(author.0.id));
    match shared::service::metrics::timed_query(
        "posts.execute",
        "primary",
        post_writes::execute(&state.pool, author.actor(), id, expected, cmd, &meta),
    )
    .await
    {
        Err(shared::write::WriteError::Concurrent) if expected.is_some() => {
            let mut conn = state.pool.acquire().await?;
            let current = shared::store::log::stream_version(&mut conn, id).await?;
            Err(ApiError::PreconditionFailed { expected: expected.unwrap_or_default(), current })
        }
        other => Ok(other?),
    }
}
