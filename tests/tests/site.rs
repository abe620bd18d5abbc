//! The public site over HTTP against the running services: every page's status, caching headers, `<head>`
//! (title, description, canonical, Open Graph) and JSON-LD; hostile titles and bodies rendered as text; the
//! comment form's round trip; 301s and 404 pages; robots.txt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::DateTime;
use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

/// The text between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    Some(&html[from..from + html[from..].find(end)?])
}

/// Decodes the entities an HTML escaper writes: named (`&lt;`) and numeric (`&#60;`).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else { break };
        let entity = &tail[1..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "amp" => Some('&'),
            "apos" => Some('\''),
            e => e.strip_prefix('#').and_then(|n| n.parse::<u32>().ok()).and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `<meta {attr}="{name}" content="…">`, unescaped.
fn meta(html: &str, attr: &str, name: &str) -> Option<String> {
    between(html, &format!("<meta {attr}=\"{name}\" content=\""), "\"").map(unescape)
}

fn metas(html: &str, attr: &str, name: &str) -> Vec<String> {
    let start = format!("<meta {attr}=\"{name}\" content=\"");
    html.match_indices(&start).filter_map(|(i, _)| between(&html[i..], &start, "\"")).map(unescape).collect()
}

fn json_ld(html: &str) -> Value {
    let raw = between(html, "<script type=\"application/ld+json\">", "</script>").expect("a JSON-LD block");
    serde_json::from_str(raw).expect("JSON-LD parses")
}

fn title(html: &str) -> String {
    unescape(between(html, "<title>", "</title>").expect("a title"))
}

async fn page(stack: &Stack, path: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let res = stack.http.get(format!("{}{path}", stack.query)).send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.text().await.unwrap())
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

const PUBLIC: &str = "http://127.0.0.1:8080";

#[tokio::test]
async fn a_post_page_carries_its_meta_open_graph_and_blog_posting_and_answers_304_to_its_etag() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let body = json!({"title": "Event sourcing, gently", "body_markdown": "## Why\n\nBecause **logs** remember.",
        "summary": "A gentle start.", "tags": ["Rust", "Event Sourcing"], "cover_image_url": "https://img.example.com/c.jpg"});
    let (_, slug, position) = stack.publish_post(&token, body).await;
    stack.db.wait_projected().await;
    let _ = stack.query_at(&format!("/posts/{slug}"), position).await;
    let (status, headers, html) = page(&stack, &format!("/posts/{slug}")).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    for h in ["etag", "last-modified", "surrogate-key", "pressroom-position"] {
        assert!(headers.contains_key(h), "{h} missing");
    }
    assert!(headers["cache-control"].to_str().unwrap().contains("stale-while-revalidate"));
    assert!(html.starts_with("<!doctype html>") && html.contains("<html lang=\"en-US\">"));
    assert_eq!(title(&html), "Event sourcing, gently · Pressroom");
    assert_eq!(meta(&html, "name", "description").as_deref(), Some("A gentle start."));
    let canonical = format!("{PUBLIC}/posts/{slug}");
    assert_eq!(between(&html, "<link rel=\"canonical\" href=\"", "\""), Some(canonical.as_str()));
    assert_eq!(meta(&html, "property", "og:type").as_deref(), Some("article"));
    assert_eq!(meta(&html, "property", "og:url").as_deref(), Some(canonical.as_str()));
    assert_eq!(meta(&html, "property", "og:image").as_deref(), Some("https://img.example.com/c.jpg"));
    assert_eq!(meta(&html, "name", "twitter:card").as_deref(), Some("summary_large_image"));
    assert_eq!(metas(&html, "property", "article:tag"), ["Rust", "Event Sourcing"]);
    let published = meta(&html, "property", "article:published_time").unwrap();
    assert!(DateTime::parse_from_rfc3339(&published).is_ok(), "{published}");
    assert!(html.contains("type=\"application/rss+xml\"") && html.contains("<h2>Why</h2>"));
    let ld = json_ld(&html);
    let graph = ld["@graph"].as_array().unwrap();
    let posting = graph.iter().find(|n| n["@type"] == "BlogPosting").unwrap();
    assert_eq!(posting["headline"], "Event sourcing, gently");
    assert_eq!(posting["mainEntityOfPage"]["@id"], canonical);
    assert_eq!(posting["image"][0], "https://img.example.com/c.jpg");
    assert_eq!(posting["keywords"], "Rust, Event Sourcing");
    assert!(posting["wordCount"].as_u64().unwrap() >= 4);
    for date in ["datePublished", "dateModified"] {
        assert!(DateTime::parse_from_rfc3339(posting[date].as_str().unwrap()).is_ok(), "{date}");
    }
    assert!(posting["author"]["url"].as_str().unwrap().starts_with(&format!("{PUBLIC}/authors/")));
    assert_eq!(posting["publisher"]["@type"], "Organization");
    let crumbs = graph.iter().find(|n| n["@type"] == "BreadcrumbList").unwrap();
    assert_eq!(crumbs["itemListElement"].as_array().unwrap().len(), 3);
    let etag = headers["etag"].to_str().unwrap();
    let res =
        stack.http.get(format!("{}/posts/{slug}", stack.query)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(res.status(), 304);
}

#[tokio::test]
async fn a_hostile_title_and_body_render_as_text_in_the_page_and_in_the_json_ld() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let hostile = "</script><script>alert(1)</script>";
    let body = json!({"title": hostile, "slug": "hostile", "summary": "\"><img src=x onerror=alert(2)>",
        "body_markdown": "<script>alert(3)</script><img src=x onerror=alert(4)> [x](javascript:alert(5))"});
    let (_, slug, position) = stack.publish_post(&token, body).await;
    let res = stack.query_at(&format!("/posts/{slug}"), position).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    // The hostile text may appear escaped (`&lt;img … onerror=…`), never as markup.
    for bad in ["<script>alert", "<img src=x", "href=\"javascript", " onerror=alert(4)"] {
        assert!(!html.contains(bad), "{bad} reached the page");
    }
    assert_eq!(html.matches("</script>").count(), 1, "only the JSON-LD block closes a script");
    assert_eq!(json_ld(&html)["@graph"][0]["headline"], hostile);
    assert_eq!(title(&html), format!("{hostile} · Pressroom"));
    let (_, _, home) = page(&stack, "/").await;
    assert!(!home.contains("<script>alert") && !home.contains("<img src=x"), "hostile markup on the home page");
}

