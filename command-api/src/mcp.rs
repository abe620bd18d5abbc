//! The Model Context Protocol server of the command API: an author's agent drafts, edits, publishes and
//! unpublishes at `POST /mcp` (Streamable HTTP, through the official `rmcp` SDK) with the bearer token of
//! `POST /v1/session` in `Authorization`. Each tool runs the same command path as its HTTP route
//! (validation, roles, expected versions, rate limits) and returns the new version and position. A call
//! without a valid token of an active author is the HTTP 401 the MCP authorization rules prescribe; a tool
//! called with `idempotency_key` runs once and its retries get the stored result (the `Idempotency-Key`
//! table of the HTTP routes, scoped to the author, `MCP` and the tool).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{Extension, ToolCallContext};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, Json, RoleServer, ServerHandler};
use serde::Deserialize;
use shared::domain::post::PostCommand;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{CurrentAuthor, KnownAuthor};
use crate::idempotency;
use crate::routes::posts::{self, CreatePostRequest, EditPostRequest, PostCreated, PostEdited, PostTransitioned};
use crate::AppState;

/// `POST /mcp` (the protocol, for signed-in authors), `GET /mcp/tools` and `GET /mcp/metadata` (discovery,
/// open to anyone).
pub fn router(state: &AppState) -> Router<AppState> {
    let tools = state.clone();
    let service = shared::http::mcp::service(
        move || AuthorTools::new(tools.clone()),
        &[&state.config.public_url, &state.config.site.command_url],
    );
    let protocol = Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), signed_in));
    protocol.route("/mcp/tools", get(tool_list)).route("/mcp/metadata", get(metadata))
}

