//! RFC 9457 problem details (`application/problem+json`): the one error body shape of every service.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::values::FieldError;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem+json body plus the headers that go with it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Extension members (e.g. `current_version` on a 412).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// 503 with `Retry-After: 2` for a database that cannot be reached; the cause is logged, not shown.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Some("the database is unavailable; retry shortly".into()),
        )
        .with_retry_after(2)
    }

    /// 500; the cause is logged, never shown.
    pub fn internal(cause: &dyn std::fmt::Debug) -> Self {
        tracing::error!(error = ?cause, "internal error");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", Some("an internal error occurred".into()))
    }

    /// A problem whose `type` is `https://pressroom.dev/problems/<slug>` and `title` the status reason.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<Option<String>>) -> Self {
        Problem {
            kind: format!("https://pressroom.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            extensions: serde_json::Map::new(),
            retry_after: None,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = Some(errors);
        self
    }

    pub fn with_extension(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_string(), value.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a bearer-protected resource names the scheme on a 401.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="pressroom""#));
        }
        res
    }
}

/// The problem+json shape for OpenAPI documents (the services' `/openapi.json`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ProblemDoc {
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: Option<String>,
    /// On 422: one entry per invalid field.
    errors: Option<Vec<FieldErrorDoc>>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    field: String,
    message: String,
}
