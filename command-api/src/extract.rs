//! Request extractors: the authenticated author, If-Match, and event metadata from the request.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::header::IF_MATCH;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use shared::domain::author::Author;
use shared::domain::post::Actor;
use shared::store::event_store::Metadata;

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
        let id = bearer_subject(parts, state)?;
        let author = load_active(state, id).await?;
        state.limiter.check("writes", &author.id.to_string(), state.config.rate_limits.writes).await?;
        Ok(CurrentAuthor(author))
    }
}

/// The author behind a valid Bearer token as this instance last read them (their stream's version
/// included), without reading the store when it has them. Only for a command whose append is guarded
/// by that version (a draft): if the author changed since, the append writes nothing and the command
/// re-reads them with [`KnownAuthor::refresh`] — a deactivation still applies at the next request.
pub struct KnownAuthor {
    pub author: Author,
    /// Read from the store for this request (not from the cache).
    pub fresh: bool,
}

impl KnownAuthor {
    pub fn actor(&self) -> Actor {
        Actor { id: self.author.id, role: self.author.role }
    }

    /// Re-reads the author from their stream: 401 if they are gone or deactivated.
    pub async fn refresh(&mut self, state: &AppState) -> Result<(), ApiError> {
        self.author = load_active(state, self.author.id).await?;
        self.fresh = true;
        Ok(())
    }
}

impl FromRequestParts<AppState> for KnownAuthor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let id = bearer_subject(parts, state)?;
        let known = match state.authors.get(id) {
            Some(author) => KnownAuthor { author, fresh: false },
            None => KnownAuthor { author: load_active(state, id).await?, fresh: true },
        };
        state.limiter.check("writes", &id.to_string(), state.config.rate_limits.writes).await?;
        Ok(known)
    }
}

/// The subject of the request's valid Bearer token.
fn bearer_subject(parts: &Parts, state: &AppState) -> Result<uuid::Uuid, ApiError> {
    shared::http::auth::bearer_subject(&parts.headers, &state.keys)
        .map_err(|_| ApiError::Unauthorized)?
        .ok_or(ApiError::Unauthorized)
}

/// The active author behind the request's bearer token, if it carries one: a token that does not verify, or
/// an account gone or deactivated, is a 401 (before anything else — e.g. a stored reply — is given out).
pub(crate) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<uuid::Uuid>, ApiError> {
    match shared::http::auth::bearer_subject(headers, &state.keys).map_err(|_| ApiError::Unauthorized)? {
        Some(id) => load_active(state, id).await.map(|a| Some(a.id)),
        None => Ok(None),
    }
}

/// Folds the author's stream; 401 unless they exist and are active. Remembers them for [`KnownAuthor`].
pub(crate) async fn load_active(state: &AppState, id: uuid::Uuid) -> Result<Author, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let author = shared::service::metrics::timed_query(
        "authors.load",
        "primary",
        shared::http::auth::active_author(&mut conn, id),
    )
    .await?;
    match author {
        Some(a) => {
            state.authors.put(&a);
            Ok(a)
        }
        _ => {
            state.authors.forget(id);
            Err(ApiError::Unauthorized)
        }
    }
}

/// Authors as this instance last read them, by id (bounded: cleared when it grows past 10,000).
#[derive(Default)]
pub struct AuthorCache(std::sync::Mutex<std::collections::HashMap<uuid::Uuid, Author>>);

impl AuthorCache {
    fn get(&self, id: uuid::Uuid) -> Option<Author> {
        self.0.lock().ok()?.get(&id).cloned()
    }

    fn put(&self, author: &Author) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= 10_000 {
                map.clear();
            }
            map.insert(author.id, author.clone());
        }
    }

    fn forget(&self, id: uuid::Uuid) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&id);
        }
    }
}

/// The client's address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(state.config.trusted_proxies.of_request(&parts.extensions, &parts.headers)))
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
        traceparent: shared::service::telemetry::current_traceparent(),
    }
}
