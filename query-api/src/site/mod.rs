//! The public site: server-rendered HTML pages for readers, search engines and link previews — home, post,
//! tag, author and search pages, `robots.txt` and the stylesheet — from the same read paths, caches,
//! routes and consistency tokens as the JSON API.

mod meta;
mod pages;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use shared::service::config::Config;
use shared::store::db::ReadSource;

use bytes::Bytes;

use crate::cache::RenderedPage;
use crate::consistency::stamp;
use crate::error::{ReadError, ReadResult};
use crate::AppState;
use meta::Head;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/posts/{slug}", get(pages::post))
        .route("/tags/{slug}", get(pages::tag))
        .route("/authors/{slug}", get(pages::author))
        .route("/search", get(pages::search))
        .route("/robots.txt", get(robots))
        .route("/assets/{file}", get(stylesheet))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
}

/// The site's settings (`PRESSROOM_SITE_*`, `PRESSROOM_PUBLIC_URL`) as the templates use them.
pub struct Site {
    pub title: String,
    pub description: String,
    /// `PRESSROOM_PUBLIC_URL`, no trailing slash: the base of canonical URLs.
    pub url: String,
    /// `en_US`: Open Graph's form; [`Site::lang`] is `<html lang>`'s (`en-US`).
    pub locale: String,
    pub lang: String,
    pub publisher: String,
    pub logo_url: Option<String>,
    /// The stylesheet's path, with its content hash.
    pub stylesheet: String,
    /// Where the comment form posts: the command API's origin ("" when both share this one).
    pub command_url: String,
    /// `PRESSROOM_ROBOTS_AI`: whether AI crawlers may read the site.
    pub robots_ai: bool,
}

impl Site {
    pub fn from_config(config: &Config) -> Self {
        let s = &config.site;
        Site {
            title: s.title.clone(),
            description: s.description.clone(),
            url: config.public_url.clone(),
            lang: s.locale.replace('_', "-"),
            locale: s.locale.clone(),
            publisher: s.publisher.clone(),
            logo_url: s.logo_url.clone(),
            stylesheet: format!("/assets/{}", stylesheet_name()),
            command_url: s.command_url.clone(),
            robots_ai: s.robots_ai,
        }
    }

    /// An error as a page a person can read: its status, what happened, a link home. A 404 is not indexed.
    fn error_page(&self, headers: &HeaderMap, error: ReadError) -> Response {
        let problem = error.into_response();
        let status = problem.status();
        let (heading, message) = match status {
            StatusCode::NOT_FOUND => {
                ("Not found", "There is no page here: it may have been unpublished, or never existed.")
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                ("Unavailable", "The site cannot be read right now. Please try again in a moment.")
            }
            StatusCode::TOO_MANY_REQUESTS => ("Too many requests", "Please slow down and try again in a minute."),
            s if s.is_client_error() => ("Bad request", "This address has a parameter the site cannot read."),
            _ => ("Something went wrong", "The page could not be shown. Please try again."),
        };
        let mut head =
            Head::website(self, format!("{heading} · {}", self.title), message.into(), "/", &serde_json::json!({}));
        head.noindex = true;
        let page = match render(&ErrorTemplate { site: self, head, heading, message }) {
            Ok(page) => page,
            Err(e) => return e.into_response(),
        };
        let mut res = html(headers, status, &page, 0, ReadSource::Cache, "");
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(retry) = problem.headers().get(header::RETRY_AFTER) {
            res.headers_mut().insert(header::RETRY_AFTER, retry.clone());
        }
        res
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    site: &'a Site,
    head: Head,
    heading: &'a str,
    message: &'a str,
}

/// The HTML 404 for a path no route serves (what a browser gets instead of problem+json).
pub fn not_found_page(site: &Site, headers: &HeaderMap) -> Response {
    site.error_page(headers, ReadError::NotFound("page"))
}

pub(crate) const SURROGATE_KEY: header::HeaderName = header::HeaderName::from_static("surrogate-key");
const PAGE_CACHE_CONTROL: &str = "public, max-age=60, stale-while-revalidate=300";

/// A rendered template with its ETag.
fn render(template: &impl Template) -> ReadResult<RenderedPage> {
    let body = Bytes::from(template.render().map_err(ReadError::Render)?);
    Ok(RenderedPage { etag: shared::http::etag::of(&body), body })
}

/// A page's response: 200 (304 when the client has it) with its ETag, caching headers and read position.
fn html(
    headers: &HeaderMap,
    status: StatusCode,
    page: &RenderedPage,
    position: i64,
    source: ReadSource,
    surrogate_keys: &str,
) -> Response {
    let mut res =
        shared::http::etag::conditional(headers, "text/html; charset=utf-8", page.body.clone(), page.etag.clone());
    if status != StatusCode::OK {
        *res.status_mut() = status;
    }
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(PAGE_CACHE_CONTROL));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(keys) = HeaderValue::from_str(surrogate_keys) {
        if !surrogate_keys.is_empty() {
            h.insert(SURROGATE_KEY, keys);
        }
    }
    stamp(res, position, source)
}

/// Percent-encodes a query parameter value.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Crawlers that gather text for AI models, refused when `PRESSROOM_ROBOTS_AI=deny`.
const AI_CRAWLERS: &[&str] = &[
    "GPTBot",
    "ChatGPT-User",
    "OAI-SearchBot",
    "ClaudeBot",
    "Claude-Web",
    "anthropic-ai",
    "CCBot",
    "Google-Extended",
    "Applebot-Extended",
    "PerplexityBot",
    "Bytespider",
    "meta-externalagent",
];

/// `robots.txt`: everything public may be crawled but author reads and search results; the sitemap's
/// location; AI crawlers refused when the operator says so.
async fn robots(State(state): State<AppState>) -> Response {
    let site = &state.site;
    let mut out = String::from("User-agent: *\nAllow: /\nDisallow: /v1/author/\nDisallow: /search\n");
    if !site.robots_ai {
        for bot in AI_CRAWLERS {
            out.push_str(&format!("\nUser-agent: {bot}\nDisallow: /\n"));
        }
    }
    out.push_str(&format!("\nSitemap: {}/sitemap.xml\n", site.url));
    let mut res = out.into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
}

/// The site's icon: a rounded square in the accent colour (browsers ask for `/favicon.ico` whatever the page says).
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#0b57d0\"/></svg>";

async fn favicon(headers: HeaderMap) -> Response {
    let mut res = shared::http::etag::respond(&headers, "image/svg+xml", FAVICON);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    res
}

const STYLESHEET: &str = include_str!("../../assets/site.css");

/// `site-<first 10 hex digits of the SHA-256>.css`: a new name whenever the stylesheet changes.
fn stylesheet_name() -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(STYLESHEET.as_bytes());
    format!("site-{}.css", shared::hex(&digest[..5]))
}

/// The stylesheet under its hashed name, cached for a year (`immutable`); any other name is a 404.
async fn stylesheet(State(state): State<AppState>, headers: HeaderMap, Path(file): Path<String>) -> Response {
    if !state.site.stylesheet.ends_with(&format!("/{file}")) {
        return not_found_page(&state.site, &headers);
    }
    let mut res = shared::http::etag::respond(&headers, "text/css; charset=utf-8", STYLESHEET);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    res
}
