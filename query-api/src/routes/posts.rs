//! Public post reads: the keyset-paginated list and a single post by slug (with ETag/304, 301 from old
//! slugs, and the event-store fallback for a token the projection has not reached).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::post::PostStatus;
use shared::read::model::{AuthorRef, PostDetail, PostSummary, TagRef};
use shared::store::db::{ReadRoute, ReadSource};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use std::sync::Arc;

use bytes::Bytes;
use shared::store::position::{LogPosition, MIN_POSITION_HEADER};
use sqlx::PgPool;

use crate::cache::{PostEntry, SlugEntry};
use crate::consistency::{min_position, stamp};
use crate::error::{ReadError, ReadResult};
use crate::page;
use crate::{etag, AppState};

const PROJECTIONS: &[&str] = &["posts"];

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/posts", get(list)).route("/v1/posts/{slug}", get(by_slug))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PostPage {
    posts: Vec<PostSummary>,
    next_cursor: Option<String>,
}

/// The columns of a post summary, shared by every list-shaped read.
pub(crate) struct SummaryRow {
    pub(crate) id: Uuid,
    pub(crate) slug: String,
    pub(crate) title: String,
    pub(crate) summary: Option<String>,
    pub(crate) author: SqlJson<AuthorRef>,
    pub(crate) tags: SqlJson<Vec<TagRef>>,
    pub(crate) published_at: Option<DateTime<Utc>>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) reading_time_minutes: i32,
    pub(crate) comment_count: i32,
}

impl From<SummaryRow> for PostSummary {
    fn from(r: SummaryRow) -> Self {
        PostSummary {
            id: r.id,
            slug: r.slug,
            title: r.title,
            summary: r.summary,
            author: r.author.0,
            tags: r.tags.0,
            published_at: r.published_at,
            updated_at: r.updated_at,
            reading_time_minutes: r.reading_time_minutes,
            comment_count: r.comment_count,
        }
    }
}

/// A keyset cursor: the (published_at, id) of the last post on the previous page.
pub(crate) fn encode_cursor(published_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}.{}", published_at.timestamp_micros(), id.simple())
}

pub(crate) fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = raw.split_once('.')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, Uuid::try_parse(id).ok()?))
}

/// Published posts, newest first, keyset-paginated.
#[utoipa::path(get, path = "/v1/posts", tag = "posts",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"), ("cursor" = Option<String>, Query),
        ("tag" = Option<String>, Query, description = "tag slug"), ("author" = Option<String>, Query, description = "author slug"),
        ("Pressroom-Min-Position" = Option<i64>, Header, minimum = 1, description = "read your writes: a position a command returned")),
    responses((status = 200, body = PostPage), (status = 400, body = crate::openapi::ProblemDoc), (status = 422, body = crate::openapi::ProblemDoc)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let limit = page::limit(&params)?;
    let cursor = page::cursor(&params, decode_cursor)?;
    let tag = params.get("tag").filter(|t| !t.is_empty());
    let author = params.get("author").filter(|a| !a.is_empty());
    let token = min_position(&state, &headers).await?;
    let query = ListQuery { limit, cursor, tag: tag.cloned(), author: author.cloned() };
    if token.is_some() {
        let page = load_list(&state, &query, token).await?;
        return Ok(list_response(&headers, &page, page.source));
    }
    let generation = state.cache.list_generation();
    let key = format!("{generation}|{limit}|{:?}|{:?}|{:?}", query.cursor, query.tag, query.author);
    if let Some(hit) = state.cache.lists.get(&key).await {
        return Ok(list_response(&headers, &hit, ReadSource::Cache));
    }
    let page =
        state.cache.lists.try_get_with(key, async { load_list(&state, &query, None).await.map(Arc::new) }).await?;
    Ok(list_response(&headers, &page, page.source))
}

/// A serialized list page, as cached and served.
pub struct ListPage {
    body: Bytes,
    etag: HeaderValue,
    position: i64,
    source: ReadSource,
}

struct ListQuery {
    limit: i64,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    tag: Option<String>,
    author: Option<String>,
}

