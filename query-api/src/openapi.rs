//! The query API's OpenAPI document, generated from the handlers (`/openapi.json`), and `/docs`.

use axum::Router;
use utoipa::OpenApi;

use crate::routes::{authors, comments, feeds, posts, search, tags, trending};
use crate::AppState;

pub use shared::problem::ProblemDoc;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pressroom query API",
        description = "Public reads. Every response carries `Pressroom-Position` and `Pressroom-Read-Source`; send `Pressroom-Min-Position` to read your writes."
    ),
    paths(
        posts::list,
        posts::by_slug,
        comments::list,
        authors::list,
        authors::by_slug,
        tags::list,
        tags::by_slug,
        search::search,
        trending::trending,
        feeds::feed,
        feeds::sitemap,
    ),
    components(schemas(ProblemDoc, shared::problem::FieldErrorDoc))
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    shared::http::openapi_routes(ApiDoc::openapi(), "Pressroom query API")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_lists_every_public_route() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        for path in [
            "/v1/posts",
            "/v1/posts/{slug}",
            "/v1/posts/{slug}/comments",
            "/v1/authors",
            "/v1/tags/{slug}",
            "/v1/search",
            "/feed.xml",
            "/sitemap.xml",
        ] {
            assert!(spec["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
