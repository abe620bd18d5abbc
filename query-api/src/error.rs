//! The query API's one error type, mapped to problem+json in one place.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::domain::values::FieldError;
use shared::http::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// 401: author reads without a valid token.
    #[error("authentication required")]
    Unauthorized,
    /// 404: nothing public at this address.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 400: a malformed cursor or header.
    #[error("{0}")]
    BadRequest(String),
    /// 422: an invalid query parameter.
    #[error("invalid query parameters")]
    Validation(Vec<FieldError>),
    /// 429: this client has used its reads for now (`PRESSROOM_RATE_LIMIT_READS` per minute and IP).
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// 503: no database could answer.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// 500: unexpected; logged, never echoed.
    #[error("internal error")]
    Internal(#[source] sqlx::Error),
    /// 500: a page template failed to render; logged, never echoed.
    #[error("a page could not be rendered")]
    Render(#[source] askama::Error),
    /// 500: a result could not be encoded as JSON; logged, never echoed.
    #[error("a result could not be encoded")]
    Encode(#[source] serde_json::Error),
    /// 503: the media store failed.
    #[error("media store unavailable")]
    Store(#[source] Arc<shared::media::store::StoreError>),
    /// An error shared by every request that waited on the same cache load.
    #[error(transparent)]
    Shared(Arc<ReadError>),
}

impl From<sqlx::Error> for ReadError {
    fn from(e: sqlx::Error) -> Self {
        if shared::store::db::is_unavailable(&e) {
            ReadError::Unavailable(e)
        } else if shared::store::db::is_unstorable_text(&e) {
            ReadError::BadRequest(shared::store::db::UNSTORABLE_TEXT.into())
        } else {
            ReadError::Internal(e)
        }
    }
}

impl From<Arc<ReadError>> for ReadError {
    fn from(e: Arc<ReadError>) -> Self {
        ReadError::Shared(e)
    }
}

impl ReadError {
    fn problem(&self) -> Problem {
        let detail = Some(self.to_string());
        match self {
            ReadError::Unauthorized => Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail),
            ReadError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", detail),
            ReadError::BadRequest(_) => Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail),
            ReadError::Validation(errors) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail).with_errors(errors.clone())
            }
            ReadError::RateLimited(secs) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail).with_retry_after(*secs)
            }
            ReadError::Unavailable(e) => Problem::unavailable(e),
            ReadError::Internal(e) => Problem::internal(e),
            ReadError::Render(e) => Problem::internal(e),
            ReadError::Encode(e) => Problem::internal(e),
            ReadError::Store(e) => {
                tracing::warn!(error = %e, "media store unavailable");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).with_retry_after(5)
            }
            ReadError::Shared(inner) => inner.problem(),
        }
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

pub type ReadResult<T> = Result<T, ReadError>;
