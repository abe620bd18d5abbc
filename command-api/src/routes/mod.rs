//! The command API's routes, one module per feature, merged here.

pub mod posts;
pub mod session;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use shared::position::POSITION_HEADER;

use crate::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .merge(session::router())
        .merge(posts::router())
}

/// A command's success: the body, and `Pressroom-Position` naming the last event it appended.
pub fn committed<T: Serialize>(status: StatusCode, position: i64, body: T) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(POSITION_HEADER, HeaderValue::from(position));
    res
}
