//! The Model Context Protocol server of the query API: read tools for agents at `POST /mcp` (Streamable
//! HTTP, through the official `rmcp` SDK), and its discovery documents `GET /mcp/tools` and
//! `GET /mcp/metadata`. Each tool reads through the same functions as the JSON routes; every result
//! carries the `position` it reflects, which an agent passes back as `min_position` to read its writes.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use shared::store::db::ReadRoute;
use shared::store::position::MIN_POSITION_HEADER;

use crate::cache::{PostEntry, SlugEntry};
use crate::consistency::min_position;
use crate::error::{ReadError, ReadResult};
use crate::page::decode_cursor;
use crate::routes::posts::{self, slug, ListQuery};
use crate::routes::{authors, search, tags, trending};
use crate::AppState;

mod shapes;
mod text;

use shapes::*;
use text::Answer;

/// Results a list tool returns unless asked for more (agents pay for every token).
const DEFAULT_LIMIT: i64 = 10;
const MAX_LIMIT: i64 = 50;

/// `POST /mcp` (the protocol), `GET /mcp/tools` and `GET /mcp/metadata` (discovery).
pub fn router(state: &AppState) -> Router<AppState> {
    let tools = state.clone();
    let service = shared::http::mcp::service(move || ReadTools::new(tools.clone()), &[&state.site.url]);
    Router::new()
        .route_service("/mcp", service)
        .route("/mcp/tools", get(tool_list))
        .route("/mcp/metadata", get(metadata))
}

/// The read tools, bound to the query API's state.
#[derive(Clone)]
pub struct ReadTools {
    state: AppState,
    tool_router: Arc<ToolRouter<Self>>,
}

/// The tools, built once (their JSON Schemas are generated here), shared by every request's server.
fn shared_tools() -> Arc<ToolRouter<ReadTools>> {
    static ROUTER: std::sync::OnceLock<Arc<ToolRouter<ReadTools>>> = std::sync::OnceLock::new();
    ROUTER.get_or_init(|| Arc::new(ReadTools::tool_router())).clone()
}

/// A tool's failure as the agent reads it (a tool error, never a protocol fault).
fn tool_error(e: ReadError) -> String {
    describe(&e)
}

fn describe(e: &ReadError) -> String {
    match e {
        ReadError::NotFound(what) => format!("no published {what} has this slug"),
        ReadError::Validation(errors) => {
            errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        ReadError::BadRequest(message) => message.clone(),
        ReadError::RateLimited(secs) => format!("too many requests; retry in {secs} s"),
        ReadError::Unavailable(_) => "the publication cannot be read right now; retry shortly".into(),
        ReadError::Shared(inner) => describe(inner),
        other => {
            tracing::error!(error = ?other, "MCP read tool failed");
            "the read failed; it was logged".into()
        }
    }
}

/// The headers a JSON route would get for this `min_position`.
fn token_headers(min_position: Option<i64>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(p) = min_position {
        headers.insert(MIN_POSITION_HEADER, HeaderValue::from(p));
    }
    headers
}

fn limit(raw: Option<i64>) -> ReadResult<i64> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ReadError::BadRequest(format!("limit must be 1 to {MAX_LIMIT}"))),
    }
}

impl ReadTools {
    /// The cache entry of the published post at `slug` (read your writes with `min_position`).
    async fn post(&self, slug: &str, min_position: Option<i64>) -> ReadResult<PostEntry> {
        let resolved = slug::resolve(&self.state, &token_headers(min_position), slug).await?;
        match resolved.entry.as_ref() {
            SlugEntry::Post(entry) => Ok(entry.clone()),
            SlugEntry::Moved(current) => {
                Err(ReadError::BadRequest(format!("this post moved: call get_post with slug `{current}`")))
            }
            SlugEntry::NotFound => Err(ReadError::NotFound("post")),
        }
    }

    fn post_out(&self, entry: &PostEntry, markdown: &str) -> PostOut {
        let s = &entry.detail.summary;
        PostOut {
            url: format!("{}/posts/{}", self.state.site.url, s.slug),
            slug: s.slug.clone(),
            title: s.title.clone(),
            summary: s.summary.clone(),
            author: s.author.name.clone(),
            author_slug: s.author.slug.clone(),
            tags: s.tags.iter().map(|t| t.name.clone()).collect(),
            published_at: s.published_at,
            updated_at: s.updated_at,
            version: entry.detail.version,
            comment_count: s.comment_count,
            body_markdown: markdown.to_string(),
            position: entry.header_position,
        }
    }
}

