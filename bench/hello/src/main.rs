//! Baseline for the read benchmarks: axum answering a constant body (`/`: 13 bytes; `/4k`: 4 KB of HTML,
//! the baseline of the site's pages), same runtime settings as the services.

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("HELLO_ADDR").unwrap_or_else(|_| "127.0.0.1:18090".into());
    let page: &'static str = Box::leak(format!("<!doctype html><p>{}</p>", "x".repeat(4096 - 22)).into_boxed_str());
    let app = Router::new()
        .route("/", get(|| async { "Hello, world!" }))
        .route("/4k", get(move || async move { axum::response::Html(page) }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
