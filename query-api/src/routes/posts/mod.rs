//! Public post reads: the keyset-paginated list here, a single post by slug in [`slug`].

pub mod slug;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::read::model::{AuthorRef, PostSummary, TagRef};
use shared::store::db::{ReadRoute, ReadSource};
use shared::store::position::LogPosition;
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use crate::consistency::{min_position, stamp};
use crate::error::ReadResult;
use crate::page;
use crate::AppState;
use shared::http::etag;

/// The projections a read of posts depends on: `posts`, and `comments` for the comment counts every post
/// and summary carries (a read with a token waits for both, so an approval's position shows its count).
/// Every read that answers posts or summaries names these.
pub const PROJECTIONS: &[&str] = &["posts", "comments"];

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/posts", get(list)).route("/v1/posts/{slug}", get(slug::by_slug))
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
        shared::post_summary!(r)
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
    responses((status = 200, body = PostPage), (status = 400, body = shared::http::problem::ProblemDoc), (status = 422, body = shared::http::problem::ProblemDoc)))]
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
    let query = ListQuery::new(limit, cursor, tag.cloned(), author.cloned());
    let (page, source) = list_page(&state, &query, token).await?;
    Ok(list_response(&headers, &page, source))
}

/// A page of published posts: from the process cache (keyed by the list generation) unless a token asks
/// for read-your-writes; the source to report with it. The JSON route and the site's pages read through it.
pub async fn list_page(
    state: &AppState,
    query: &ListQuery,
    token: Option<LogPosition>,
) -> ReadResult<(Arc<ListPage>, ReadSource)> {
    if token.is_some() {
        let page = load_list(state, query, token).await?;
        let source = page.source;
        return Ok((Arc::new(page), source));
    }
    let generation = state.cache.list_generation();
    let ListQuery { limit, cursor, tag, author } = query;
    let key = format!("{generation}|{limit}|{cursor:?}|{tag:?}|{author:?}");
    if let Some(hit) = state.cache.lists.get(&key).await {
        return Ok((hit, ReadSource::Cache));
    }
    let page = state.cache.lists.try_get_with(key, async { load_list(state, query, None).await.map(Arc::new) }).await?;
    let source = page.source;
    Ok((page, source))
}

/// A list page, as cached and served: the posts, and their JSON with its ETag.
pub struct ListPage {
    body: Bytes,
    etag: HeaderValue,
    pub posts: Vec<PostSummary>,
    pub next_cursor: Option<String>,
    /// The projection position the page was read at.
    pub position: i64,
    source: ReadSource,
    /// The site's page of this list, rendered on first use (dropped with the entry).
    pub page: tokio::sync::OnceCell<crate::cache::RenderedPage>,
}

/// Which published posts a list page holds.
pub struct ListQuery {
    limit: i64,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    tag: Option<String>,
    author: Option<String>,
}

impl ListQuery {
    /// `limit` posts after `cursor`, only those tagged `tag` or by the author `author` (slugs) when given.
    pub fn new(limit: i64, cursor: Option<(DateTime<Utc>, Uuid)>, tag: Option<String>, author: Option<String>) -> Self {
        ListQuery { limit, cursor, tag, author }
    }

    pub fn is_first(&self) -> bool {
        self.cursor.is_none()
    }
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
    let page = PostPage { posts, next_cursor };
    let body = Bytes::from(serde_json::to_vec(&page).unwrap_or_default());
    let PostPage { posts, next_cursor } = page;
    Ok(ListPage {
        etag: etag::of(&body),
        body,
        posts,
        next_cursor,
        position: chosen.position.global_position,
        source: chosen.source,
        page: Default::default(),
    })
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
