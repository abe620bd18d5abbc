//! Baseline for the benchmarks: axum answering a constant body (`/`: 13 bytes; `/4k`: 4 KB of HTML, the
//! baseline of the site's pages; `/image`: a 40 KB `image/webp` body, the baseline of served media) and a body
//! sink (`POST /sink`: reads up to 64 MB and answers 204, the baseline of uploads), same runtime settings as
//! the services.

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("HELLO_ADDR").unwrap_or_else(|_| "127.0.0.1:18090".into());
    let page: &'static str = Box::leak(format!("<!doctype html><p>{}</p>", "x".repeat(4096 - 22)).into_boxed_str());
    let image: &'static [u8] = Box::leak(vec![0x5Au8; 40 * 1024].into_boxed_slice());
    let app = Router::new()
        .route("/", get(|| async { "Hello, world!" }))
        .route("/4k", get(move || async move { axum::response::Html(page) }))
        .route("/image", get(move || async move { ([(header::CONTENT_TYPE, "image/webp")], image) }))
        .route("/sink", post(|_body: axum::body::Bytes| async { StatusCode::NO_CONTENT }))
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
