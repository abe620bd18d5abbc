//! The command API's routes, one module per feature, merged here.

pub mod authors;
pub mod comments;
pub mod media;
pub mod posts;
pub mod session;
pub mod webhooks;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Json;
use serde::{Deserialize, Serialize};
use shared::domain::values::FieldError;
use shared::store::position::POSITION_HEADER;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub fn router(state: &AppState) -> axum::Router<AppState> {
    axum::Router::new()
        .merge(session::router(state))
        .merge(posts::router(state))
        .merge(authors::router(state))
        .merge(comments::router(state))
        .merge(webhooks::router(state))
        .merge(media::router(state))
}

/// A command endpoint: `Idempotency-Key` handling wraps its methods only, so a method the route does not
/// take is a plain 405 whatever its headers.
pub fn idempotent(state: &AppState, methods: MethodRouter<AppState>) -> MethodRouter<AppState> {
    methods.route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::idempotency::idempotency))
}

/// A command's success: the body, and `Pressroom-Position` naming the last event it appended.
pub fn committed<T: Serialize>(status: StatusCode, position: i64, body: T) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(POSITION_HEADER, HeaderValue::from(position));
    res
}

/// Deserializes a field that may be absent (None), null (Some(None)) or a value (Some(Some(v))).
pub fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Collects every field error of a request instead of stopping at the first.
#[derive(Default)]
pub struct Checker(pub Vec<FieldError>);

impl Checker {
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    pub fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}
