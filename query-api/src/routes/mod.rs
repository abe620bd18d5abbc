//! The query API's routes, one module per feature, merged here.

pub mod posts;

use crate::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().merge(posts::router())
}
