//! A single published post by slug: process cache, Redis, replica, primary — with ETag/304, 301 from old
//! slugs, and the event-store fallback for a token no projection has reached.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use shared::domain::post::PostStatus;
use shared::read::model::{AuthorRef, PostDetail, TagRef};
use shared::store::db::{ReadRoute, ReadSource};
use shared::store::position::{LogPosition, MIN_POSITION_HEADER};
use shared::store::streams::Until;
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;
use uuid::Uuid;

use super::PROJECTIONS;
use crate::cache::{PostEntry, SlugEntry};
use crate::consistency::{min_position, stamp};
use crate::error::{ReadError, ReadResult};
use crate::AppState;
use shared::http::etag;

struct DetailRow {
    id: Uuid,
    slug: String,
    status: String,
    title: String,
    summary: Option<String>,
    body_html: String,
    cover_image_url: Option<String>,
    cover_media_id: Option<Uuid>,
    tags: SqlJson<Vec<TagRef>>,
    author: SqlJson<AuthorRef>,
    reading_time_minutes: i32,
    comment_count: i32,
    version: i32,
    updated_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
    last_transaction_id: i64,
    last_position: i64,
    checkpoint_tx: i64,
    checkpoint_position: i64,
}

impl DetailRow {
    fn into_detail(self) -> PostDetail {
        shared::post_detail!(self)
    }
}

/// Builds a cache entry from a post detail known to reflect `valid_through`, its cover image described and
/// the images in its body made responsive.
async fn post_entry(
    state: &AppState,
    mut detail: PostDetail,
    header_position: i64,
    valid_through: LogPosition,
    source: ReadSource,
) -> ReadResult<SlugEntry> {
    if let Some(id) = detail.cover_media_id {
        detail.cover = crate::routes::media::image(state, id).await?;
    }
    detail.body_html = crate::routes::media::responsive_body(state, std::mem::take(&mut detail.body_html)).await?;
    Ok(entry_of(detail, header_position, valid_through, source))
}

fn entry_of(detail: PostDetail, header_position: i64, valid_through: LogPosition, source: ReadSource) -> SlugEntry {
    let body = Bytes::from(serde_json::to_vec(&detail).unwrap_or_default());
    SlugEntry::Post(PostEntry {
        headers: [etag::of(&body), last_modified(&detail), surrogate_keys(&detail)],
        body,
        header_position,
        detail: Arc::new(detail),
        valid_through,
        source,
        page: Default::default(),
        markdown: Default::default(),
        tool_result: Default::default(),
    })
}

/// Reads a slug from one database: the post (with the projection checkpoint, in the same snapshot),
/// or the slug history for a 301, or nothing.
async fn load_from(
    state: &AppState,
    pool: &PgPool,
    source: ReadSource,
    slug: &str,
) -> ReadResult<(SlugEntry, LogPosition)> {
    let row = sqlx::query_as!(
        DetailRow,
        r#"select id, slug, status, title, summary, body_html, cover_image_url, cover_media_id, tags as "tags: SqlJson<Vec<TagRef>>",
                  author as "author: SqlJson<AuthorRef>", reading_time_minutes, comment_count, version, updated_at,
                  published_at, last_transaction_id::text::bigint as "last_transaction_id!", last_position,
                  coalesce(c.transaction_id, 0) as "checkpoint_tx!", coalesce(c.global_position, 0) as "checkpoint_position!"
           from read.posts
           -- The row is as new as the projection behind: a comment count is the comments projection's.
           left join lateral (select transaction_id::text::bigint as transaction_id, global_position from read.checkpoints
                              where name in ('posts', 'comments') order by 1, 2 limit 1) c on true
           where slug = $1"#,
        slug
    )
    .fetch_optional(pool);
    let row = shared::service::metrics::timed_query("posts.by_slug", source.as_str(), row).await?;
    if let Some(row) = row {
        let checkpoint = LogPosition::new(row.checkpoint_tx, row.checkpoint_position);
        if row.status != PostStatus::Published.as_str() {
            return Ok((SlugEntry::NotFound, checkpoint));
        }
        let header = row.checkpoint_position;
        let row_position = LogPosition::new(row.last_transaction_id, row.last_position);
        let entry = post_entry(state, row.into_detail(), header, checkpoint.max(row_position), source).await?;
        return Ok((entry, checkpoint));
    }
    let moved = sqlx::query!(
        r#"select (select p.slug from read.slug_history h join read.posts p on p.id = h.post_id
                   where h.slug = $1 and p.status = 'published') as current,
                  coalesce((select transaction_id::text::bigint from read.checkpoints where name = 'posts'), 0) as "tx!",
                  coalesce((select global_position from read.checkpoints where name = 'posts'), 0) as "pos!""#,
        slug
    )
    .fetch_one(pool)
    .await?;
    let checkpoint = LogPosition::new(moved.tx, moved.pos);
    Ok((moved.current.map_or(SlugEntry::NotFound, SlugEntry::Moved), checkpoint))
}