#[tool_router]
impl ReadTools {
    pub fn new(state: AppState) -> Self {
        ReadTools { state, tool_router: shared_tools() }
    }

    /// The tools as `tools/list` gives them.
    pub fn tools() -> Vec<rmcp::model::Tool> {
        shared_tools().list_all()
    }

    #[tool(description = "Full-text search of published posts, best match first.", output_schema = schema_for_output::<SearchResults>())]
    async fn search_posts(&self, Parameters(a): Parameters<SearchArgs>) -> Result<Answer<SearchResults>, String> {
        let run = async {
            let q = search::checked_query(&a.query)?;
            let token = min_position(&self.state, &token_headers(a.min_position)).await?;
            let chosen = self.state.reads.choose(ReadRoute::Replica, posts::PROJECTIONS, token).await?;
            let found = search::run(
                &chosen.pool,
                &q,
                limit(a.limit)?,
                decode_cursor(a.cursor.as_deref(), search::decode_cursor)?,
            )
            .await?;
            let results = found
                .results
                .iter()
                .map(|r| SearchHit {
                    post: PostItem::from(&r.post),
                    snippet: shared::read::render::text_of(&r.snippet.replace("<mark>", "«").replace("</mark>", "»")),
                })
                .collect();
            Ok(SearchResults { results, next_cursor: found.next_cursor, position: chosen.position.global_position })
        };
        run.await.map(Answer).map_err(tool_error)
    }

    #[tool(description = "One published post by slug: metadata and the Markdown body.", output_schema = schema_for_output::<PostOut>())]
    async fn get_post(&self, Parameters(a): Parameters<SlugArgs>) -> Result<CallToolResult, String> {
        let run = async {
            let entry = self.post(&a.slug, a.min_position).await?;
            let build = || async {
                let markdown = slug::markdown(&self.state, &entry).await?;
                text::answer(&self.post_out(&entry, &markdown)).map_err(ReadError::Encode)
            };
            entry.tool_result.get_or_try_init(build).await.cloned()
        };
        run.await.map_err(tool_error)
    }

    #[tool(description = "Published posts, newest first; filter by tag or author slug.", output_schema = schema_for_output::<PostList>())]
    async fn list_posts(&self, Parameters(a): Parameters<ListArgs>) -> Result<Answer<PostList>, String> {
        let run = async {
            let token = min_position(&self.state, &token_headers(a.min_position)).await?;
            let query = ListQuery::new(
                limit(a.limit)?,
                decode_cursor(a.cursor.as_deref(), posts::decode_cursor)?,
                a.tag,
                a.author,
            );
            let (page, _) = posts::list_page(&self.state, &query, token).await?;
            Ok(PostList {
                posts: page.posts.iter().map(PostItem::from).collect(),
                next_cursor: page.next_cursor.clone(),
                position: page.position,
            })
        };
        run.await.map(Answer).map_err(tool_error)
    }

    #[tool(description = "Tags in use, most used first.", output_schema = schema_for_output::<TagsOut>())]
    async fn list_tags(&self, Parameters(_): Parameters<NoArgs>) -> Result<Answer<TagsOut>, String> {
        let run = async {
            let chosen = self.state.reads.choose(ReadRoute::Replica, &["posts"], None).await?;
            let tags = tags::in_use(&chosen.pool).await?;
            let tags =
                tags.into_iter().map(|t| TagOut { slug: t.slug, name: t.name, post_count: t.post_count }).collect();
            Ok(TagsOut { tags, position: chosen.position.global_position })
        };
        run.await.map(Answer).map_err(tool_error)
    }

    #[tool(description = "An author with published posts, by slug.", output_schema = schema_for_output::<AuthorOut>())]
    async fn get_author(&self, Parameters(a): Parameters<SlugArgs>) -> Result<Answer<AuthorOut>, String> {
        let run = async {
            let token = min_position(&self.state, &token_headers(a.min_position)).await?;
            let chosen = self.state.reads.choose(ReadRoute::Replica, &["posts"], token).await?;
            let author = authors::find(&chosen.pool, &a.slug).await?;
            Ok(AuthorOut {
                url: format!("{}/authors/{}", self.state.site.url, author.slug),
                slug: author.slug,
                name: author.name,
                bio: author.bio,
                post_count: author.post_count,
                position: chosen.position.global_position,
            })
        };
        run.await.map(Answer).map_err(tool_error)
    }

