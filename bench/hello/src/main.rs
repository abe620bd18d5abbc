//! Baseline for the read benchmarks: axum answering a constant body, same runtime settings as the services.

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("HELLO_ADDR").unwrap_or_else(|_| "127.0.0.1:18090".into());
    let app = Router::new().route("/", get(|| async { "Hello, world!" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
