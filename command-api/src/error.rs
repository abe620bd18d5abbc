//! The command API's one error type; every failure becomes problem+json here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::domain::values::FieldError;
use shared::domain::DomainError;
use shared::http::problem::Problem;
use shared::write::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: missing, malformed, expired or forged token, or bad credentials.
    #[error("authentication required")]
    Unauthorized,
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown id.
    #[error("{0} not found")]
    NotFound(String),
    /// 409: state conflict (transition not allowed, slug or email taken).
    #[error("{0}")]
    Conflict(String),
    /// 428: a PATCH without If-Match.
    #[error("If-Match is required")]
    PreconditionRequired,
    /// 412: If-Match names a stale version.
    #[error("version {expected} is stale; the post is at version {current}")]
    PreconditionFailed { expected: i32, current: i32 },
    /// 400: a header or parameter that does not parse.
    #[error("{0}")]
    BadRequest(String),
    /// 413: an upload over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a body whose type is not accepted.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// 503: the media store failed.
    #[error("media store unavailable")]
    StoreUnavailable(#[source] shared::media::store::StoreError),
    /// 422: invalid fields.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 429: over a rate limit.
    #[error("rate limit exceeded; retry in {0} s")]
    RateLimited(u64),
    /// 503: PostgreSQL unreachable.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// 500: a bug or an unexpected database error; details are logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Already a problem (extractor rejections).
    #[error("{}", .0.title)]
    Problem(Box<Problem>),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if shared::store::db::is_unavailable(&e) {
            ApiError::Unavailable(e)
        } else if shared::store::db::is_unstorable_text(&e) {
            ApiError::BadRequest(shared::store::db::UNSTORABLE_TEXT.into())
        } else {
            ApiError::Internal(Box::new(e))
        }
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError::Problem(Box::new(p))
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Domain(DomainError::NotFound(what)) => ApiError::NotFound(what.to_string()),
            WriteError::Domain(DomainError::Forbidden(why)) => ApiError::Forbidden(why.to_string()),
            WriteError::Domain(DomainError::InvalidTransition(why)) => ApiError::Conflict(why),
            WriteError::VersionMismatch { expected, current } => ApiError::PreconditionFailed { expected, current },
            WriteError::Concurrent => ApiError::Conflict("a concurrent write changed this resource; retry".into()),
            WriteError::SlugTaken(slug) => ApiError::Conflict(format!("slug `{slug}` is already taken")),
            WriteError::AuthorChanged => ApiError::Conflict("your account changed during this request; retry".into()),
            WriteError::EmailTaken => ApiError::Conflict("an author with this email already exists".into()),
            WriteError::NameTaken(name) => {
                ApiError::Conflict(format!("an author named `{name}` already exists (names are unique ignoring case)"))
            }
            WriteError::Validation(errors) => ApiError::Validation(errors),
            WriteError::InUse(slug) => ApiError::Conflict(format!(
                "the post `{slug}` is published or scheduled and uses this media; unpublish it or remove the image first"
            )),
            WriteError::MediaDeleted(id) => ApiError::Conflict(format!(
                "the post uses media {id}, which is deleted; remove it from the cover and body (or upload it again) first"
            )),
            WriteError::Store(e) => ApiError::StoreUnavailable(e),
            WriteError::Database(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = Some(self.to_string());
        let problem = match self {
            ApiError::Unauthorized => Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail),
            ApiError::Forbidden(_) => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
            ApiError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", detail),
            ApiError::Conflict(_) => Problem::new(StatusCode::CONFLICT, "conflict", detail),
            ApiError::PreconditionRequired => Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                Some("send If-Match: \"<version>\" with the version you edited".into()),
            ),
            ApiError::PreconditionFailed { current, .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, "precondition-failed", detail)
                    .with_extension("current_version", current)
            }
            ApiError::BadRequest(_) => Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail),
            ApiError::TooLarge(_) => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", detail),
            ApiError::UnsupportedMedia(_) => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", detail)
            }
            ApiError::StoreUnavailable(e) => {
                tracing::warn!(error = %e, "media store unavailable");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).with_retry_after(5)
            }
            ApiError::Validation(errors) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                Some("the request has invalid fields".into()),
            )
            .with_errors(errors),
            ApiError::RateLimited(secs) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail).with_retry_after(secs)
            }
            ApiError::Unavailable(e) => Problem::unavailable(&e),
            ApiError::Internal(e) => Problem::internal(&e),
            ApiError::Problem(p) => *p,
        };
        problem.into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<shared::http::rate_limit::Limited> for ApiError {
    fn from(l: shared::http::rate_limit::Limited) -> Self {
        ApiError::RateLimited(l.retry_after_secs())
    }
}