/// A cache miss without a consistency token: Redis (the projector's write-through), then a replica
/// (or the primary when none is healthy or the replica fails).
async fn load_slug(state: &AppState, slug: &str) -> ReadResult<Arc<SlugEntry>> {
    let cached = state.cache.redis_post(slug).await;
    crate::cache::count("redis", cached.is_some());
    if let Some(cached) = cached {
        let at = LogPosition::new(cached.transaction_id, cached.position);
        return Ok(Arc::new(post_entry(state, cached.post, cached.position, at, ReadSource::Cache).await?));
    }
    let (pool, source) = state.reads.route(ReadRoute::Replica);
    let loaded = match load_from(state, &pool, source, slug).await {
        // A client's bad input is the same on every database; only a failing replica is worth a second read.
        Err(e) if source == ReadSource::Replica && !matches!(e, ReadError::BadRequest(_)) => {
            tracing::warn!(error = %e, "replica read failed; reading the primary");
            let (pool, source) = state.reads.route(ReadRoute::Primary);
            load_from(state, &pool, source, slug).await
        }
        other => other,
    };
    match loaded?.0 {
        // Not cached: a post published a moment from now must not stay hidden behind a cached 404.
        SlugEntry::NotFound => Err(ReadError::NotFound("post")),
        entry => Ok(Arc::new(entry)),
    }
}

/// One published post by its slug (301 from a former slug).
#[utoipa::path(get, path = "/v1/posts/{slug}", tag = "posts",
    params(("slug" = String, Path), ("If-None-Match" = Option<String>, Header), ("Pressroom-Min-Position" = Option<i64>, Header, minimum = 1, description = "read your writes: a position a command returned")),
    responses((status = 200, body = shared::read::model::PostDetail), (status = 301, description = "moved to the current slug"),
        (status = 304, description = "not modified"), (status = 404, body = shared::http::problem::ProblemDoc)))]
