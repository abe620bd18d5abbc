//! The command API's OpenAPI document, generated from the handlers (`/openapi.json`), and `/docs`.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{authors, comments, posts, session, webhooks};
use crate::AppState;

pub use shared::problem::ProblemDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

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
    ),
    components(schemas(ProblemDoc, shared::problem::FieldErrorDoc)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    shared::http::openapi_routes(ApiDoc::openapi(), "Pressroom command API")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_lists_every_command_route() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        for path in [
            "/v1/session",
            "/v1/posts",
            "/v1/posts/{id}",
            "/v1/posts/{id}/publish",
            "/v1/authors",
            "/v1/webhooks",
            "/v1/comments/{id}/approve",
        ] {
            assert!(spec["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