/// Lets a request reach the MCP server only with the valid token of an active author — otherwise a 401
/// problem with `WWW-Authenticate: Bearer` (before any JSON-RPC is read) — and leaves the author's id to
/// the tool calls as [`SignedIn`].
async fn signed_in(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match crate::extract::signed_in(&state, req.headers()).await {
        Ok(Some(id)) => {
            req.extensions_mut().insert(SignedIn(id));
            next.run(req).await
        }
        Ok(None) => ApiError::Unauthorized.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The author the `POST /mcp` gate let in.
#[derive(Clone, Copy)]
struct SignedIn(Uuid);

/// The author tools, bound to the command API's state.
#[derive(Clone)]
pub struct AuthorTools {
    state: AppState,
    tool_router: Arc<ToolRouter<Self>>,
}

/// The tools, built once (their JSON Schemas are generated here), shared by every request's server.
fn shared_tools() -> Arc<ToolRouter<AuthorTools>> {
    static ROUTER: std::sync::OnceLock<Arc<ToolRouter<AuthorTools>>> = std::sync::OnceLock::new();
    ROUTER.get_or_init(|| Arc::new(with_idempotency_key(AuthorTools::tool_router()))).clone()
}

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateArgs {
    id: Uuid,
    /// The version the changes were made against (a stale one is refused, naming the current).
    expected_version: i32,
    /// The fields to change; absent ones stay, `null` clears summary or cover image.
    fields: EditPostRequest,
}

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PublishArgs {
    id: Uuid,
    /// A future moment schedules the publication (RFC 3339); absent publishes now.
    at: Option<DateTime<Utc>>,
    expected_version: Option<i32>,
}

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostArgs {
    id: Uuid,
    expected_version: Option<i32>,
}

#[derive(Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct TagArgs {
    id: Uuid,
    /// Tags to add to the post's own.
    tags: Vec<String>,
    expected_version: Option<i32>,
}

/// A failed call as the agent reads it (a tool error with the API's own words, never a 5xx).
fn tool_error(e: ApiError) -> String {
    match e {
        ApiError::Validation(errors) if errors.iter().any(|f| f.field == "Idempotency-Key") => {
            "idempotency_key: was already used with different arguments".into()
        }
        ApiError::Unauthorized => "unauthorized: send `Authorization: Bearer <token>` from POST /v1/session".into(),
        ApiError::Validation(errors) => {
            errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        ApiError::PreconditionFailed { expected, current } => {
            format!("the post is at version {current}, not {expected}: read it again and retry with expected_version {current}")
        }
        ApiError::Unavailable(_) => "the database is unavailable; retry shortly".into(),
        ApiError::Conflict(why) => format!("conflict: {why}"),
        ApiError::Internal(e) => {
            tracing::error!(error = ?e, "MCP author tool failed");
            "the command failed; it was logged".into()
        }
        other => {
            let problem = other.into_response();
            format!("refused ({})", problem.status())
        }
    }
}

#[tool_router]
impl AuthorTools {
    pub fn new(state: AppState) -> Self {
        AuthorTools { state, tool_router: shared_tools() }
    }

    /// The tools as `tools/list` gives them.
    pub fn tools() -> Vec<rmcp::model::Tool> {
        shared_tools().list_all()
    }

    /// The author behind the request's bearer token (active, within their write rate).
    async fn author(&self, parts: &axum::http::request::Parts) -> Result<CurrentAuthor, ApiError> {
        CurrentAuthor::from_request_parts(&mut parts.clone(), &self.state).await
    }

    #[tool(description = "Create a draft post (Markdown body). Returns its id, slug, version and position.")]
    async fn create_draft(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(req): Parameters<CreatePostRequest>,
    ) -> Result<Json<PostCreated>, String> {
        let run = async {
            let mut author = KnownAuthor::from_request_parts(&mut parts.clone(), &self.state).await?;
            posts::create_draft(&self.state, &mut author, req, &parts.headers).await
        };
        run.await.map(Json).map_err(tool_error)
    }

    #[tool(description = "Change fields of a post at expected_version.")]
    async fn update_post(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(a): Parameters<UpdateArgs>,
    ) -> Result<Json<PostEdited>, String> {
        let run = async {
            let author = self.author(&parts).await?;
            posts::edit_post(&self.state, &author, a.id, a.expected_version, a.fields, &parts.headers).await
        };
        run.await.map(Json).map_err(tool_error)
    }

    #[tool(description = "Publish a post now, or schedule it with `at`.")]
    async fn publish_post(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(a): Parameters<PublishArgs>,
    ) -> Result<Json<PostTransitioned>, String> {
        let run = async {
            let author = self.author(&parts).await?;
            let cmd = PostCommand::Publish { at: a.at, now: Utc::now() };
            posts::transition(&self.state, &author, a.id, a.expected_version, cmd, &parts.headers).await
        };
        run.await.map(Json).map_err(tool_error)
    }

    #[tool(description = "Return a published or scheduled post to draft.")]
    async fn unpublish_post(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(a): Parameters<PostArgs>,
    ) -> Result<Json<PostTransitioned>, String> {
        let run = async {
            let author = self.author(&parts).await?;
            posts::transition(&self.state, &author, a.id, a.expected_version, PostCommand::Unpublish, &parts.headers)
                .await
        };
        run.await.map(Json).map_err(tool_error)
    }

    #[tool(description = "Add tags to a post (keeps its own).")]
    async fn add_tags(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(a): Parameters<TagArgs>,
    ) -> Result<Json<PostEdited>, String> {
        let run = async {
            let author = self.author(&parts).await?;
            let mut conn = self.state.pool.acquire().await?;
            let post =
                shared::store::streams::load_post(&mut conn, a.id).await?.ok_or(ApiError::NotFound("post".into()))?;
            drop(conn);
            let mut tags = post.tags.clone();
            tags.extend(a.tags.into_iter().filter(|t| !post.tags.iter().any(|p| p.eq_ignore_ascii_case(t))));
            let fields: EditPostRequest = serde_json::from_value(serde_json::json!({ "tags": tags }))
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let expected = a.expected_version.unwrap_or(post.version);
            posts::edit_post(&self.state, &author, a.id, expected, fields, &parts.headers).await
        };
        run.await.map(Json).map_err(tool_error)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AuthorTools {
    fn get_info(&self) -> ServerConfig {
        server_info()
    }

    /// Runs the tool — once per `idempotency_key` when the call carries one.
    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let key = request.arguments.as_mut().and_then(|args| args.remove(KEY_ARGUMENT));
        let Some(key) = key else {
            return self.tool_router.call(ToolCallContext::new(self, request, context)).await;
        };
        let Some(key) = key.as_str().and_then(idempotency::checked_key) else {
            return Ok(refusal("idempotency_key must be 1 to 255 visible ASCII characters".into()));
        };
        let signed_in = context.extensions.get::<axum::http::request::Parts>().and_then(|p| p.extensions.get());
        let Some(SignedIn(author)) = signed_in.copied() else {
            return Err(ErrorData::internal_error("the call did not pass the sign-in gate", None));
        };
        let principal = idempotency::author_principal(author);
        let path = format!("tools/call/{}", request.name);
        let scope = idempotency::Scope { principal: &principal, method: "MCP", path: &path, key: &key };
        let hash = idempotency::digest(&serde_json::to_vec(&request.arguments).unwrap_or_default());
        match idempotency::claim(&self.state, scope, &hash).await {
            Err(e) => Ok(refusal(tool_error(e))),
            Ok(idempotency::Claim::Replay { body, .. }) => {
                let mut stored: CallToolResult = serde_json::from_slice(&body)
                    .map_err(|e| ErrorData::internal_error(format!("a stored result does not read back: {e}"), None))?;
                let mut meta = stored.meta.take().unwrap_or_default();
                meta.insert(REPLAYED_META.into(), true.into());
                stored.meta = Some(meta);
                Ok(stored.into())
            }
            Ok(idempotency::Claim::Run) => {
                let answer = self.tool_router.call(ToolCallContext::new(self, request, context)).await;
                let kept = match &answer {
                    Ok(CallToolResponse::Complete(result)) if result.is_error != Some(true) => {
                        serde_json::to_vec(result).ok()
                    }
                    _ => None,
                };
                // A result is kept for the retries; a failed call appended nothing, so its key is freed.
                let saved = match kept {
                    Some(body) => {
                        idempotency::store(&self.state, scope, StatusCode::OK, serde_json::json!({}), &body).await
                    }
                    None => idempotency::release(&self.state, scope).await.map_err(ApiError::from),
                };
                if let Err(e) = saved {
                    tracing::error!(error = %e, "an MCP idempotency key could not be saved");
                }
                answer
            }
        }
    }
}

/// A tool error in these words.
fn refusal(text: String) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(text)]).into()
}

