//! What both services' Model Context Protocol servers share: the Streamable HTTP transport's settings and
//! the discovery document (`GET /mcp/metadata`).

use rmcp::model::ServerConfig;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;

/// Stateless Streamable HTTP with JSON answers (no session to pin: any instance answers any request), and
/// the `Host` guard against DNS rebinding: loopback and the hosts of `public_urls`.
pub fn transport(public_urls: &[&str]) -> StreamableHttpServerConfig {
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
