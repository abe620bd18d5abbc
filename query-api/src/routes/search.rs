//! Full-text search over published posts: websearch syntax ("exact phrase", -word, or), title weighted
//! over summary over body, ranked, with a highlighted snippet, keyset-paginated by (rank, id).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::values::FieldError;
use shared::read::model::{AuthorRef, PostSummary, TagRef};
use shared::store::db::ReadRoute;
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use crate::consistency::projected_read;
use crate::error::{ReadError, ReadResult};
use crate::page;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/search", get(search))
}

#[derive(Serialize)]
pub struct SearchResult {
    #[serde(flatten)]
    pub post: PostSummary,
    rank: f64,
    /// An excerpt as HTML-escaped text whose only markup is `<mark>`…`</mark>` around the matches
    /// (the database marks them with U+E000/U+E001, stripped from the text first).
    pub snippet: String,
}

#[derive(Serialize)]
pub struct SearchPage {
    pub results: Vec<SearchResult>,
    pub next_cursor: Option<String>,
}

struct Row {
    id: Uuid,
    slug: String,
    title: String,
    summary: Option<String>,
    author: SqlJson<AuthorRef>,
    tags: SqlJson<Vec<TagRef>>,
    published_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    reading_time_minutes: i32,
    comment_count: i32,
    rank: f64,
    snippet: String,
}

/// `<rank bits in hex>.<id>`: exact, so the next page starts precisely after the last result.
fn encode_cursor(rank: f64, id: Uuid) -> String {
    format!("{:x}.{}", rank.to_bits(), id.simple())
}

pub(crate) fn decode_cursor(raw: &str) -> Option<(f64, Uuid)> {
    let (bits, id) = raw.split_once('.')?;
    Some((f64::from_bits(u64::from_str_radix(bits, 16).ok()?), Uuid::try_parse(id).ok()?))
}

/// Full-text search: `{results: [...], next_cursor}`.
#[utoipa::path(get, path = "/v1/search", tag = "search",
    params(("q" = String, Query, min_length = 1, max_length = 200, description = "websearch syntax, 1 to 200 characters"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "ranked results with snippets"), (status = 422, body = shared::http::problem::ProblemDoc)))]
pub async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> ReadResult<Response> {
    let q = query(&params)?;
    let limit = page::limit(&params)?;
    let cursor = page::cursor(&params, decode_cursor)?;
    projected_read(&state, &headers, "search", ReadRoute::Replica, super::posts::PROJECTIONS, |pool| async move {
        run(&pool, &q, limit, cursor).await
    })
    .await
}

/// The `q` parameter, trimmed: 1 to 200 characters, else a 422.
pub fn query(params: &HashMap<String, String>) -> ReadResult<String> {
    checked_query(params.get("q").map_or("", String::as_str))
}

/// A search query, trimmed: 1 to 200 characters, else a 422 naming `q`.
pub fn checked_query(raw: &str) -> ReadResult<String> {
    let q = raw.trim().to_string();
    if q.is_empty() || q.chars().count() > 200 {
        return Err(ReadError::Validation(vec![FieldError::new("q", "must be 1 to 200 characters")]));
    }
    Ok(q)
}

/// One page of results for `q` (websearch syntax), best first, after `cursor`.
pub async fn run(pool: &sqlx::PgPool, q: &str, limit: i64, cursor: Option<(f64, Uuid)>) -> ReadResult<SearchPage> {
    let rows = sqlx::query_as!(
            Row,
            r#"select id, slug, title, summary, author as "author: SqlJson<AuthorRef>", tags as "tags: SqlJson<Vec<TagRef>>",
                      published_at, updated_at, reading_time_minutes, comment_count,
                      ts_rank(search, query)::float8 as "rank!",
                      ts_headline('english',
                                  translate(title || '. ' || coalesce(summary, '') || ' ' || body_markdown,
                                            chr(57344) || chr(57345), ''),
                                  query,
                                  'StartSel=' || chr(57344) || ', StopSel=' || chr(57345)
                                    || ', MaxWords=30, MinWords=10, MaxFragments=1') as "snippet!"
               from read.posts, websearch_to_tsquery('english', $1) as query
               where status = 'published' and search @@ query
                 and ($2::float8 is null or (ts_rank(search, query)::float8, id) < ($2, $3))
               order by 11 desc, id desc
               limit $4"#,
        q,
        cursor.map(|c| c.0),
        cursor.map(|c| c.1),
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let mut results: Vec<SearchResult> = rows
        .into_iter()
        .map(|r| SearchResult {
            post: shared::post_summary!(r),
            rank: r.rank,
            snippet: shared::read::render::highlighted_excerpt(&r.snippet),
        })
        .collect();
    let next_cursor = page::next_cursor(&mut results, limit, |r| Some(encode_cursor(r.rank, r.post.id)));
    Ok(SearchPage { results, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_cursors_keep_the_exact_rank() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(0.0607927, id)), Some((0.0607927, id)));
        assert_eq!(decode_cursor("zz.nope"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_rank_cursor_round_trips_exactly(rank in proptest::num::f64::POSITIVE | proptest::num::f64::ZERO, garbage in "\\PC{0,80}") {
            let id = Uuid::now_v7();
            let decoded = decode_cursor(&encode_cursor(rank, id));
            proptest::prop_assert_eq!(decoded.map(|(r, i)| (r.to_bits(), i)), Some((rank.to_bits(), id)));
            let _ = decode_cursor(&garbage);
        }
    }
}
