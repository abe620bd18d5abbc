//! `Idempotency-Key` on POST, PATCH and DELETE: the first request with a key runs; a retry with the
//! same key and body within `PRESSROOM_IDEMPOTENCY_TTL` (24 h) gets the stored status and body
//! (`Idempotent-Replayed: true`) without appending again; the same key with another body is 422; a
//! duplicate still in flight is 409. Keys are scoped to the principal (author, or client IP when
//! anonymous), method and path; expired ones are purged by the projector's retention job. The author
//! tools of the MCP server keep their `idempotency_key` in the same table through [`claim`] and [`store`].

use std::net::IpAddr;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::{AppState, BODY_LIMIT};

const HEADER: &str = "idempotency-key";
/// A first request that has not finished after this long is presumed dead, and a retry may take over.
const ABANDONED_AFTER_SECS: f64 = 60.0;
/// Response headers stored and replayed with the body.
const KEPT_HEADERS: &[&str] = &["content-type", "pressroom-position", "location", "retry-after"];

pub(crate) enum Claim {
    /// This request runs and records its reply.
    Run,
    Replay {
        status: u16,
        headers: serde_json::Value,
        body: Vec<u8>,
    },
}

/// The middleware: wraps every command route.
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE) {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    match run(&state, key, req, next).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, key: HeaderValue, req: Request, next: Next) -> Result<Response, ApiError> {
    // Who asks comes first: a stored answer is replayed only to a caller who may still make the request.
    let client = state.config.trusted_proxies.of_request(req.extensions(), req.headers());
    let principal = principal(state, req.headers(), client).await?;
    let key = key
        .to_str()
        .ok()
        .and_then(checked_key)
        .ok_or_else(|| ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into()))?;
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::Problem(Box::new(shared::http::problem::Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            Some("the body exceeds 1 MiB".into()),
        )))
    })?;
    let hash = digest(&bytes);
    let scope = Scope { principal: &principal, method: &method, path: &path, key: &key };
    match claim(state, scope, &hash).await? {
        Claim::Replay { status, headers, body } => Ok(replay(status, &headers, body)),
        Claim::Run => {
            let res = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            record(state, scope, res).await
        }
    }
}

/// The key's owner: the author behind the bearer token — which must be valid and the account active, or
/// the request is a 401 before any replay — or, without a token, the client IP.
async fn principal(state: &AppState, headers: &HeaderMap, client: IpAddr) -> Result<String, ApiError> {
    Ok(match crate::extract::signed_in(state, headers).await? {
        Some(id) => author_principal(id),
        None => format!("ip:{client}"),
    })
}

/// The principal of an author's keys (requests and tool calls alike).
pub(crate) fn author_principal(id: uuid::Uuid) -> String {
    format!("author:{id}")
}

/// A key as a client may send it: 1 to 255 visible ASCII characters (surrounding spaces dropped).
pub(crate) fn checked_key(key: &str) -> Option<String> {
    let key = key.trim();
    (!key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')).then(|| key.into())
}

/// The hash a retry's request must match (hex SHA-256 of its bytes).
pub(crate) fn digest(bytes: &[u8]) -> String {
    shared::hex(&Sha256::digest(bytes))
}

/// Where a key applies: its owner (`author:<id>` or `ip:<addr>`), the method and path (`MCP` and
/// `tools/call/<tool>` for a tool call), and the key.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub principal: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub key: &'a str,
}

