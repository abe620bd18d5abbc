//! Comments: anyone may submit one on a published post (202, pending); editors approve or reject.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use shared::domain::comment::Moderation;
use shared::domain::values::{Email, FieldError};
use shared::http::{IdPath, JsonBody};
use shared::write::comments::{self as comment_writes, NewComment};
use uuid::Uuid;

use super::{committed, idempotent, Checker};
use crate::error::{ApiError, ApiResult};
use crate::extract::{metadata, ClientIp, CurrentAuthor};
use crate::AppState;

const MAX_COMMENT_CHARS: usize = 10_000;
const MAX_NAME_CHARS: usize = 100;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/posts/{id}/comments", idempotent(state, post(submit)))
        .route("/v1/comments/{id}/approve", idempotent(state, post(approve)))
        .route("/v1/comments/{id}/reject", idempotent(state, post(reject)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    author_name: String,
    body: String,
    author_email: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CommentAccepted {
    id: Uuid,
    status: &'static str,
    position: i64,
}

fn bounded(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(FieldError::new(field, format!("must be 1 to {max} characters")));
    }
    Ok(t.to_string())
}

/// Submit a comment on a published post (no auth; rate-limited per IP).
#[utoipa::path(post, path = "/v1/posts/{id}/comments", request_body = CommentRequest, tag = "comments",
    params(("id" = Uuid, Path)), responses((status = 202, body = CommentAccepted), (status = 404, body = shared::http::problem::ProblemDoc), (status = 429, body = shared::http::problem::ProblemDoc)))]
#[tracing::instrument(skip_all, fields(post_id = %post_id))]
pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    IdPath(post_id): IdPath,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CommentRequest>,
) -> ApiResult<Response> {
    state.limiter.check("comments", &ip.to_string(), state.config.rate_limits.comments).await?;
    let mut c = Checker::default();
    let author_name = c.check(bounded("author_name", &req.author_name, MAX_NAME_CHARS));
    let body = c.check(bounded("body", &req.body, MAX_COMMENT_CHARS));
    let author_email = req.author_email.as_deref().and_then(|e| c.check(Email::parse("author_email", e)));
    c.finish()?;
    let (Some(author_name), Some(body)) = (author_name, body) else {
        return Err(ApiError::BadRequest("invalid comment".into()));
    };
    let new = NewComment { author_name, author_email: author_email.map(Email::into_string), body };
    let (id, appended) = shared::service::metrics::timed_query(
        "comments.submit",
        "primary",
        comment_writes::submit(&state.pool, post_id, new, &metadata(&headers, None)),
    )
    .await?;
    Ok(committed(
        StatusCode::ACCEPTED,
        appended.position,
        CommentAccepted { id, status: "pending", position: appended.position },
    ))
}

/// Approve a pending comment (editor+).
#[utoipa::path(post, path = "/v1/comments/{id}/approve", security(("bearer" = [])), tag = "comments",
    params(("id" = Uuid, Path)), responses((status = 200, body = CommentAccepted)))]
pub async fn approve(
    state: State<AppState>,
    actor: CurrentAuthor,
    id: IdPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    moderate(state, actor, id, headers, Moderation::Approve).await
}

/// Reject a comment (editor+).
#[utoipa::path(post, path = "/v1/comments/{id}/reject", security(("bearer" = [])), tag = "comments",
    params(("id" = Uuid, Path)), responses((status = 200, body = CommentAccepted)))]
pub async fn reject(
    state: State<AppState>,
    actor: CurrentAuthor,
    id: IdPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    moderate(state, actor, id, headers, Moderation::Reject).await
}

#[tracing::instrument(skip_all, fields(comment_id = %id))]
async fn moderate(
    State(state): State<AppState>,
    actor: CurrentAuthor,
    IdPath(id): IdPath,
    headers: HeaderMap,
    m: Moderation,
) -> ApiResult<Response> {
    let meta = metadata(&headers, Some(actor.0.id));
    let (comment, appended) = shared::service::metrics::timed_query(
        "comments.moderate",
        "primary",
        comment_writes::moderate(&state.pool, actor.actor(), id, m, &meta),
    )
    .await?;
    let body = CommentAccepted { id, status: comment.status.as_str(), position: appended.position };
    Ok(committed(StatusCode::OK, appended.position, body))
}
