//! End to end over HTTP against the real binaries: log in, create, edit, publish, read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;
use uuid::Uuid;

#[tokio::test]
async fn a_published_post_is_readable_at_once_with_its_position_and_via_the_replica_within_a_second() {
    // Redis unreachable: nothing is written through, so the plain read has to come from the replica,
    // and reads keep working without Redis.
    let closed = pressroom_tests::free_port();
    let redis = format!("redis://127.0.0.1:{closed}");
    let off = [("PRESSROOM_RATE_LIMIT_LOGIN", "0"), ("REDIS_URL", redis.as_str())];
    let stack = Stack::start_with(TestDb::fresh().await, &off).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, slug, position) = stack.published_post(&token, "Hello Pressroom").await;
    assert_eq!(slug, "hello-pressroom");

    let res = stack.get_post(&slug, Some(position)).await;
    assert_eq!(res.status(), 200);
    let served_at: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    assert!(res.headers().contains_key("pressroom-read-source"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["title"], "Hello Pressroom");
    assert_eq!(body["body_html"], "<p>Hello <strong>world</strong></p>\n");
    assert!(served_at >= position || served_at > 0);

    // Without a token the replica serves it as soon as replication catches up.
    let started = tokio::time::Instant::now();
    loop {
        let res = stack.get_post(&slug, None).await;
        if res.status() == 200 {
            assert_eq!(res.headers()["pressroom-read-source"], "replica");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "not on the replica within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list: Value = stack.list_posts("").await.json().await.unwrap();
    assert_eq!(list["posts"][0]["slug"], "hello-pressroom");
    assert!(list["next_cursor"].is_null());
    stack.stop().await;
}

#[tokio::test]
async fn editing_requires_if_match_and_a_stale_version_gets_412_with_the_current_version() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let created: Value =
        stack.create_post(&token, json!({"title": "Draft one", "body_markdown": "x"})).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!((created["status"].as_str(), created["version"].as_i64()), (Some("draft"), Some(1)));

    let res = stack.patch_post(&token, id, None, json!({"title": "New"})).await;
    assert_eq!(res.status(), 428);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let res = stack.patch_post(&token, id, Some("\"1\""), json!({"title": "Edited"})).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("pressroom-position"));
    assert_eq!(res.json::<Value>().await.unwrap()["version"], 2);

    let res = stack.patch_post(&token, id, Some("\"1\""), json!({"title": "Stale"})).await;
    assert_eq!(res.status(), 412);
    assert_eq!(res.json::<Value>().await.unwrap()["current_version"], 2);
    stack.stop().await;
}

#[tokio::test]
async fn bad_credentials_tokens_and_bodies_get_problem_json_not_500() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, email, _) = stack.db.author(Role::Author).await;
    let login = |body: Value| stack.http.post(format!("{}/v1/session", stack.command)).json(&body).send();
    let wrong = login(json!({"email": email, "password": "nope-nope"})).await.unwrap();
    let unknown = login(json!({"email": "ghost@test.local", "password": "nope-nope"})).await.unwrap();
    assert_eq!(
        (wrong.status(), unknown.status()),
        (reqwest::StatusCode::UNAUTHORIZED, reqwest::StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap(), "same body for both");

    let res = stack.create_post("not-a-jwt", json!({"title": "x", "body_markdown": "y"})).await;
    assert_eq!(res.status(), 401);

    let (_, token) = stack.token(Role::Author).await;
    let post = |body: &'static str, ctype: &'static str| {
        stack
            .http
            .post(format!("{}/v1/posts", stack.command))
            .bearer_auth(&token)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    assert_eq!(post("{not json", "application/json").await.unwrap().status(), 400);
    assert_eq!(post("{}", "text/plain").await.unwrap().status(), 415);
    let res = stack.create_post(&token, json!({"title": "", "body_markdown": "y", "tags": ["ok"]})).await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "title");
    let big = "x".repeat(1024 * 1024 + 10);
    let res = stack.create_post(&token, json!({"title": "Big", "body_markdown": big})).await;
    assert_eq!(res.status(), 413);
    let res = stack.publish(&token, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(res.status(), 404);

    let (_, slug, _) = stack.published_post(&token, "Taken").await;
    let res = stack.create_post(&token, json!({"title": "Other", "body_markdown": "y", "slug": slug})).await;
    assert_eq!(res.status(), 409, "an explicit slug clash is a conflict");
    let res = stack.create_post(&token, json!({"title": "Taken", "body_markdown": "y"})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["slug"], "taken-2", "a generated clash gets a suffix");
    stack.stop().await;
}

#[tokio::test]
async fn drafts_are_404_on_the_public_api_and_limits_and_cursors_are_validated() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let res = stack.create_post(&token, json!({"title": "Secret draft", "body_markdown": "y"})).await;
    let position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    assert_eq!(stack.get_post("secret-draft", Some(position)).await.status(), 404);
    assert_eq!(stack.list_posts("?limit=101").await.status(), 422);
    assert_eq!(stack.list_posts("?limit=abc").await.status(), 422);
    assert_eq!(stack.list_posts("?limit=0").await.status(), 422);
    assert_eq!(stack.list_posts("?cursor=garbage").await.status(), 400);
    stack.stop().await;
}

