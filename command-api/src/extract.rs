//! Request extractors: the authenticated author, If-Match, and event metadata from the request.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, IF_MATCH};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use shared::domain::author::Author;
use shared::domain::post::Actor;
use shared::event_store::Metadata;

use crate::error::ApiError;
use crate::AppState;

/// The author behind a valid Bearer token, re-read from their stream on every request so that a
/// deactivation or role change applies at once.
pub struct CurrentAuthor(pub Author);

impl CurrentAuthor {
    pub fn actor(&self) -> Actor {
        Actor { id: self.0.id, role: self.0.role }
    }
}

impl FromRequestParts<AppState> for CurrentAuthor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or(ApiError::Unauthorized)?;
        let claims = state.keys.verify(token.trim()).map_err(|_| ApiError::Unauthorized)?;
        let mut conn = state.pool.acquire().await?;
        let author = shared::metrics::timed_query(
            "authors.load",
            "primary",
            shared::write::authors::load(&mut conn, claims.sub),
        )
        .await?;
        let author = match author {
            Some(a) if a.active => a,
            _ => return Err(ApiError::Unauthorized),
        };
        state.limiter.check("writes", &author.id.to_string(), state.config.rate_limits.writes).await?;
        Ok(CurrentAuthor(author))
    }
}

/// The client's address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        Ok(ClientIp(state.config.trusted_proxies.client_ip(peer, &parts.headers)))
    }
}

/// `If-Match: "<version>"` (weak or bare numbers accepted). Absent → None; unparseable → 400.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i32>, ApiError> {
    let Some(v) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| ApiError::BadRequest("If-Match is not ASCII".into()))?;
    let s = s.trim().trim_start_matches("W/").trim_matches('"');
    s.parse::<i32>()
        .ok()
        .filter(|v| *v > 0)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("If-Match must be a quoted version number, e.g. \"3\"".into()))
}

/// Event metadata for a command: actor, request id (propagated by the middleware), idempotency key.
pub fn metadata(headers: &HeaderMap, actor: Option<uuid::Uuid>) -> Metadata {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let request_id = header(shared::http::REQUEST_ID_HEADER);
    Metadata {
        actor_id: actor,
        correlation_id: request_id.as_deref().and_then(|r| r.parse().ok()),
        request_id,
        causation_id: None,
        idempotency_key: header("idempotency-key"),
        traceparent: shared::telemetry::current_traceparent(),
    }
}