#[tracing::instrument(skip_all, fields(slug = %slug))]
pub async fn by_slug(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> ReadResult<Response> {
    let resolved = resolve(&state, &headers, &slug).await?;
    let mut res = viewed(&state, &resolved.entry, &headers, resolved.source);
    if resolved.source == Some(ReadSource::Events) {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// What a slug read found and where (None: the entry's own source, it came through the caches).
pub struct Resolved {
    pub entry: Arc<SlugEntry>,
    pub source: Option<ReadSource>,
}

/// Resolves a slug as the request's `Pressroom-Min-Position` asks: the process cache, Redis, a replica or
/// the primary — or, when no projection has reached the token, the post folded from its events. The JSON
/// route and the site's post page both read through it.
pub async fn resolve(state: &AppState, headers: &HeaderMap, slug: &str) -> ReadResult<Resolved> {
    // Every path but the common one (no token, a process-cache hit) is boxed: this future is moved whole
    // on every request, and the database paths inline would make it kilobytes.
    let token = match headers.contains_key(MIN_POSITION_HEADER) {
        true => Box::pin(min_position(state, headers)).await?,
        false => None,
    };
    let Some(token) = token else {
        let hit = state.cache.posts.get(slug).await;
        crate::cache::count("process", hit.is_some());
        if let Some(hit) = hit {
            return Ok(Resolved { entry: hit, source: Some(ReadSource::Cache) });
        }
        // Single flight: concurrent misses for one slug share one load.
        let generation = state.cache.slug_generation(slug);
        let entry = Box::pin(state.cache.posts.try_get_with(slug.to_string(), load_slug(state, slug))).await?;
        if state.cache.slug_generation(slug) != generation {
            // The projector invalidated this slug while it loaded: what was read may predate the change, so it
            // answers this request but is not kept.
            state.cache.posts.invalidate(slug).await;
        }
        return Ok(Resolved { entry, source: None });
    };
    Box::pin(resolve_at(state, slug, token)).await
}

/// A read that must include the event at `token` (read-your-writes).
async fn resolve_at(state: &AppState, slug: &str, token: LogPosition) -> ReadResult<Resolved> {
    // A cache entry that is not known to include the token is skipped.
    if let Some(hit) = state.cache.posts.get(slug).await {
        if let SlugEntry::Post(p) = hit.as_ref() {
            if p.valid_through.reached(&token) {
                return Ok(Resolved { entry: hit, source: Some(ReadSource::Cache) });
            }
        }
    }
    let chosen = state.reads.choose(ReadRoute::Replica, PROJECTIONS, Some(token)).await?;
    if !chosen.reached {
        // Even the primary's projection is behind the token: fold the post from the event store.
        let entry = from_events(state, slug, token).await?;
        return Ok(Resolved { entry: Arc::new(entry), source: Some(ReadSource::Events) });
    }
    let (entry, _) = load_from(state, &chosen.pool, chosen.source, slug).await?;
    Ok(Resolved { entry: Arc::new(entry), source: Some(chosen.source) })
}

/// Counts a public view of a post (for trending), then responds.
fn viewed(state: &AppState, entry: &SlugEntry, headers: &HeaderMap, source: Option<ReadSource>) -> Response {
    if let SlugEntry::Post(p) = entry {
        state.cache.record_view(p.detail.summary.id);
    }
    respond(entry, headers, source)
}

/// Writes the response for a slug entry: 200 (or 304), 301, or 404.
fn respond(entry: &SlugEntry, headers: &HeaderMap, source: Option<ReadSource>) -> Response {
    match entry {
        SlugEntry::NotFound => ReadError::NotFound("post").into_response(),
        SlugEntry::Moved(current) => stamp(moved_to(current), 0, source.unwrap_or(ReadSource::Cache)),
        SlugEntry::Post(p) => {
            let [etag, last_modified, surrogate] = &p.headers;
            let mut res = if etag::not_modified(headers, etag) {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                let mut res =
                    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], p.body.clone()).into_response();
                let h = res.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
                h.insert(header::LAST_MODIFIED, last_modified.clone());
                h.insert(SURROGATE_KEY, surrogate.clone());
                res
            };
            res.headers_mut().insert(header::ETAG, etag.clone());
            stamp(res, p.header_position, source.unwrap_or(p.source))
        }
    }
}

/// The Markdown of the post an entry holds, read once per entry: from the event store for an entry folded
/// from it, else from the projection's row (on a source that has reached the entry's position).
pub async fn markdown(state: &AppState, entry: &PostEntry) -> ReadResult<Arc<str>> {
    let id = entry.detail.summary.id;
    let read = || async {
        if entry.source == ReadSource::Events {
            let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
            let post = shared::store::streams::load_post(&mut conn, id).await?.ok_or(ReadError::NotFound("post"))?;
            return Ok::<_, ReadError>(Arc::from(post.body_markdown));
        }
        let chosen = state.reads.choose(ReadRoute::Replica, PROJECTIONS, Some(entry.valid_through)).await?;
        let body = sqlx::query_scalar!("select body_markdown from read.posts where id = $1", id)
            .fetch_optional(&chosen.pool)
            .await?
            .ok_or(ReadError::NotFound("post"))?;
        Ok(Arc::from(body))
    };
    entry.markdown.get_or_try_init(read).await.cloned()
}

/// A single post folded from its events, with its comment count folded from its comments' events, for a
/// token no projection has reached yet.
async fn from_events(state: &AppState, slug: &str, token: LogPosition) -> ReadResult<SlugEntry> {
    let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
    let Some(id) = shared::store::streams::post_id_by_slug(&mut conn, slug).await? else {
        return Ok(SlugEntry::NotFound);
    };
    let Some(post) = shared::store::streams::load_post(&mut conn, id).await? else {
        return Ok(SlugEntry::NotFound);
    };
    if post.status != PostStatus::Published {
        return Ok(SlugEntry::NotFound);
    }
    if post.slug != slug {
        return Ok(SlugEntry::Moved(post.slug));
    }
    let author =
        shared::store::streams::load_author(&mut conn, post.author_id).await?.ok_or(ReadError::NotFound("author"))?;
    let comments = crate::routes::comments::count_from_events(&mut conn, id, Until::Head).await?;
    let detail = PostDetail::from_folded(&post, AuthorRef::from(&author), comments);
    post_entry(state, detail, token.global_position, token, ReadSource::Events).await
}

fn moved_to(slug: &str) -> Response {
    let mut res = StatusCode::MOVED_PERMANENTLY.into_response();
    res.headers_mut().insert(header::LOCATION, header_value(&format!("/v1/posts/{slug}")));
    res
}

const CACHE_CONTROL: &str = "public, max-age=60, stale-while-revalidate=300";
const SURROGATE_KEY: header::HeaderName = header::HeaderName::from_static("surrogate-key");

fn last_modified(post: &PostDetail) -> HeaderValue {
    header_value(&post.summary.updated_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

/// `Surrogate-Key`: what the response depends on, so a CDN can purge by key.
fn surrogate_keys(post: &PostDetail) -> HeaderValue {
    let mut keys = format!("post-{} author-{} posts-list", post.summary.id, post.summary.author.id);
    for t in &post.summary.tags {
        keys.push_str(" tag-");
        keys.push_str(&t.slug);
    }
    header_value(&keys)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