fn list_response(headers: &HeaderMap, page: &ListPage, source: ReadSource) -> Response {
    let res = etag::conditional(headers, "application/json", page.body.clone(), page.etag.clone());
    stamp(res, page.position, source)
}

/// One page from the database the route (and token) selects, serialized.
async fn load_list(state: &AppState, q: &ListQuery, token: Option<LogPosition>) -> ReadResult<ListPage> {
    let chosen = state.reads.choose(ReadRoute::Replica, PROJECTIONS, token).await?;
    let tag_filter = q.tag.as_ref().map(|t| serde_json::json!([{ "slug": t }]));
    let rows = sqlx::query_as!(
        SummaryRow,
        r#"select id, slug, title, summary, author as "author: SqlJson<AuthorRef>", tags as "tags: SqlJson<Vec<TagRef>>",
                  published_at, updated_at, reading_time_minutes, comment_count
           from read.posts
           where status = 'published'
             and ($1::timestamptz is null or (published_at, id) < ($1, $2))
             and ($3::jsonb is null or tags @> $3)
             and ($4::text is null or author_id = (select a.id from read.post_authors a where a.slug = $4))
           order by published_at desc, id desc
           limit $5"#,
        q.cursor.map(|c| c.0),
        q.cursor.map(|c| c.1),
        tag_filter,
        q.author.as_deref(),
        q.limit + 1,
    )
    .fetch_all(&chosen.pool);
    let rows = shared::service::metrics::timed_query("posts.list", chosen.source.as_str(), rows).await?;
    let mut posts: Vec<PostSummary> = rows.into_iter().map(PostSummary::from).collect();
    let next_cursor = page::next_cursor(&mut posts, q.limit, |p| p.published_at.map(|at| encode_cursor(at, p.id)));
    let body = Bytes::from(serde_json::to_vec(&PostPage { posts, next_cursor }).unwrap_or_default());
    Ok(ListPage { etag: etag::of(&body), body, position: chosen.position.global_position, source: chosen.source })
}

struct DetailRow {
    id: Uuid,
    slug: String,
    status: String,
    title: String,
    summary: Option<String>,
    body_html: String,
    cover_image_url: Option<String>,
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
        PostDetail {
            summary: PostSummary {
                id: self.id,
                slug: self.slug,
                title: self.title,
                summary: self.summary,
                author: self.author.0,
                tags: self.tags.0,
                published_at: self.published_at,
                updated_at: self.updated_at,
                reading_time_minutes: self.reading_time_minutes,
                comment_count: self.comment_count,
            },
            body_html: self.body_html,
            version: self.version,
            cover_image_url: self.cover_image_url,
            status: self.status,
        }
    }
}

/// Builds a cache entry from a post detail known to reflect `valid_through`.
fn post_entry(detail: PostDetail, header_position: i64, valid_through: LogPosition, source: ReadSource) -> SlugEntry {
    let body = Bytes::from(serde_json::to_vec(&detail).unwrap_or_default());
    SlugEntry::Post(PostEntry {
        headers: [etag::of(&body), last_modified(&detail), surrogate_keys(&detail)],
        body,
        header_position,
        detail: Arc::new(detail),
        valid_through,
        source,
    })
}

/// Reads a slug from one database: the post (with the projection checkpoint, in the same snapshot),
/// or the slug history for a 301, or nothing.
async fn load_from(pool: &PgPool, source: ReadSource, slug: &str) -> ReadResult<(SlugEntry, LogPosition)> {
    let row = sqlx::query_as!(
        DetailRow,
        r#"select id, slug, status, title, summary, body_html, cover_image_url, tags as "tags: SqlJson<Vec<TagRef>>",
                  author as "author: SqlJson<AuthorRef>", reading_time_minutes, comment_count, version, updated_at,
                  published_at, last_transaction_id::text::bigint as "last_transaction_id!", last_position,
                  coalesce((select transaction_id::text::bigint from read.checkpoints where name = 'posts'), 0) as "checkpoint_tx!",
                  coalesce((select global_position from read.checkpoints where name = 'posts'), 0) as "checkpoint_position!"
           from read.posts where slug = $1"#,
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
        let entry = post_entry(row.into_detail(), header, checkpoint.max(row_position), source);
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
        return Ok(Arc::new(post_entry(cached.post, cached.position, at, ReadSource::Cache)));
    }
    let (pool, source) = state.reads.route(ReadRoute::Replica);
    let loaded = match load_from(&pool, source, slug).await {
        // A client's bad input is the same on every database; only a failing replica is worth a second read.
        Err(e) if source == ReadSource::Replica && !matches!(e, ReadError::BadRequest(_)) => {
            tracing::warn!(error = %e, "replica read failed; reading the primary");
            load_from(&state.reads.primary, ReadSource::Primary, slug).await
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
        (status = 304, description = "not modified"), (status = 404, body = crate::openapi::ProblemDoc)))]
