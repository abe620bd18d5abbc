//! The page handlers: each reads through the same functions as its JSON route, then renders a template.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use shared::read::model::{PostDetail, PostSummary};
use shared::store::db::{ReadRoute, ReadSource};

use super::meta::{self, Head};
use super::{html, render, Site};
use crate::cache::SlugEntry;
use crate::consistency::min_position;
use crate::error::ReadError;
use crate::routes::comments::{self, CommentView};
use crate::routes::posts::{self, slug, ListQuery};
use crate::routes::{authors, search as search_route, tags, trending};
use crate::{page, AppState};

/// Posts a list page shows.
const PAGE_SIZE: i64 = 10;
/// Posts in the home page's trending strip.
const TRENDING: i64 = 5;
/// Approved comments shown under a post.
const COMMENTS: i64 = 100;

#[derive(Template)]
#[template(path = "list.html")]
struct ListTemplate<'a> {
    site: &'a Site,
    head: Head,
    heading: String,
    intro: Option<String>,
    trending: Vec<PostSummary>,
    posts: &'a [PostSummary],
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "post.html")]
struct PostTemplate<'a> {
    site: &'a Site,
    head: Head,
    post: &'a PostDetail,
    cover: Option<CoverView>,
    comments: Vec<CommentView>,
    notice: Option<&'static str>,
    /// Edited on a later day than it was published (the page then shows both dates).
    updated: bool,
}

/// A post's cover `<img>`: an uploaded image with its variants (`srcset`), or a cover URL given by hand.
struct CoverView {
    src: String,
    srcset: String,
    width: u32,
    height: u32,
    alt: String,
}

impl CoverView {
    /// The column width the `srcset` is chosen for (the same as for body images).
    fn sizes(&self) -> &'static str {
        shared::media::urls::SIZES
    }

    /// The cover of `post`; media URLs on the site's own origin (`site_url`) become paths.
    fn of(post: &PostDetail, site_url: &str) -> Option<Self> {
        let fallback_alt = || format!("Cover image of {}", post.summary.title);
        if let Some(cover) = &post.cover {
            let shown = cover.responsive(site_url);
            return Some(CoverView {
                src: shown.src,
                srcset: shown.srcset,
                width: shown.width,
                height: shown.height,
                alt: cover.alt.clone().unwrap_or_else(fallback_alt),
            });
        }
        post.cover_image_url.as_ref().map(|url| CoverView {
            src: url.clone(),
            srcset: String::new(),
            width: 1200,
            height: 630,
            alt: fallback_alt(),
        })
    }
}

/// A search result as the page shows it.
struct Found {
    slug: String,
    title: String,
    author_slug: String,
    author_name: String,
    /// Escaped text whose only markup is `<mark>`.
    snippet: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchTemplate<'a> {
    site: &'a Site,
    head: Head,
    heading: String,
    results: Vec<Found>,
    next: Option<String>,
}

/// `/`: the latest posts (keyset pages, the API's cursor) and, on the first page, the trending strip.
pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let site = state.site.clone();
    let result = async {
        let query = ListQuery::new(PAGE_SIZE, page::cursor(&params, posts::decode_cursor)?, None, None);
        let first = query.is_first();
        let token = min_position(&state, &headers).await?;
        let (list, source) = posts::list_page(&state, &query, token).await?;
        let next = list.next_cursor.as_ref().map(|c| format!("/?cursor={c}"));
        let render_page = || async {
            let trending = if first {
                let chosen = state.reads.choose(ReadRoute::Replica, posts::PROJECTIONS, token).await?;
                trending::top(&chosen.pool, TRENDING).await?
            } else {
                Vec::new()
            };
            let title = if first { site.title.clone() } else { format!("Older posts · {}", site.title) };
            let cursor = params.get("cursor").map_or("", String::as_str);
            let path = if first { "/".to_string() } else { format!("/?cursor={cursor}") };
            let head = Head::website(&site, title, site.description.clone(), &path, &meta::website(&site));
            let heading = if first { "Latest posts" } else { "Older posts" }.to_string();
            let page = ListTemplate { site: &site, head, heading, intro: None, trending, posts: &list.posts, next };
            render(&page)
        };
        // The page is kept with the list page it shows (its trending strip as old as the list, at most the
        // cache's TTL).
        let page = list.page.get_or_try_init(render_page).await?;
        Ok(html(&headers, StatusCode::OK, page, list.position, source, "posts-list"))
    };
    result.await.unwrap_or_else(|e| site.error_page(&headers, e))
}

