//! Webhook subscriptions (admin). Delivery is the projector's `webhooks` projection; this module only
//! records who wants which event types, where, signed with which secret, from which position.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::domain::role::Role;
use shared::domain::values::FieldError;
use shared::http::{IdPath, JsonBody};
use uuid::Uuid;

use super::{idempotent, Checker};
use crate::error::{ApiError, ApiResult};
use crate::extract::CurrentAuthor;
use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", idempotent(state, post(create).get(list)))
        .route("/v1/webhooks/{id}", idempotent(state, delete(remove)))
        .route("/v1/webhooks/{id}/replay", idempotent(state, post(replay)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
    events: Vec<String>,
    /// The signing secret: a Standard Webhooks `whsec_<base64 key>`, any other text of at least 16 bytes
    /// (its UTF-8 bytes are the key), or absent to have one generated. The answer shows it once.
    secret: Option<String>,
    /// Deliveries start after this position (exclusive); default: the current head.
    from_position: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Webhook {
    id: Uuid,
    url: String,
    events: Vec<String>,
    from_position: i64,
    created_at: DateTime<Utc>,
}

/// `GET /v1/webhooks`: the live subscriptions (secrets are never shown again).
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    webhooks: Vec<Webhook>,
}

/// A new subscription, with its secret: the only time it is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: Webhook,
    /// `whsec_<base64 key>`: verify deliveries with any Standard Webhooks library.
    secret: String,
}

fn require_admin(author: &CurrentAuthor) -> ApiResult<()> {
    if author.0.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins manage webhooks".into()))
    }
}

/// Subscribe a URL to event types (admin). Loopback/private targets are refused unless allowed.
#[utoipa::path(post, path = "/v1/webhooks", request_body = CreateWebhook, security(("bearer" = [])), tag = "webhooks",
    responses((status = 201, body = WebhookCreated), (status = 422, body = shared::http::problem::ProblemDoc)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    admin: CurrentAuthor,
    JsonBody(req): JsonBody<CreateWebhook>,
) -> ApiResult<Response> {
    require_admin(&admin)?;
    let mut c = Checker::default();
    let url = c.check(shared::http::outbound::check_webhook_url(&req.url, state.config.webhook_allow_private).await);
    if req.events.is_empty() || req.events.iter().any(|e| !shared::domain::events::KNOWN_TYPES.contains(&e.as_str())) {
        c.0.push(FieldError::new("events", "must list known event types, e.g. PostPublished"));
    }
    let secret = c.check(shared::http::outbound::webhook_secret(req.secret.as_deref()));
    if req.from_position.is_some_and(|p| p < 0) {
        c.0.push(FieldError::new("from_position", "must be 0 or more"));
    }
    c.finish()?;
    let (Some(url), Some(secret)) = (url.map(String::from), secret) else {
        return Err(ApiError::Validation(Vec::new()));
    };
    let from_position = match req.from_position {
        Some(p) => p,
        None => {
            let mut conn = state.pool.acquire().await?;
            shared::store::log::head(&mut conn).await?
        }
    };
    let id = Uuid::now_v7();
    let created_at = sqlx::query_scalar!(
        "insert into webhook_subscriptions (id, url, events, secret, from_position, created_by,
                                            checkpoint_tx, checkpoint_position)
         values ($1, $2, $3, $4, $5, $6,
                 coalesce((select transaction_id from events where global_position = $5), '0'::xid8), $5)
         returning created_at",
        id,
        url,
        &req.events,
        secret,
        from_position,
        admin.0.id
    )
    .fetch_one(&state.pool)
    .await?;
    let body = WebhookCreated { webhook: Webhook { id, url, events: req.events, from_position, created_at }, secret };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// List subscriptions (admin): `{webhooks: [...]}`.
#[utoipa::path(get, path = "/v1/webhooks", security(("bearer" = [])), tag = "webhooks", responses((status = 200, body = WebhookList)))]
pub async fn list(State(state): State<AppState>, admin: CurrentAuthor) -> ApiResult<Response> {
    require_admin(&admin)?;
    let webhooks = sqlx::query_as!(
        Webhook,
        "select id, url, events, from_position, created_at from webhook_subscriptions
         where deleted_at is null order by created_at"
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(WebhookList { webhooks }).into_response())
}

/// Delete a subscription (admin).
#[utoipa::path(delete, path = "/v1/webhooks/{id}", security(("bearer" = [])), tag = "webhooks",
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, body = shared::http::problem::ProblemDoc)))]
pub async fn remove(State(state): State<AppState>, admin: CurrentAuthor, IdPath(id): IdPath) -> ApiResult<Response> {
    require_admin(&admin)?;
    let done =
        sqlx::query!("update webhook_subscriptions set deleted_at = now() where id = $1 and deleted_at is null", id)
            .execute(&state.pool)
            .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("webhook".into()));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Deliveries restart after this position (exclusive).
    from_position: i64,
}

/// Re-deliver a subscription's events after a position (admin), dead-lettered ones included.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", request_body = ReplayRequest, security(("bearer" = [])), tag = "webhooks",
    params(("id" = Uuid, Path)), responses((status = 200, description = "restarted"), (status = 404, body = shared::http::problem::ProblemDoc)))]
pub async fn replay(
    State(state): State<AppState>,
    admin: CurrentAuthor,
    IdPath(id): IdPath,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> ApiResult<Response> {
    require_admin(&admin)?;
    if req.from_position < 0 {
        return Err(ApiError::Validation(vec![FieldError::new("from_position", "must be 0 or more")]));
    }
    let done = sqlx::query!(
        "update webhook_subscriptions
            set checkpoint_tx = coalesce((select transaction_id from events where global_position = $2), '0'::xid8),
                checkpoint_position = $2, attempts = 0, last_error = null, next_attempt_at = now()
          where id = $1 and deleted_at is null",
        id,
        req.from_position
    )
    .execute(&state.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("webhook".into()));
    }
    Ok(Json(serde_json::json!({"id": id, "from_position": req.from_position})).into_response())
}
