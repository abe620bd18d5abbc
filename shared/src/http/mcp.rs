//! What both services' Model Context Protocol servers share: the `POST /mcp` service (the Streamable HTTP
//! transport and its settings) and the discovery document (`GET /mcp/metadata`).

use std::sync::Arc;

use rmcp::model::ServerConfig;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

/// The `POST /mcp` service: a server from `factory` for each request (stateless: no session to pin, so any
/// instance answers any request), JSON answers, and the `Host` guard of [`transport`].
pub fn service<H>(
    factory: impl Fn() -> H + Send + Sync + 'static,
    public_urls: &[&str],
) -> StreamableHttpService<H, NeverSessionManager>
where
    H: rmcp::ServerHandler + Send + 'static,
{
    StreamableHttpService::new(move || Ok(factory()), Arc::new(NeverSessionManager::default()), transport(public_urls))
}

/// Stateless Streamable HTTP with JSON answers, and the `Host` guard against DNS rebinding: loopback and
/// the hosts of `public_urls`.
fn transport(public_urls: &[&str]) -> StreamableHttpServerConfig {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    for url in public_urls.iter().filter_map(|u| url::Url::parse(u).ok()) {
        if let Some(host) = url.host_str() {
            hosts.push(host.to_string());
            if let Some(port) = url.port() {
                hosts.push(format!("{host}:{port}"));
            }
        }
    }
    StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(hosts)
}

/// `GET /mcp/metadata`: the server's name, version, protocol version and capabilities, whether (and how)
/// it wants a token, and where the OpenAPI document and the docs are.
pub fn metadata(info: &ServerConfig, auth: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "name": info.server_info.name,
        "version": info.server_info.version,
        "protocol_version": info.protocol_version,
        "transport": "streamable-http",
        "endpoint": "/mcp",
        "capabilities": info.capabilities,
        "auth_required": auth.is_some(),
        "auth": auth,
        "instructions": info.instructions,
        "openapi": "/openapi.json",
        "docs": "/docs",
    })
}
