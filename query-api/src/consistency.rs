//! Read-your-writes: the `Pressroom-Min-Position` token, and the headers every read answers with.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use shared::store::db::ReadRoute;
use shared::store::db::ReadSource;
use shared::store::position::{LogPosition, MIN_POSITION_HEADER, POSITION_HEADER, READ_SOURCE_HEADER};

use crate::error::{ReadError, ReadResult};
use crate::AppState;

/// Resolves `Pressroom-Min-Position: N` to its place in projection order (the event's transaction),
/// read from the primary's event store. Absent → None; malformed or naming no event → 400.
pub async fn min_position(state: &AppState, headers: &HeaderMap) -> ReadResult<Option<LogPosition>> {
    let Some(raw) = headers.get(MIN_POSITION_HEADER) else {
        return Ok(None);
    };
    let n: i64 =
        raw.to_str().ok().and_then(|s| s.trim().parse().ok()).filter(|n| *n > 0).ok_or_else(|| {
            ReadError::BadRequest("Pressroom-Min-Position must be a position a command returned".into())
        })?;
    let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
    shared::store::log::log_position_of(&mut conn, n)
        .await?
        .map(Some)
        .ok_or_else(|| ReadError::BadRequest(format!("Pressroom-Min-Position {n} names no event")))
}

/// Stamps `Pressroom-Position` and `Pressroom-Read-Source` on a read's response.
pub fn stamp(mut res: Response, position: i64, source: ReadSource) -> Response {
    let h = res.headers_mut();
    h.insert(POSITION_HEADER, HeaderValue::from(position));
    h.insert(READ_SOURCE_HEADER, HeaderValue::from_static(source.as_str()));
    res
}

/// Runs a read on the source `route` (and the request's `Pressroom-Min-Position`) selects for the
/// `projections`, timed as `operation`, and answers its JSON (with an ETag: 304 when the client has it)
/// and the position and source headers.
pub async fn projected_read<T, F, Fut>(
    state: &AppState,
    headers: &HeaderMap,
    operation: &'static str,
    route: ReadRoute,
    projections: &[&str],
    read: F,
) -> ReadResult<Response>
where
    T: serde::Serialize,
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = ReadResult<T>>,
{
    let token = min_position(state, headers).await?;
    let chosen = state.reads.choose(route, projections, token).await?;
    let body =
        shared::service::metrics::timed_query(operation, chosen.source.as_str(), read(chosen.pool.clone())).await?;
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let res = shared::http::etag::respond(headers, "application/json", body);
    Ok(stamp(res, chosen.position.global_position, chosen.source))
}