#[tokio::test]
async fn home_tag_author_and_search_pages_list_posts_with_their_structured_data_and_pagination() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let mut last = 0;
    for n in 1..=11 {
        let body = json!({"title": format!("Replica notes {n}"), "body_markdown": format!("On replicas, part {n}."), "tags": ["Databases"]});
        last = stack.publish_post(&token, body).await.2;
    }
    stack.db.wait_projected().await;
    let res = stack.query_at("/", last).await;
    assert_eq!(res.status(), 200);
    let home = res.text().await.unwrap();
    assert_eq!(title(&home), "Pressroom");
    assert_eq!(meta(&home, "property", "og:type").as_deref(), Some("website"));
    let ld = json_ld(&home);
    assert_eq!(ld["@type"], "WebSite");
    assert_eq!(ld["potentialAction"]["@type"], "SearchAction");
    assert_eq!(home.matches("<li>\n<h2><a href=\"/posts/").count(), 10, "ten posts a page");
    let next = between(&home, "<a rel=\"next\" href=\"", "\"").expect("an older-posts link").to_string();
    let (status, _, older) = page(&stack, &unescape(&next)).await;
    assert_eq!(status, 200);
    assert!(older.contains("Replica notes 1<"), "the oldest post is on page two");

    let (status, _, tag) = page(&stack, "/tags/databases").await;
    assert_eq!(status, 200, "{tag}");
    assert_eq!(json_ld(&tag)["@type"], "CollectionPage");
    assert!(tag.contains("<h1>#Databases</h1>") && tag.contains("11 posts tagged Databases"));
    let author_slug = between(&home, "By <a href=\"/authors/", "\"").unwrap().to_string();
    let (status, _, author) = page(&stack, &format!("/authors/{author_slug}")).await;
    assert_eq!(status, 200, "{author}");
    assert_eq!(json_ld(&author)["@type"], "ProfilePage");

    let (status, headers, search) = page(&stack, "/search?q=replicas").await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("etag"));
    assert!(search.contains("<mark>"), "{search}");
    assert_eq!(meta(&search, "name", "robots").as_deref(), Some("noindex"));
    let (status, _, empty) = page(&stack, "/search").await;
    assert_eq!(status, 200);
    assert!(empty.contains("<h1>Search</h1>"));
}

