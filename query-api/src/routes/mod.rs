//! The query API's routes, one module per feature, merged here.

pub mod authors;
pub mod comments;
pub mod feeds;
pub mod media;
pub mod own_posts;
pub mod posts;
pub mod search;
pub mod tags;
pub mod trending;

use crate::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .merge(posts::router())
        .merge(own_posts::router())
        .merge(authors::router())
        .merge(comments::router())
        .merge(tags::router())
        .merge(search::router())
        .merge(feeds::router())
        .merge(trending::router())
        .merge(media::router())
}