    #[tool(description = "Posts readers are reading now, most first.", output_schema = schema_for_output::<TrendingOut>())]
    async fn trending(&self, Parameters(a): Parameters<LimitArgs>) -> Result<Answer<TrendingOut>, String> {
        let run = async {
            let chosen = self.state.reads.choose(ReadRoute::Replica, &["posts"], None).await?;
            let posts = trending::top(&chosen.pool, limit(a.limit)?).await?;
            Ok(TrendingOut {
                posts: posts.iter().map(PostItem::from).collect(),
                position: chosen.position.global_position,
            })
        };
        run.await.map(Answer).map_err(tool_error)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ReadTools {
    fn get_info(&self) -> ServerConfig {
        server_info()
    }

    /// The latest published posts as `pressroom://posts/{slug}` resources (Markdown).
    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        let query = ListQuery::new(MAX_LIMIT, None, None, None);
        let (page, _) = posts::list_page(&self.state, &query, None)
            .await
            .map_err(|e| rmcp::ErrorData::internal_error(describe(&e), None))?;
        let resources = page
            .posts
            .iter()
            .map(|p| {
                let resource = rmcp::model::Resource::new(format!("{RESOURCE_PREFIX}{}", p.slug), p.slug.clone())
                    .with_title(p.title.clone())
                    .with_mime_type("text/markdown");
                match &p.summary {
                    Some(summary) => resource.with_description(summary.clone()),
                    None => resource,
                }
            })
            .collect();
        Ok(rmcp::model::ListResourcesResult::with_all_items(resources))
    }

    /// A post's Markdown, by its `pressroom://posts/{slug}` URI.
    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, rmcp::ErrorData> {
        let Some(slug) = request.uri.strip_prefix(RESOURCE_PREFIX) else {
            return Err(rmcp::ErrorData::resource_not_found(
                format!("not a Pressroom post URI: {}", request.uri),
                None,
            ));
        };
        let read = async {
            let entry = self.post(slug, None).await?;
            let markdown = slug::markdown(&self.state, &entry).await?;
            Ok::<_, ReadError>(format!("# {}\n\n{markdown}", entry.detail.summary.title))
        };
        let text = read.await.map_err(|e| rmcp::ErrorData::resource_not_found(describe(&e), None))?;
        let contents = rmcp::model::ResourceContents::TextResourceContents {
            uri: request.uri,
            mime_type: Some("text/markdown".into()),
            text,
            meta: None,
        };
        Ok(rmcp::model::ReadResourceResult::new(vec![contents]).into())
    }
}

/// How posts are named as MCP resources.
const RESOURCE_PREFIX: &str = "pressroom://posts/";

fn server_info() -> ServerConfig {
    ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
        .with_server_info(rmcp::model::Implementation::new("pressroom-query", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Read the publication: search_posts, list_posts, get_post (Markdown), list_tags, get_author, trending. \
             Pass a write's position as min_position to read it back.",
        )
}

/// Documents `POST /mcp` in the query API's OpenAPI document.
pub struct McpDoc;

impl utoipa::Modify for McpDoc {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let summary = "Read tools for agents: search, list and read posts (Markdown), tags, authors, trending.";
        shared::http::api_doc::McpEndpoint { summary, bearer: false }.modify(api);
    }
}

/// `GET /mcp/tools`: the same list `tools/list` returns, with its JSON Schemas.
#[utoipa::path(get, path = "/mcp/tools", tag = "mcp", responses((status = 200, description = "{tools: [...]} as MCP tools/list")))]
pub async fn tool_list(headers: HeaderMap) -> Response {
    shared::http::etag::cacheable_json(&headers, &serde_json::json!({ "tools": ReadTools::tools() }))
}

/// `GET /mcp/metadata`: who this server is and how to talk to it.
#[utoipa::path(get, path = "/mcp/metadata", tag = "mcp", responses((status = 200, description = "server name, version, protocol, capabilities, auth, links")))]
pub async fn metadata(headers: HeaderMap) -> Response {
    shared::http::etag::cacheable_json(&headers, &shared::http::mcp::metadata(&server_info(), None))
}