#[tokio::test]
async fn drafts_and_unknown_pages_are_real_404_pages_and_an_old_slug_moves_permanently() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let draft = stack.draft(&token, "Only a draft").await;
    let (id, slug, _) = stack.published_post(&token, "First name").await;
    let res = stack.patch_post(&token, &id, Some("\"2\""), json!({"slug": "second-name"})).await;
    assert_eq!(res.status(), 200);
    let position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    stack.db.wait_projected().await;
    let _ = stack.query_at("/posts/second-name", position).await;
    let res = no_redirects().get(format!("{}/posts/{slug}", stack.query)).send().await.unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(res.headers()["location"], "/posts/second-name");
    for path in ["/posts/only-a-draft", "/tags/nothing", "/authors/nobody", "/no/such/page"] {
        let res = stack.http.get(format!("{}{path}", stack.query)).header("accept", "text/html").send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8", "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("<a href=\"/\">Back to the latest posts</a>"), "{path}");
        assert_eq!(meta(&html, "name", "robots").as_deref(), Some("noindex"));
    }
    assert!(!draft.is_empty());
}

#[tokio::test]
async fn the_comment_form_posts_without_javascript_and_comes_back_to_the_post_held_for_moderation() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (id, slug, position) = stack.published_post(&token, "Comment on me").await;
    let html = stack.query_at(&format!("/posts/{slug}"), position).await.text().await.unwrap();
    let action = between(&html, "<form class=\"comment-form\" method=\"post\" action=\"", "\"").unwrap();
    assert_eq!(action, format!("/v1/posts/{id}/comments"), "one origin by default");
    let form = [("author_name", "Reader"), ("author_email", ""), ("body", "Nice <b>post</b>")];
    let res = no_redirects().post(format!("{}{action}", stack.command)).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("{PUBLIC}/posts/{slug}?comment=held#comments"));
    let (_, _, held) = page(&stack, &format!("/posts/{slug}?comment=held")).await;
    assert!(held.contains("held for moderation"));
    let empty = [("author_name", ""), ("body", "")];
    let res = no_redirects().post(format!("{}{action}", stack.command)).form(&empty).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(res.headers()["location"].to_str().unwrap().contains("?comment=invalid"));

    let comment: String =
        sqlx::query_scalar("select stream_id::text from events where event_type = 'CommentSubmitted'")
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
    let (_, before, _) = page(&stack, &format!("/posts/{slug}")).await;
    let res = stack.command(Method::POST, &format!("/v1/comments/{comment}/approve"), Some(&editor), None, &[]).await;
    assert_eq!(res.status(), 200);
    let approved: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let res = stack.query_at(&format!("/posts/{slug}"), approved).await;
    let after_etag = res.headers()["etag"].clone();
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Nice &#60;b&#62;post&#60;/b&#62;") || html.contains("Nice &lt;b&gt;post&lt;/b&gt;"),
        "the approved comment shows, as text: {html}"
    );
    assert!(html.contains("Comments (1)"));
    assert_ne!(before.get("etag"), Some(&after_etag), "the page's ETag follows the comment");
    // Without a token too: the cached page goes with the post's cache entry when the approval lands.
    let mut plain = String::new();
    for _ in 0..100 {
        plain = page(&stack, &format!("/posts/{slug}")).await.2;
        if plain.contains("Comments (1)") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(plain.contains("Comments (1)") && plain.contains("Nice"), "the public page shows the approved comment");
}

#[tokio::test]
async fn robots_txt_points_at_the_sitemap_and_turns_ai_crawlers_away_when_told_to() {
    let stack = Stack::start_with(TestDb::fresh().await, &[("PRESSROOM_ROBOTS_AI", "deny")]).await;
    let (status, headers, robots) = page(&stack, "/robots.txt").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(robots.contains(&format!("Sitemap: {PUBLIC}/sitemap.xml")));
    assert!(robots.contains("User-agent: GPTBot\nDisallow: /"));
    assert!(robots.contains("Disallow: /v1/author/"));
    let (_, _, home) = page(&stack, "/").await;
    let css = between(&home, "<link rel=\"stylesheet\" href=\"", "\"").unwrap();
    assert!(css.starts_with("/assets/site-") && css.ends_with(".css"));
    let res = stack.http.get(format!("{}{css}", stack.query)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(page(&stack, "/assets/site-0000000000.css").await.0, 404);
}