/// The argument every author tool takes for replay-safe retries.
const KEY_ARGUMENT: &str = "idempotency_key";
/// The `_meta` entry on a result that is the stored answer to an earlier call with the same key.
const REPLAYED_META: &str = "pressroom.dev/idempotent-replayed";

/// Every author tool's input schema learns the optional `idempotency_key`.
fn with_idempotency_key(mut router: ToolRouter<AuthorTools>) -> ToolRouter<AuthorTools> {
    for route in router.map.values_mut() {
        let mut schema = (*route.attr.input_schema).clone();
        if let Some(serde_json::Value::Object(properties)) = schema.get_mut("properties") {
            properties.insert(
                KEY_ARGUMENT.into(),
                serde_json::json!({
                    "type": "string", "minLength": 1, "maxLength": 255,
                    "description": "Retries with this key within 24 h return the first result instead of writing again."
                }),
            );
        }
        route.attr.input_schema = Arc::new(schema);
    }
    router
}

fn server_info() -> ServerConfig {
    ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        .with_server_info(rmcp::model::Implementation::new("pressroom-command", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Write as an author (Authorization: Bearer <token from POST /v1/session>): create_draft, update_post, \
             publish_post, unpublish_post, add_tags. Each returns the version and position; read it back on the \
             query API's MCP server with min_position.",
        )
}

/// Documents `POST /mcp` in the command API's OpenAPI document.
pub struct McpDoc;

impl utoipa::Modify for McpDoc {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let summary = "Author tools for agents (bearer token): draft, edit, publish, unpublish, tag.";
        shared::http::api_doc::McpEndpoint { summary, bearer: true }.modify(api);
    }
}

/// `GET /mcp/tools`: the same list `tools/list` returns, with its JSON Schemas.
#[utoipa::path(get, path = "/mcp/tools", tag = "mcp", responses((status = 200, description = "{tools: [...]} as MCP tools/list")))]
pub async fn tool_list(headers: HeaderMap) -> Response {
    shared::http::etag::cacheable_json(&headers, &serde_json::json!({ "tools": AuthorTools::tools() }))
}

/// `GET /mcp/metadata`: who this server is and how to talk to it.
#[utoipa::path(get, path = "/mcp/metadata", tag = "mcp", responses((status = 200, description = "server name, version, protocol, capabilities, auth, links")))]
pub async fn metadata(headers: HeaderMap) -> Response {
    shared::http::etag::cacheable_json(
        &headers,
        &shared::http::mcp::metadata(&server_info(), Some("Authorization: Bearer <token from POST /v1/session>")),
    )
}
