//! Comments: anyone may submit one on a published post (202, pending); editors approve or reject.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Form;
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

/// Submit a comment on a published post (no auth; rate-limited per IP). JSON answers 202; the site's
/// comment form (`application/x-www-form-urlencoded`) gets a 303 back to the post page, whose
/// `?comment=held|invalid|limited` says what happened.
#[utoipa::path(post, path = "/v1/posts/{id}/comments", tag = "comments",
    request_body(content((CommentRequest = "application/json"), (CommentRequest = "application/x-www-form-urlencoded"))),
    params(("id" = Uuid, Path)),
    responses((status = 202, body = CommentAccepted), (status = 303, description = "a form post: back to the post page"),
        (status = 404, body = shared::http::problem::ProblemDoc), (status = 429, body = shared::http::problem::ProblemDoc)))]
#[tracing::instrument(skip_all, fields(post_id = %post_id))]
pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    IdPath(post_id): IdPath,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    if !is_form(&headers) {
        let JsonBody(req) = JsonBody::<CommentRequest>::from_request(request, &state).await?;
        let (id, appended) = accept(&state, ip, post_id, &headers, req).await?;
        let body = CommentAccepted { id, status: "pending", position: appended.position };
        return Ok(committed(StatusCode::ACCEPTED, appended.position, body));
    }
    let Form(mut req) = Form::<CommentRequest>::from_request(request, &state)
        .await
        .map_err(|e| ApiError::BadRequest(format!("malformed form: {e}")))?;
    req.author_email = req.author_email.filter(|e| !e.trim().is_empty());
    let outcome = match accept(&state, ip, post_id, &headers, req).await {
        Ok(_) => "held",
        Err(ApiError::Validation(_) | ApiError::BadRequest(_)) => "invalid",
        Err(ApiError::RateLimited(_)) => "limited",
        Err(e) => return Err(e),
    };
    let slug = post_slug(&state, post_id).await?;
    let location = format!("{}/posts/{slug}?comment={outcome}#comments", state.config.public_url);
    let mut res = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(&location).map_err(|e| ApiError::Internal(Box::new(e)))?;
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// Checks the rate limit and the fields, then appends the pending comment.
async fn accept(
    state: &AppState,
    ip: std::net::IpAddr,
    post_id: Uuid,
    headers: &HeaderMap,
    req: CommentRequest,
) -> ApiResult<(Uuid, shared::store::event_store::Appended)> {
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
    let submitted = shared::service::metrics::timed_query(
        "comments.submit",
        "primary",
        comment_writes::submit(&state.pool, post_id, new, &metadata(headers, None)),
    )
    .await?;
    Ok(submitted)
}

/// The slug of the published post the form was on (404 when there is none).
async fn post_slug(state: &AppState, post_id: Uuid) -> ApiResult<String> {
    let mut conn = state.pool.acquire().await?;
    let post = shared::store::streams::load_post(&mut conn, post_id).await?;
    let post = post.filter(|p| p.status == shared::domain::post::PostStatus::Published);
    Ok(post.ok_or(ApiError::NotFound("post".into()))?.slug)
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
