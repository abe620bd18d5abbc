//! `/feed.xml` (RSS 2.0, the 20 newest posts) and `/sitemap.xml` (published posts), with links under
//! `PRESSROOM_PUBLIC_URL`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use shared::store::db::ReadRoute;
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use crate::consistency::{min_position, stamp};
use crate::error::ReadResult;
use crate::AppState;

const FEED_ITEMS: i64 = 20;
/// The sitemap protocol's limit for one file.
const SITEMAP_URLS: i64 = 50_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/feed.xml", get(feed)).route("/sitemap.xml", get(sitemap))
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn rfc822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

struct FeedRow {
    id: Uuid,
    slug: String,
    title: String,
    summary: Option<String>,
    tags: SqlJson<Vec<shared::read::model::TagRef>>,
    author_name: String,
    published_at: Option<DateTime<Utc>>,
}

fn xml(
    headers: &HeaderMap,
    body: String,
    position: i64,
    source: shared::store::db::ReadSource,
    content_type: &'static str,
) -> Response {
    let mut res = shared::http::etag::respond(headers, content_type, body);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    stamp(res, position, source)
}

/// RSS 2.0 feed of the newest posts.
#[utoipa::path(get, path = "/feed.xml", tag = "feeds", responses((status = 200, content_type = "application/rss+xml", description = "RSS 2.0")))]
pub async fn feed(State(state): State<AppState>, headers: HeaderMap) -> ReadResult<Response> {
    let token = min_position(&state, &headers).await?;
    let chosen = state.reads.choose(ReadRoute::Replica, &["posts"], token).await?;
    let rows = sqlx::query_as!(
        FeedRow,
        r#"select id, slug, title, summary, tags as "tags: SqlJson<Vec<shared::read::model::TagRef>>",
                  author->>'name' as "author_name!", published_at
           from read.posts where status = 'published' order by published_at desc, id desc limit $1"#,
        FEED_ITEMS
    )
    .fetch_all(&chosen.pool)
    .await?;
    let base = &state.site.url;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n<channel>\n");
    out.push_str(&format!(
        "<title>{}</title>\n<link>{}/</link>\n<description>{}</description>\n<language>{}</language>\n",
        xml_escape(&state.site.title),
        xml_escape(base),
        xml_escape(&state.site.description),
        xml_escape(&state.site.lang)
    ));
    if let Some(latest) = rows.first().and_then(|r| r.published_at) {
        out.push_str(&format!("<lastBuildDate>{}</lastBuildDate>\n", rfc822(latest)));
    }
    for r in &rows {
        let link = format!("{base}/posts/{}", r.slug);
        out.push_str("<item>\n");
        out.push_str(&format!("<title>{}</title>\n<link>{}</link>\n", xml_escape(&r.title), xml_escape(&link)));
        out.push_str(&format!("<guid isPermaLink=\"false\">{}</guid>\n", r.id));
        if let Some(at) = r.published_at {
            out.push_str(&format!("<pubDate>{}</pubDate>\n", rfc822(at)));
        }
        out.push_str(&format!("<description>{}</description>\n", xml_escape(r.summary.as_deref().unwrap_or(&r.title))));
        out.push_str(&format!("<dc:creator>{}</dc:creator>\n", xml_escape(&r.author_name)));
        for t in &r.tags.0 {
            out.push_str(&format!("<category>{}</category>\n", xml_escape(&t.name)));
        }
        out.push_str("</item>\n");
    }
    out.push_str("</channel>\n</rss>\n");
    Ok(xml(&headers, out, chosen.position.global_position, chosen.source, "application/rss+xml; charset=utf-8"))
}

/// Sitemap of published posts.
#[utoipa::path(get, path = "/sitemap.xml", tag = "feeds", responses((status = 200, content_type = "application/xml", description = "sitemap 0.9")))]
pub async fn sitemap(State(state): State<AppState>, headers: HeaderMap) -> ReadResult<Response> {
    let token = min_position(&state, &headers).await?;
    let chosen = state.reads.choose(ReadRoute::Replica, &["posts"], token).await?;
    let rows = sqlx::query!(
        "select slug, updated_at from read.posts where status = 'published' order by published_at desc, id desc limit $1",
        SITEMAP_URLS
    )
    .fetch_all(&chosen.pool)
    .await?;
    let base = &state.site.url;
    let mut out = String::with_capacity(rows.len() * 120 + 200);
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    for r in rows {
        out.push_str(&format!(
            "<url><loc>{}</loc><lastmod>{}</lastmod></url>\n",
            xml_escape(&format!("{base}/posts/{}", r.slug)),
            r.updated_at.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    out.push_str("</urlset>\n");
    Ok(xml(&headers, out, chosen.position.global_position, chosen.source, "application/xml; charset=utf-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_special_characters_and_control_characters_are_escaped_or_dropped() {
        assert_eq!(xml_escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
