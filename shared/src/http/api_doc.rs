//! OpenAPI conventions both services' documents share: the bearer scheme, and errors as they are really
//! answered — `application/problem+json`, with the statuses any operation can produce (a malformed
//! request, a rate limit, an unavailable database, a bad body, a missing token…) documented on each one.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::Modify;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the `bearer` (JWT) security scheme operations name with `security(("bearer" = []))`.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Documents `POST /mcp`, the Model Context Protocol endpoint (JSON-RPC 2.0 over Streamable HTTP, whose
/// errors are JSON-RPC errors, not problem+json). Goes after [`ProblemResponses`] in `modifiers`.
pub struct McpEndpoint {
    /// What the tools do, for the operation's description.
    pub summary: &'static str,
    /// Every request needs a bearer token (a 401 otherwise).
    pub bearer: bool,
}

impl Modify for McpEndpoint {
    fn modify(&self, api: &mut OpenApi) {
        use utoipa::openapi::path::{OperationBuilder, PathItem};
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::HttpMethod;
        let json = || ContentBuilder::new().build();
        let mut operation = OperationBuilder::new()
            .tag("mcp")
            .summary(Some("Model Context Protocol (Streamable HTTP)"))
            .description(Some(format!(
                "{} JSON-RPC 2.0 messages (`initialize`, `tools/list`, `tools/call`, `ping`); the tools and their \
                 schemas are at `GET /mcp/tools`.",
                self.summary
            )))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json())
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("a JSON-RPC response (application/json or text/event-stream)")
                    .content("application/json", json())
                    .build(),
            )
            .response("202", ResponseBuilder::new().description("a notification, accepted").build())
            .response("400", ResponseBuilder::new().description("not a JSON-RPC message").build())
            .response("403", ResponseBuilder::new().description("a Host this server does not answer for").build())
            .response(
                "406",
                ResponseBuilder::new().description("Accept lacks application/json and text/event-stream").build(),
            )
            .response("415", ResponseBuilder::new().description("not application/json").build())
            .securities(self.bearer.then(|| [utoipa::openapi::security::SecurityRequirement::new("bearer", [""; 0])]))
            .build();
        if self.bearer {
            let why = "a missing, expired or forged token, or a deactivated account (`WWW-Authenticate: Bearer`)";
            operation.responses.responses.insert("401".into(), problem(why));
        }
        api.paths.paths.insert("/mcp".to_string(), PathItem::new(HttpMethod::Post, operation));
    }
}

/// Documents the errors every operation may answer, and declares every 4xx/5xx body as problem+json.
pub struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, api: &mut OpenApi) {
        for item in api.paths.paths.values_mut() {
            let operations = [
                (false, &mut item.get),
                (false, &mut item.head),
                (true, &mut item.post),
                (true, &mut item.put),
                (true, &mut item.patch),
                (true, &mut item.delete),
            ];
            for (writes, operation) in operations {
                if let Some(op) = operation {
                    document_errors(op, writes);
                }
            }
        }
    }
}

fn document_errors(op: &mut Operation, writes: bool) {
    let has_body = op.request_body.is_some();
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_path_params = op.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_query_params = op.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let if_match = op.parameters.iter().flatten().find(|p| p.name.eq_ignore_ascii_case("if-match"));
    let if_match_required = if_match.is_some_and(|p| matches!(p.required, utoipa::openapi::Required::True));
    let if_match = if_match.is_some();
    let mut expected: Vec<(&str, &str)> = vec![
        ("400", "malformed request: a header, cursor or parameter that does not parse, or a NUL character"),
        ("429", "rate limited; retry after `Retry-After` seconds"),
        ("503", "a dependency is unavailable; retry after `Retry-After` seconds"),
    ];
    if has_body {
        expected.push(("413", "the body is larger than 1 MiB"));
        expected.push(("415", "the body is not `application/json`"));
    }
    if has_body || writes || has_query_params {
        expected.push(("422", "invalid fields (`errors` names each), or an Idempotency-Key reused with another body"));
    }
    if writes {
        expected.push(("409", "a conflicting state, or a request with the same Idempotency-Key still in flight"));
    }
    if secured {
        expected.push(("401", "a missing, malformed, expired or forged token, or a deactivated account"));
        expected.push(("403", "the account's role may not do this"));
    }
    if has_path_params {
        expected.push(("404", "nothing at this address"));
    }
    if if_match {
        expected.push(("412", "`If-Match` names a stale version; `current_version` says the current one"));
    }
    if if_match_required {
        expected.push(("428", "`If-Match` is missing"));
    }
    for (status, why) in expected {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| problem(why));
    }
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        if !(status.starts_with('4') || status.starts_with('5')) {
            continue;
        }
        let content = response.content.shift_remove("application/json").unwrap_or_else(problem_content);
        response.content.insert(PROBLEM_JSON.to_string(), content);
    }
}

fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name("ProblemDoc"))).build()
}

fn problem(description: &str) -> RefOr<Response> {
    RefOr::T(ResponseBuilder::new().description(description).content(PROBLEM_JSON, problem_content()).build())
}

/// The paths a feature module routes, read from its source (`.route("<path>", …)` calls): the drift test
/// of each service compares them with its document's paths.
pub fn routed_paths(sources: &[&str]) -> std::collections::BTreeSet<String> {
    sources
        .iter()
        .flat_map(|src| src.split(".route").skip(1))
        .filter_map(|rest| rest.strip_prefix("(\"").or_else(|| rest.strip_prefix("_service(\"")))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The paths an OpenAPI document lists.
pub fn documented_paths(api: &OpenApi) -> std::collections::BTreeSet<String> {
    api.paths.paths.keys().cloned().collect()
}