/// Claims the key for a request whose bytes hash to `hash`: run it, replay the stored reply, or refuse (the
/// same key with another request is 422, one still in flight is 409).
pub(crate) async fn claim(
    state: &AppState,
    Scope { principal, method, path, key }: Scope<'_>,
    hash: &str,
) -> Result<Claim, ApiError> {
    for _ in 0..3 {
        let inserted = sqlx::query_scalar!(
            r#"insert into idempotency_keys (principal, method, path, key, request_hash) values ($1, $2, $3, $4, $5)
               on conflict do nothing returning true as "inserted!""#,
            principal,
            method,
            path,
            key,
            hash
        )
        .fetch_optional(&state.pool)
        .await?;
        if inserted.is_some() {
            return Ok(Claim::Run);
        }
        let Some(row) = sqlx::query!(
            r#"select request_hash, status_code, response_headers, response_body,
                      extract(epoch from now() - created_at)::float8 as "age!"
               from idempotency_keys where principal = $1 and method = $2 and path = $3 and key = $4"#,
            principal,
            method,
            path,
            key
        )
        .fetch_optional(&state.pool)
        .await?
        else {
            continue; // deleted in between: try to insert again
        };
        let expired = row.age > state.config.idempotency_ttl.as_secs_f64();
        let abandoned = row.status_code.is_none() && row.age > ABANDONED_AFTER_SECS;
        if expired || abandoned {
            // Take the key over (expired, or its first request died without an answer).
            release(state, Scope { principal, method, path, key }).await?;
            continue;
        }
        if row.request_hash != hash {
            return Err(ApiError::Validation(vec![shared::domain::values::FieldError::new(
                "Idempotency-Key",
                "was already used with a different request body",
            )]));
        }
        return match (row.status_code, row.response_body) {
            (Some(status), Some(body)) => Ok(Claim::Replay {
                status: u16::try_from(status).unwrap_or(200),
                headers: row.response_headers.unwrap_or_default(),
                body,
            }),
            _ => Err(ApiError::Conflict("a request with this Idempotency-Key is still in flight".into())),
        };
    }
    Err(ApiError::Conflict("a request with this Idempotency-Key is still in flight".into()))
}

/// Frees the key: it may be used again.
pub(crate) async fn release(
    state: &AppState,
    Scope { principal, method, path, key }: Scope<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from idempotency_keys where principal = $1 and method = $2 and path = $3 and key = $4",
        principal,
        method,
        path,
        key
    )
    .execute(&state.pool)
    .await?;
    Ok(())
}

/// Stores the reply (or frees the key after a 5xx, so the client may retry) and returns it.
async fn record(
    state: &AppState,
    Scope { principal, method, path, key }: Scope<'_>,
    res: Response,
) -> Result<Response, ApiError> {
    let (parts, body) = res.into_parts();
    if parts.status.is_server_error() {
        release(state, Scope { principal, method, path, key }).await?;
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = to_bytes(body, usize::MAX).await.map_err(|e| ApiError::Internal(Box::new(e)))?;
    let headers = kept_headers(&parts.headers);
    store(state, Scope { principal, method, path, key }, parts.status, headers, &bytes).await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// Stores the reply a retry with the key will get.
pub(crate) async fn store(
    state: &AppState,
    Scope { principal, method, path, key }: Scope<'_>,
    status: StatusCode,
    headers: serde_json::Value,
    body: &[u8],
) -> Result<(), ApiError> {
    sqlx::query!(
        "update idempotency_keys set status_code = $5, response_headers = $6, response_body = $7, completed_at = now()
         where principal = $1 and method = $2 and path = $3 and key = $4",
        principal,
        method,
        path,
        key,
        i32::from(status.as_u16()),
        headers,
        body
    )
    .execute(&state.pool)
    .await?;
    Ok(())
}

fn kept_headers(h: &HeaderMap) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| h.get(*name).and_then(|v| v.to_str().ok()).map(|v| (name.to_string(), v.into())))
        .collect();
    serde_json::Value::Object(map)
}

fn replay(status: u16, headers: &serde_json::Value, body: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Some(map) = headers.as_object() {
        for (k, v) in map {
            if let (Ok(name), Some(Ok(value))) =
                (HeaderName::try_from(k.as_str()), v.as_str().map(HeaderValue::from_str))
            {
                res.headers_mut().insert(name, value);
            }
        }
    }
    res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}