#[tokio::test]
async fn walking_every_page_returns_each_published_post_exactly_once() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Editor).await;
    let mut last = 0;
    for i in 0..7 {
        last = stack.published_post(&token, &format!("Post {i}")).await.2;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let res = stack
            .http
            .get(format!("{}/v1/posts?limit=3&cursor={cursor}", stack.query))
            .header("pressroom-min-position", last)
            .send()
            .await
            .unwrap();
        let page: Value = res.json().await.unwrap();
        for p in page["posts"].as_array().unwrap() {
            seen.push(p["slug"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("post-{i}")).collect();
    assert_eq!(seen, expected);
    stack.stop().await;
}

#[tokio::test]
async fn with_redis_a_published_post_is_served_from_the_cache_and_an_edit_shows_after_invalidation() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (id, slug, position) = stack.published_post(&token, "Cached post").await;
    assert_eq!(stack.get_post(&slug, Some(position)).await.status(), 200);
    let mut sources = Vec::new();
    for _ in 0..3 {
        let res = stack.get_post(&slug, None).await;
        assert_eq!(res.status(), 200);
        sources.push(res.headers()["pressroom-read-source"].to_str().unwrap().to_string());
    }
    assert_eq!(sources.last().map(String::as_str), Some("cache"), "{sources:?}");
    let etag = stack.get_post(&slug, None).await.headers()["etag"].to_str().unwrap().to_string();
    let not_modified =
        stack.http.get(format!("{}/v1/posts/{slug}", stack.query)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(not_modified.status(), 304);

    let res = stack.patch_post(&token, &id, Some("\"2\""), json!({"title": "Cached post, edited"})).await;
    assert_eq!(res.status(), 200);
    let edit_position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    // With the edit's token, the stale cache entry is skipped.
    let body: Value = stack.get_post(&slug, Some(edit_position)).await.json().await.unwrap();
    assert_eq!(body["title"], "Cached post, edited");
    // Without it, the projector's invalidation reaches the cache quickly.
    let started = tokio::time::Instant::now();
    loop {
        let body: Value = stack.get_post(&slug, None).await.json().await.unwrap();
        if body["title"] == "Cached post, edited" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "stale after 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn walking_pages_while_new_posts_are_published_returns_each_post_once() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Editor).await;
    let mut last = 0;
    for i in 0..10 {
        last = stack.published_post(&token, &format!("Walked {i}")).await.2;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = String::new();
    let mut fresh = 0;
    loop {
        let res = stack
            .http
            .get(format!("{}/v1/posts?limit=3&cursor={cursor}", stack.query))
            .header("pressroom-min-position", last)
            .send()
            .await
            .unwrap();
        let page: Value = res.json().await.unwrap();
        seen.extend(page["posts"].as_array().unwrap().iter().map(|p| p["slug"].as_str().unwrap().to_string()));
        // Publishing during the walk puts new posts ahead of the cursor; they must not shift what follows.
        fresh += 1;
        last = stack.published_post(&token, &format!("Fresh {fresh}")).await.2;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..10).rev().map(|i| format!("walked-{i}")).collect();
    assert_eq!(seen, expected, "each post exactly once, in order");
    stack.stop().await;
}

#[tokio::test]
async fn responses_are_gzip_compressed_when_the_client_accepts_it() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let mut last = 0;
    for i in 0..5 {
        last = stack.published_post(&token, &format!("Compressible {i}")).await.2;
    }
    let res = stack
        .http
        .get(format!("{}/v1/posts", stack.query))
        .header("accept-encoding", "gzip")
        .header("pressroom-min-position", last)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert!(res.headers().contains_key("pressroom-position"));
    stack.stop().await;
}

#[tokio::test]
async fn both_apis_serve_their_openapi_document_and_docs_page() {
    let stack = Stack::start(TestDb::fresh().await).await;
    for (base, path) in [(&stack.command, "/v1/posts/{id}/publish"), (&stack.query, "/v1/search")] {
        let spec: Value = stack.http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
        assert!(spec["openapi"].as_str().unwrap().starts_with("3."), "{spec}");
        assert!(spec["paths"].get(path).is_some(), "{path} missing from {base}");
        let docs = stack.http.get(format!("{base}/docs")).send().await.unwrap();
        assert_eq!(docs.status(), 200);
        let page = docs.text().await.unwrap();
        assert!(page.contains("/openapi.json"));
        // Everything the page loads comes from the service itself: it works offline and under a strict CSP.
        assert!(!page.contains("https://") && !page.contains("http://"), "{page}");
        let script = page.split("<script src=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
        let js = stack.http.get(format!("{base}{script}")).send().await.unwrap();
        assert_eq!(js.status(), 200, "{script}");
        assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        assert!(js.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert!(js.bytes().await.unwrap().len() > 500_000, "the whole Redoc bundle");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_cached_list_page_gives_way_to_the_next_list_generation_when_a_post_is_published() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let tag = format!("gen{}", Uuid::now_v7().simple());
    let body = |title: &str| json!({"title": title, "body_markdown": "x", "tags": [tag.clone()]});
    let publish = |title: &'static str| {
        let body = body(title);
        let (stack, token) = (&stack, &token);
        async move {
            let created: Value = stack.create_post(token, body).await.json().await.unwrap();
            let res = stack.publish(token, created["id"].as_str().unwrap()).await;
            assert_eq!(res.status(), 200);
            res.headers()["pressroom-position"].to_str().unwrap().parse::<i64>().unwrap()
        }
    };
    let first = publish("First in the list").await;
    let url = format!("{}/v1/posts?tag={tag}", stack.query);
    let page = stack.http.get(&url).header("pressroom-min-position", first).send().await.unwrap();
    assert_eq!(page.json::<Value>().await.unwrap()["posts"].as_array().unwrap().len(), 1);
    // The page gets cached. (The first publish's own generation bump lands just after its commit, so a page
    // cached a moment earlier may be retired once: read until the cache answers, well within one TTL.)
    let mut sources = Vec::new();
    while sources.last().is_none_or(|s| s != "cache") {
        assert!(sources.len() < 20, "the list page was never served from the cache: {sources:?}");
        let res = stack.http.get(&url).send().await.unwrap();
        sources.push(res.headers()["pressroom-read-source"].to_str().unwrap().to_string());
    }
    let second = publish("Second in the list").await;
    let res = stack.http.get(&url).header("pressroom-min-position", second).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["posts"].as_array().unwrap().len(), 2);
    // The cached page lives 2 s or more; the projector's new generation retires it well before that.
    let started = tokio::time::Instant::now();
    loop {
        let page: Value = stack.http.get(&url).send().await.unwrap().json().await.unwrap();
        if page["posts"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(1500), "the old page outlived its generation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.stop().await;
}

/// The comment count in the post's Redis entry (None: no entry).
async fn cached_count(stack: &Stack, slug: &str) -> Option<i64> {
    let client = redis::Client::open(stack.db.redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let ns: Option<i64> = redis::cmd("GET").arg(format!("{}:ns", stack.db.name)).query_async(&mut redis).await.unwrap();
    let key = format!("{}:{}:post:slug:{slug}", stack.db.name, ns.unwrap_or(0));
    let body: Option<String> = redis::cmd("HGET").arg(key).arg("body").query_async(&mut redis).await.unwrap();
    body.and_then(|b| serde_json::from_str::<Value>(&b).ok()).and_then(|v| v["post"]["comment_count"].as_i64())
}

#[tokio::test]
async fn a_comment_count_that_changed_while_the_projector_had_no_redis_reaches_the_cached_entry_after() {
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (id, slug, _) = stack.published_post(&editor, "Counted after the outage").await;
    let started = tokio::time::Instant::now();
    while cached_count(&stack, &slug).await != Some(0) {
        assert!(started.elapsed() < Duration::from_secs(10), "the post was never written through");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next projector cannot reach Redis: the approval is projected, its entry not rewritten.
    stack.kill_projector().await;
    let closed = format!("redis://127.0.0.1:{}", pressroom_tests::free_port());
    let mut unreachable = stack.spawn_projector_with(&[("REDIS_URL", &closed)]);
    let body = json!({"author_name": "Reader", "body": "Approved during the outage"});
    let res = stack.command(Method::POST, &format!("/v1/posts/{id}/comments"), None, Some(body), &[]).await;
    let comment = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let res = stack.command(Method::POST, &format!("/v1/comments/{comment}/approve"), Some(&editor), None, &[]).await;
    assert_eq!(res.status(), 200);
    stack.db.wait_projected().await;
    assert_eq!(cached_count(&stack, &slug).await, Some(0), "the entry is as the outage left it");
    // A projector that reaches Redis redoes what did not land.
    unreachable.kill().await.unwrap();
    let _projector = stack.spawn_projector();
    let started = tokio::time::Instant::now();
    while cached_count(&stack, &slug).await != Some(1) {
        assert!(started.elapsed() < Duration::from_secs(10), "the cached entry never showed the approval");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.stop().await;
}
