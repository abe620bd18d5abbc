//! The command API's OpenAPI document, generated from the handlers (`/openapi.json`), and `/docs`.

use axum::Router;
use shared::http::api_doc::{BearerAuth, ProblemResponses};
use utoipa::OpenApi;

use crate::mcp::McpDoc;
use crate::routes::{authors, comments, media, posts, session, webhooks};
use crate::AppState;

use shared::http::problem::ProblemDoc;

#[derive(OpenApi)]
#[openapi(
    info(title = "Pressroom command API", description = "Authors write here; every command appends events and answers `Pressroom-Position`."),
    paths(
        session::login,
        posts::create, posts::edit, posts::publish, posts::unpublish, posts::delete, posts::restore,
        authors::register, authors::update, authors::deactivate,
        comments::submit, comments::approve, comments::reject,
        webhooks::create, webhooks::list, webhooks::remove,
        webhooks::replay,
        media::upload, media::edit, media::delete,
        crate::mcp::tool_list, crate::mcp::metadata,
    ),
    components(schemas(ProblemDoc, shared::http::problem::FieldErrorDoc)),
    modifiers(&BearerAuth, &ProblemResponses, &McpDoc)
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    shared::http::openapi_routes(ApiDoc::openapi(), "Pressroom command API")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::api_doc::{documented_paths, routed_paths};

    #[test]
    fn the_document_lists_exactly_the_routed_paths() {
        let routed = routed_paths(&[
            include_str!("mcp.rs"),
            include_str!("routes/authors.rs"),
            include_str!("routes/comments.rs"),
            include_str!("routes/media.rs"),
            include_str!("routes/posts.rs"),
            include_str!("routes/session.rs"),
            include_str!("routes/webhooks.rs"),
        ]);
        assert!(routed.contains("/v1/webhooks/{id}/replay") && routed.len() > 10, "{routed:?}");
        assert_eq!(documented_paths(&ApiDoc::openapi()), routed);
    }

    #[test]
    fn bodies_document_413_415_and_422_as_problem_json() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let create = &spec["paths"]["/v1/posts"]["post"]["responses"];
        for status in ["400", "401", "403", "409", "413", "415", "422", "429", "503"] {
            assert!(create[status]["content"]["application/problem+json"].is_object(), "{status}: {create}");
        }
    }
}