#[tracing::instrument(skip_all, fields(slug = %slug))]
pub async fn by_slug(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> ReadResult<Response> {
    // Every path but the common one (no token, a process-cache hit) is boxed: this future is moved whole
    // on every request, and the database paths inline would make it kilobytes.
    let token = match headers.contains_key(MIN_POSITION_HEADER) {
        true => Box::pin(min_position(&state, &headers)).await?,
        false => None,
    };
    let Some(token) = token else {
        let hit = state.cache.posts.get(&slug).await;
        crate::cache::count("process", hit.is_some());
        if let Some(hit) = hit {
            return Ok(viewed(&state, &hit, &headers, Some(ReadSource::Cache)));
        }
        // Single flight: concurrent misses for one slug share one load.
        let entry = Box::pin(state.cache.posts.try_get_with(slug.clone(), load_slug(&state, &slug))).await?;
        return Ok(viewed(&state, &entry, &headers, None));
    };
    Box::pin(by_slug_at(&state, &headers, &slug, token)).await
}

/// A read that must include the event at `token` (read-your-writes).
async fn by_slug_at(state: &AppState, headers: &HeaderMap, slug: &str, token: LogPosition) -> ReadResult<Response> {
    // A cache entry that is not known to include the token is skipped.
    if let Some(hit) = state.cache.posts.get(slug).await {
        if let SlugEntry::Post(p) = hit.as_ref() {
            if p.valid_through.reached(&token) {
                return Ok(viewed(state, &hit, headers, Some(ReadSource::Cache)));
            }
        }
    }
    let chosen = state.reads.choose(ReadRoute::Replica, PROJECTIONS, Some(token)).await?;
    if !chosen.reached {
        // Even the primary's projection is behind the token: fold the post from the event store.
        return from_events(state, slug, token.global_position).await;
    }
    let (entry, _) = load_from(&chosen.pool, chosen.source, slug).await?;
    Ok(viewed(state, &entry, headers, Some(chosen.source)))
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

/// Answers a single post from its events when no projection has reached the client's token.
async fn from_events(state: &AppState, slug: &str, token: i64) -> ReadResult<Response> {
    let mut conn = state.reads.primary.acquire().await?;
    let Some(id) = shared::store::streams::post_id_by_slug(&mut conn, slug).await? else {
        return Err(ReadError::NotFound("post"));
    };
    let Some(post) = shared::store::streams::load_post(&mut conn, id).await? else {
        return Err(ReadError::NotFound("post"));
    };
    if post.status != PostStatus::Published {
        return Err(ReadError::NotFound("post"));
    }
    if post.slug != slug {
        return Ok(stamp(moved_to(&post.slug), token, ReadSource::Events));
    }
    let author =
        shared::store::streams::load_author(&mut conn, post.author_id).await?.ok_or(ReadError::NotFound("author"))?;
    let detail = PostDetail::from_folded(&post, AuthorRef::from(&author), 0);
    let mut res = Json(&detail).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(stamp(res, token, ReadSource::Events))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor("1.zzz"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_cursor_round_trips_and_any_text_decodes_without_panicking(
            micros in -62_000_000_000_000_000i64..253_000_000_000_000_000i64,
            id in proptest::array::uniform16(proptest::num::u8::ANY),
            garbage in "\\PC{0,80}",
        ) {
            let at = DateTime::from_timestamp_micros(micros).unwrap_or_default();
            let id = Uuid::from_bytes(id);
            proptest::prop_assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
            let _ = decode_cursor(&garbage);
        }
    }
}
