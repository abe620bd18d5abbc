//! `POST /v1/session`: email and password in, a one-hour JWT out.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::http::JsonBody;

use super::idempotent;
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientIp;
use crate::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    token: String,
    expires_at: DateTime<Utc>,
}

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().route("/v1/session", idempotent(state, post(login)))
}

/// Log in: a one-hour HS256 token.
#[utoipa::path(post, path = "/v1/session", request_body = LoginRequest, tag = "session",
    responses((status = 200, body = LoginResponse), (status = 401, body = shared::http::problem::ProblemDoc), (status = 429, body = shared::http::problem::ProblemDoc)))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    state.limiter.check("login", &ip.to_string(), state.config.rate_limits.login).await?;
    let author = shared::service::metrics::timed_query(
        "authors.authenticate",
        "primary",
        shared::write::authors::authenticate(&state.pool, &req.email, &req.password),
    )
    .await?;
    // Unknown email, wrong password and a deactivated author answer the same 401.
    let author = author.ok_or(ApiError::Unauthorized)?;
    let (token, expires_at) =
        state.keys.issue(author.id, author.role, Utc::now()).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(Json(LoginResponse { token, expires_at }))
}
