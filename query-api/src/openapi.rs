//! The query API's OpenAPI document, generated from the handlers (`/openapi.json`), and `/docs`.

use axum::Router;
use shared::http::api_doc::{BearerAuth, ProblemResponses};
use utoipa::OpenApi;

use crate::mcp::McpDoc;
use crate::routes::{authors, comments, feeds, media, own_posts, posts, search, tags, trending};
use crate::AppState;

use shared::http::problem::ProblemDoc;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pressroom query API",
        description = "Public reads. Every response carries `Pressroom-Position` and `Pressroom-Read-Source`; send `Pressroom-Min-Position` to read your writes."
    ),
    paths(
        posts::list,
        posts::slug::by_slug,
        comments::list,
        authors::list,
        authors::by_slug,
        tags::list,
        tags::by_slug,
        search::search,
        trending::trending,
        feeds::feed,
        feeds::sitemap,
        media::serve,
        own_posts::list,
        own_posts::one,
        own_posts::versions,
        own_posts::at_version,
        crate::mcp::tool_list,
        crate::mcp::metadata,
    ),
    components(schemas(ProblemDoc, shared::http::problem::FieldErrorDoc)),
    modifiers(&BearerAuth, &ProblemResponses, &McpDoc)
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    shared::http::openapi_routes(ApiDoc::openapi(), "Pressroom query API")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::api_doc::{documented_paths, routed_paths};

    #[test]
    fn the_document_lists_exactly_the_routed_paths() {
        let routed = routed_paths(&[
            include_str!("routes/own_posts.rs"),
            include_str!("routes/authors.rs"),
            include_str!("routes/comments.rs"),
            include_str!("routes/feeds.rs"),
            include_str!("routes/media.rs"),
            include_str!("routes/posts/mod.rs"),
            include_str!("routes/posts/slug.rs"),
            include_str!("routes/search.rs"),
            include_str!("routes/tags.rs"),
            include_str!("routes/trending.rs"),
            include_str!("mcp/mod.rs"),
        ]);
        assert!(routed.contains("/v1/author/posts/{id}/versions/{n}") && routed.len() > 10, "{routed:?}");
        assert_eq!(documented_paths(&ApiDoc::openapi()), routed);
    }

    #[test]
    fn every_error_is_documented_as_problem_json() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let list = &spec["paths"]["/v1/posts"]["get"]["responses"];
        for status in ["400", "422", "429", "503"] {
            assert!(list[status]["content"]["application/problem+json"].is_object(), "{status}: {list}");
            assert!(list[status]["content"]["application/json"].is_null());
        }
        let limit = &spec["paths"]["/v1/posts"]["get"]["parameters"][0]["schema"];
        assert_eq!((limit["minimum"].as_f64(), limit["maximum"].as_f64()), (Some(1.0), Some(100.0)), "{limit}");
        assert!(spec["paths"]["/v1/author/posts"]["get"]["responses"]["401"].is_object());
    }
}