/// `/posts/{slug}`: the article, its approved comments and the comment form; 301 from a former slug.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let site = state.site.clone();
    let result = async {
        let resolved = slug::resolve(&state, &headers, &slug).await?;
        let entry = match resolved.entry.as_ref() {
            SlugEntry::NotFound => return Err(ReadError::NotFound("post")),
            SlugEntry::Moved(current) => return Ok(moved(&format!("/posts/{current}"))),
            SlugEntry::Post(entry) => entry,
        };
        let detail = &entry.detail;
        state.cache.record_view(detail.summary.id);
        let notice = params.get("comment").and_then(|c| comment_notice(c));
        let render_page = || async {
            // A post folded from its events (its projections behind the reader's token) lists the comments
            // folded from theirs, as its count is.
            let comments = if entry.source == ReadSource::Events {
                comments::approved_from_events(&state, detail.summary.id, COMMENTS as usize).await?
            } else {
                let token = min_position(&state, &headers).await?;
                let chosen = state.reads.choose(ReadRoute::Replica, posts::PROJECTIONS, token).await?;
                comments::approved(&chosen.pool, detail.summary.id, COMMENTS, None).await?.comments
            };
            render(&PostTemplate {
                site: &site,
                head: Head::post(&site, detail),
                post: detail,
                cover: CoverView::of(detail, &site.url),
                comments,
                notice,
                updated: detail
                    .summary
                    .published_at
                    .is_some_and(|at| detail.summary.updated_at.date_naive() > at.date_naive()),
            })
        };
        // The page is kept with the post's cache entry (comments included: approving one changes the
        // post's row, which replaces the entry); a page with a notice is the reader's own.
        let rendered;
        let page = match notice {
            None => entry.page.get_or_try_init(render_page).await?,
            Some(_) => {
                rendered = render_page().await?;
                &rendered
            }
        };
        let source = resolved.source.unwrap_or(entry.source);
        let mut res = html(&headers, StatusCode::OK, page, entry.header_position, source, "");
        let [_, last_modified, surrogate] = &entry.headers;
        res.headers_mut().insert(header::LAST_MODIFIED, last_modified.clone());
        res.headers_mut().insert(super::SURROGATE_KEY, surrogate.clone());
        if source == ReadSource::Events {
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Ok(res)
    };
    result.await.unwrap_or_else(|e| site.error_page(&headers, e))
}

/// `/tags/{slug}`: the tag's published posts, paginated like `/`.
pub async fn tag(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    collection(&state, &headers, &params, Collection::Tag(slug)).await
}

/// `/authors/{slug}`: the author's published posts, paginated like `/`.
pub async fn author(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    collection(&state, &headers, &params, Collection::Author(slug)).await
}

/// Whose posts a collection page lists.
enum Collection {
    Tag(String),
    Author(String),
}

/// A tag's or an author's page: who or what it is (404 when nothing public), then its posts.
async fn collection(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    of: Collection,
) -> Response {
    let site = &state.site;
    let result = async {
        let cursor = page::cursor(params, posts::decode_cursor)?;
        let token = min_position(state, headers).await?;
        let chosen = state.reads.choose(ReadRoute::Replica, posts::PROJECTIONS, token).await?;
        let (query, path, kind, name, heading, description, keys) = match &of {
            Collection::Tag(slug) => {
                let tag = tags::find(&chosen.pool, slug).await?;
                let noun = if tag.post_count == 1 { "post" } else { "posts" };
                let description = format!("{} {noun} tagged {} on {}.", tag.post_count, tag.name, site.title);
                let query = ListQuery::new(PAGE_SIZE, cursor, Some(slug.clone()), None);
                let heading = format!("#{}", tag.name);
                (
                    query,
                    format!("/tags/{slug}"),
                    "CollectionPage",
                    tag.name,
                    heading,
                    description,
                    format!("tag-{slug}"),
                )
            }
            Collection::Author(slug) => {
                let author = authors::find(&chosen.pool, slug).await?;
                let description =
                    author.bio.clone().unwrap_or_else(|| format!("Posts by {} on {}.", author.name, site.title));
                let query = ListQuery::new(PAGE_SIZE, cursor, None, Some(slug.clone()));
                let keys = format!("author-{}", author.id);
                (query, format!("/authors/{slug}"), "ProfilePage", author.name.clone(), author.name, description, keys)
            }
        };
        let (list, source) = posts::list_page(state, &query, token).await?;
        let json_ld = meta::collection(site, kind, &name, &format!("{}{path}", site.url), &list.posts);
        let head = Head::website(site, format!("{name} · {}", site.title), description.clone(), &path, &json_ld);
        let page = ListTemplate {
            site,
            head,
            heading,
            intro: Some(description),
            trending: Vec::new(),
            posts: &list.posts,
            next: list.next_cursor.as_ref().map(|c| format!("{path}?cursor={c}")),
        };
        Ok(html(headers, StatusCode::OK, &render(&page)?, list.position, source, &format!("{keys} posts-list")))
    };
    result.await.unwrap_or_else(|e| site.error_page(headers, e))
}

/// `/search?q=`: ranked results with their highlighted snippets (not for indexing).
pub async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let site = state.site.clone();
    let result = async {
        let raw = params.get("q").map(|q| q.trim().to_string()).unwrap_or_default();
        let token = min_position(&state, &headers).await?;
        let chosen = state.reads.choose(ReadRoute::Replica, posts::PROJECTIONS, token).await?;
        let (results, next) = if raw.is_empty() {
            (Vec::new(), None)
        } else {
            let q = search_route::query(&params)?;
            let cursor = page::cursor(&params, search_route::decode_cursor)?;
            let found = search_route::run(&chosen.pool, &q, PAGE_SIZE, cursor).await?;
            let next = found.next_cursor.map(|c| format!("/search?q={}&cursor={c}", super::query_escape(&q)));
            let results = found
                .results
                .into_iter()
                .map(|r| Found {
                    slug: r.post.slug,
                    title: r.post.title,
                    author_slug: r.post.author.slug,
                    author_name: r.post.author.name,
                    snippet: r.snippet,
                })
                .collect();
            (results, next)
        };
        let title = if raw.is_empty() { "Search".to_string() } else { format!("Search: {raw}") };
        let path = format!("/search?q={}", super::query_escape(&raw));
        let json_ld =
            serde_json::json!({"@context": "https://schema.org", "@type": "SearchResultsPage", "name": title});
        let mut head = Head::website(
            &site,
            format!("{title} · {}", site.title),
            format!("Search {}", site.title),
            &path,
            &json_ld,
        );
        head.query = raw;
        head.noindex = true;
        let heading = title.clone();
        let page = SearchTemplate { site: &site, head, heading, results, next };
        let page = render(&page)?;
        Ok(html(&headers, StatusCode::OK, &page, chosen.position.global_position, chosen.source, "posts-list"))
    };
    result.await.unwrap_or_else(|e| site.error_page(&headers, e))
}

/// What the command API's answer to the comment form (`?comment=…` on its 303) means for the reader.
fn comment_notice(outcome: &str) -> Option<&'static str> {
    match outcome {
        "held" => Some("Thank you: your comment is held for moderation."),
        "invalid" => Some("Your comment was not posted: a name and a comment (up to 10,000 characters) are needed."),
        "limited" => Some("Your comment was not posted: too many comments from your address; try again in a minute."),
        _ => None,
    }
}

/// A permanent redirect to `location` (a path on this site).
fn moved(location: &str) -> Response {
    let mut res = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, value);
    }
    res
}
