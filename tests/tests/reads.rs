//! The public read API beyond a single post: authors, tags, search, RSS and sitemap, slug history,
//! unpublished states and sanitization — over HTTP against the real binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

async fn get(stack: &Stack, path: &str, min_position: i64) -> reqwest::Response {
    stack.query_at(path, min_position).await
}

#[tokio::test]
async fn authors_and_tags_count_published_posts_only_and_follow_unpublishing() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (author_id, token) = stack.token(Role::Author).await;
    stack.publish_post(&token, json!({"title": "One", "body_markdown": "x", "tags": ["Rust", "Databases"]})).await;
    let (second, _, _) =
        stack.publish_post(&token, json!({"title": "Two", "body_markdown": "x", "tags": ["Rust"]})).await;
    let res =
        stack.create_post(&token, json!({"title": "Draft", "body_markdown": "x", "tags": ["Rust", "Drafts"]})).await;
    let mut last: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();

    let tags: Value = get(&stack, "/v1/tags", last).await.json().await.unwrap();
    assert_eq!(
        tags["tags"],
        json!([{"slug": "rust", "name": "Rust", "post_count": 2}, {"slug": "databases", "name": "Databases", "post_count": 1}])
    );
    let authors: Value = get(&stack, "/v1/authors", last).await.json().await.unwrap();
    let me = authors["authors"].as_array().unwrap().iter().find(|a| a["id"] == author_id.to_string()).unwrap().clone();
    assert_eq!(me["post_count"], 2);
    let slug = me["slug"].as_str().unwrap();
    let one: Value = get(&stack, &format!("/v1/authors/{slug}"), last).await.json().await.unwrap();
    assert_eq!(one["post_count"], 2);

    let res = stack.command(Method::POST, &format!("/v1/posts/{second}/unpublish"), Some(&token), None, &[]).await;
    last = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let rust: Value = get(&stack, "/v1/tags/rust", last).await.json().await.unwrap();
    assert_eq!(rust["post_count"], 1);
    assert_eq!(get(&stack, "/v1/tags/drafts", last).await.status(), 404, "a draft's tag is not public");
    assert_eq!(get(&stack, "/v1/authors/nobody", last).await.status(), 404);
    let filtered: Value = get(&stack, "/v1/posts?tag=databases", last).await.json().await.unwrap();
    assert_eq!(filtered["posts"].as_array().unwrap().len(), 1);
    stack.stop().await;
}

#[tokio::test]
async fn search_ranks_title_matches_first_and_understands_phrases_and_exclusions() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    stack
        .publish_post(
            &token,
            json!({"title": "Notes on cooking", "body_markdown": "We talk about replication lag here."}),
        )
        .await;
    stack
        .publish_post(&token, json!({"title": "Replication explained", "body_markdown": "Streaming from the primary."}))
        .await;
    let (_, _, last) = stack
        .publish_post(&token, json!({"title": "Other", "body_markdown": "Logical replication slots and lag."}))
        .await;

    let res: Value = get(&stack, "/v1/search?q=replication", last).await.json().await.unwrap();
    let titles: Vec<&str> = res["results"].as_array().unwrap().iter().map(|r| r["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 3);
    assert_eq!(titles[0], "Replication explained", "a title match ranks first: {titles:?}");
    assert!(res["results"][0]["snippet"].as_str().unwrap().contains("<mark>"));

    let phrase: Value = get(&stack, "/v1/search?q=%22replication%20lag%22", last).await.json().await.unwrap();
    let titles: Vec<&str> =
        phrase["results"].as_array().unwrap().iter().map(|r| r["title"].as_str().unwrap()).collect();
    assert_eq!(titles, vec!["Notes on cooking"], "an exact phrase matches only adjacent words");

    let without: Value = get(&stack, "/v1/search?q=replication%20-slots", last).await.json().await.unwrap();
    assert_eq!(without["results"].as_array().unwrap().len(), 2, "-word excludes");

    let page: Value = get(&stack, "/v1/search?q=replication&limit=2", last).await.json().await.unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value =
        get(&stack, &format!("/v1/search?q=replication&limit=2&cursor={cursor}"), last).await.json().await.unwrap();
    assert_eq!(rest["results"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    assert_eq!(get(&stack, "/v1/search?q=", last).await.status(), 422);
    stack.stop().await;
}

#[tokio::test]
async fn search_folds_case_beyond_ascii_and_follows_an_edit_of_the_body_after_one_of_the_tags() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (id, _, _) = stack
        .publish_post(&token, json!({"title": "Éclair recipes", "body_markdown": "An ÉCLAIR, then a crème brûlée."}))
        .await;
    let (_, _, last) =
        stack.publish_post(&token, json!({"title": "Ordinary", "body_markdown": "Nothing French in here."})).await;
    let titles = |res: Value| -> Vec<String> {
        res["results"].as_array().unwrap().iter().map(|r| r["title"].as_str().unwrap().to_string()).collect()
    };
    for q in ["éclair", "ÉCLAIR", "Éclair", "CRÈME", "brûlée"] {
        let res: Value = get(&stack, &format!("/v1/search?q={q}"), last).await.json().await.unwrap();
        assert_eq!(titles(res), vec!["Éclair recipes"], "{q} matches whatever the case of its letters");
    }

    // A tags-only edit (version 3) leaves the text as it was; a body edit (version 4) replaces it.
    let edit = |version: i64, body: Value| {
        let path = format!("/v1/posts/{id}");
        let stack = &stack;
        let token = &token;
        async move {
            let res = stack
                .command(Method::PATCH, &path, Some(token), Some(body), &[("if-match", format!("\"{version}\""))])
                .await;
            assert!(res.status().is_success(), "{}", res.status());
            res
        }
    };
    edit(2, json!({"tags": ["Baking"]})).await;
    let res = edit(3, json!({"body_markdown": "Now about Straße food."})).await;
    let last: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let gone: Value = get(&stack, "/v1/search?q=brûlée", last).await.json().await.unwrap();
    assert!(titles(gone).is_empty(), "the old body is no longer searched");
    let title: Value = get(&stack, "/v1/search?q=ÉCLAIR", last).await.json().await.unwrap();
    assert_eq!(titles(title), vec!["Éclair recipes"], "the title still is");
    let body: Value = get(&stack, "/v1/search?q=STRASSE%20OR%20straße", last).await.json().await.unwrap();
    assert_eq!(titles(body), vec!["Éclair recipes"], "the new body is");
    stack.stop().await;
}

#[tokio::test]
async fn the_rss_feed_parses_and_the_sitemap_lists_only_published_posts() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    stack
        .publish_post(
            &token,
            json!({"title": "Feed <one> & more", "body_markdown": "x", "summary": "Sum & mary", "tags": ["News"]}),
        )
        .await;
    let (_, _, last) = stack.publish_post(&token, json!({"title": "Feed two", "body_markdown": "x"})).await;
    stack.create_post(&token, json!({"title": "Hidden draft", "body_markdown": "x"})).await;

    let res = get(&stack, "/feed.xml", last).await;
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/rss+xml"));
    let body = res.bytes().await.unwrap();
    let channel = rss::Channel::read_from(&body[..]).expect("a valid RSS 2.0 document");
    assert_eq!(channel.items().len(), 2);
    let first = &channel.items()[0];
    assert_eq!(first.title(), Some("Feed two"));
    assert!(first.link().unwrap().starts_with("http://127.0.0.1:8080/posts/"));
    assert_eq!(channel.title(), "Pressroom", "the site title");
    assert!(first.guid().is_some());
    assert!(chrono::DateTime::parse_from_rfc2822(first.pub_date().unwrap()).is_ok(), "pubDate is RFC 822");
    assert_eq!(channel.items()[1].title(), Some("Feed <one> & more"));
    assert_eq!(channel.items()[1].description(), Some("Sum & mary"));

    let sitemap = get(&stack, "/sitemap.xml", last).await.text().await.unwrap();
    let doc = roxmltree::Document::parse(&sitemap).expect("well-formed XML");
    let locs: Vec<&str> = doc.descendants().filter(|n| n.has_tag_name("loc")).filter_map(|n| n.text()).collect();
    assert_eq!(locs.len(), 2);
    assert!(locs.iter().all(|l| !l.contains("hidden-draft") && l.starts_with("http://127.0.0.1:8080/posts/")));
    stack.stop().await;
}

#[tokio::test]
async fn old_slugs_redirect_unpublished_states_are_404_and_scripts_never_survive() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let body = "Hello <script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))";
    let (id, slug, _) = stack.publish_post(&token, json!({"title": "Original title", "body_markdown": body})).await;
    let res = stack.patch_post(&token, &id, Some("\"2\""), json!({"slug": "renamed"})).await;
    let last: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let moved = get(&stack, &format!("/v1/posts/{slug}"), last).await;
    assert_eq!(moved.status(), 301);
    assert_eq!(moved.headers()["location"], "/v1/posts/renamed");
    let post: Value = get(&stack, "/v1/posts/renamed", last).await.json().await.unwrap();
    let html = post["body_html"].as_str().unwrap();
    for bad in ["<script", "onerror", "javascript:"] {
        assert!(!html.contains(bad), "{bad} survived: {html}");
    }

    let scheduled = stack.draft(&token, "Later").await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let res = stack
        .command(Method::POST, &format!("/v1/posts/{scheduled}/publish"), Some(&token), Some(json!({"at": at})), &[])
        .await;
    let p: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    assert_eq!(get(&stack, "/v1/posts/later", p).await.status(), 404, "scheduled");
    let res = stack.command(Method::DELETE, &format!("/v1/posts/{id}"), Some(&token), None, &[]).await;
    let p: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    assert_eq!(get(&stack, "/v1/posts/renamed", p).await.status(), 404, "deleted");
    stack.stop().await;
}

#[tokio::test]
async fn approved_comments_are_listed_in_order_and_counted_on_the_post() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (id, slug, _) = stack.publish_post(&editor, json!({"title": "Discussed", "body_markdown": "x"})).await;
    // Warm the cache so the count change has to evict it.
    let mut warm = 0;
    while stack.get_post(&slug, None).await.status() != 200 {
        warm += 1;
        assert!(warm < 100, "never readable");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({"author_name": format!("Reader {i}"), "body": format!("Comment {i}")});
        let res = stack.command(Method::POST, &format!("/v1/posts/{id}/comments"), None, Some(body), &[]).await;
        assert_eq!(res.status(), 202);
        ids.push(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    let mut last = 0;
    for (cid, verb) in [(&ids[0], "approve"), (&ids[1], "reject"), (&ids[2], "approve")] {
        let res = stack.command(Method::POST, &format!("/v1/comments/{cid}/{verb}"), Some(&editor), None, &[]).await;
        assert_eq!(res.status(), 200);
        last = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    }
    let page: Value = get(&stack, &format!("/v1/posts/{slug}/comments?limit=1"), last).await.json().await.unwrap();
    assert_eq!(page["comments"][0]["body"], "Comment 0");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value =
        get(&stack, &format!("/v1/posts/{slug}/comments?limit=1&cursor={cursor}"), last).await.json().await.unwrap();
    assert_eq!(rest["comments"][0]["body"], "Comment 2", "the rejected comment is not listed");
    assert!(rest["next_cursor"].is_null());
    let started = tokio::time::Instant::now();
    loop {
        let post: Value = stack.get_post(&slug, None).await.json().await.unwrap();
        if post["comment_count"] == 2 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "comment_count stale: {post}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // An edit's entry goes to Redis as the projection wrote the row, with the count the comments keep.
    let version = stack.get_post(&slug, None).await.json::<Value>().await.unwrap()["version"].clone();
    let res = stack
        .command(
            Method::PATCH,
            &format!("/v1/posts/{id}"),
            Some(&editor),
            Some(json!({"title": "Discussed, edited"})),
            &[("if-match", format!("\"{version}\""))],
        )
        .await;
    assert_eq!(res.status(), 200);
    let started = tokio::time::Instant::now();
    loop {
        let post: Value = stack.get_post(&slug, None).await.json().await.unwrap();
        if post["title"] == "Discussed, edited" {
            assert_eq!(post["comment_count"], 2, "the edited entry keeps the count: {post}");
            // And its times as the table holds them (to the microsecond), as a read from a replica shows them.
            assert_times_as_stored(&stack, &slug, &post).await;
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "the edit never showed: {post}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(get(&stack, "/v1/posts/nope/comments", last).await.status(), 404);
    stack.stop().await;
}

#[tokio::test]
async fn renaming_an_author_shows_on_every_one_of_their_posts() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (author, token) = stack.token(Role::Author).await;
    let mut slugs = Vec::new();
    for i in 0..3 {
        slugs.push(stack.publish_post(&token, json!({"title": format!("Renamed {i}"), "body_markdown": "x"})).await.1);
    }
    let res = stack
        .command(
            Method::PATCH,
            &format!("/v1/authors/{author}"),
            Some(&token),
            Some(json!({"name": "New Name", "avatar_url": "https://img.test/a.png"})),
            &[],
        )
        .await;
    assert_eq!(res.status(), 200);
    let position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    for slug in &slugs {
        let post: Value = get(&stack, &format!("/v1/posts/{slug}"), position).await.json().await.unwrap();
        assert_eq!(post["author"]["name"], "New Name", "{slug}");
        assert_eq!(post["author"]["avatar_url"], "https://img.test/a.png");
    }
    let list: Value = get(&stack, "/v1/posts", position).await.json().await.unwrap();
    assert!(list["posts"].as_array().unwrap().iter().all(|p| p["author"]["name"] == "New Name"));
    let stale: i64 =
        sqlx::query_scalar("select count(*) from read.posts where author_id = $1 and author->>'name' <> 'New Name'")
            .bind(author)
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
    assert_eq!(stale, 0);
    stack.stop().await;
}

#[tokio::test]
async fn views_counted_by_the_query_api_make_a_post_trend() {
    let off = [("PRESSROOM_RATE_LIMIT_LOGIN", "0"), ("PRESSROOM_TRENDING_CRON", "*/1 * * * * *")];
    let stack = Stack::start_with(TestDb::fresh().await, &off).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, quiet, _) = stack.publish_post(&token, json!({"title": "Quiet post", "body_markdown": "x"})).await;
    let (popular_id, popular, last) =
        stack.publish_post(&token, json!({"title": "Popular post", "body_markdown": "x"})).await;
    assert_eq!(stack.get_post(&popular, Some(last)).await.status(), 200);
    for (slug, views) in [(&quiet, 1), (&popular, 6)] {
        let mut seen = 0;
        while seen < views {
            if stack.get_post(slug, None).await.status() == 200 {
                seen += 1;
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    let started = tokio::time::Instant::now();
    loop {
        let trending: Value =
            stack.http.get(format!("{}/v1/trending?limit=5", stack.query)).send().await.unwrap().json().await.unwrap();
        let slugs: Vec<&str> =
            trending["posts"].as_array().unwrap().iter().map(|p| p["slug"].as_str().unwrap()).collect();
        if slugs.len() == 2 {
            assert_eq!(slugs, vec![popular.as_str(), quiet.as_str()]);
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "trending never filled: {trending}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let views: i64 = sqlx::query_scalar("select views from read.post_stats where post_id = $1::uuid")
        .bind(&popular_id)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    assert!(views >= 6, "{views} views");
    stack.stop().await;
}

#[tokio::test]
async fn reads_over_the_per_ip_limit_are_429_with_retry_after_and_other_clients_are_unaffected() {
    let stack = Stack::start_with(
        TestDb::fresh().await,
        &[("PRESSROOM_TRUSTED_PROXIES", "127.0.0.1"), ("PRESSROOM_RATE_LIMIT_READS", "5")],
    )
    .await;
    // A fresh address per run: the limit lives in the shared Redis.
    let ip = format!("192.0.2.{}", uuid::Uuid::now_v7().as_u128() % 250 + 1);
    let read = |ip: String| stack.http.get(format!("{}/v1/posts", stack.query)).header("x-forwarded-for", ip).send();
    for i in 0..5 {
        assert_eq!(read(ip.clone()).await.unwrap().status(), 200, "read {i}");
    }
    let sixth = read(ip.clone()).await.unwrap();
    assert_eq!(sixth.status(), 429);
    let retry: u64 = sixth.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    assert_eq!(sixth.headers()["content-type"], "application/problem+json");
    assert_eq!(read(format!("198.51.100.{}", uuid::Uuid::now_v7().as_u128() % 250 + 1)).await.unwrap().status(), 200);
    // Probes and metrics are not public reads.
    let health = stack.http.get(format!("{}/health", stack.query)).header("x-forwarded-for", ip).send().await.unwrap();
    assert_eq!(health.status(), 200);
    stack.stop().await;
}

#[tokio::test]
async fn reads_counted_in_process_reach_redis_and_counts_from_other_instances_come_back() {
    let stack = Stack::start_with(
        TestDb::fresh().await,
        &[("PRESSROOM_TRUSTED_PROXIES", "127.0.0.1"), ("PRESSROOM_RATE_LIMIT_READS", "5")],
    )
    .await;
    let client = redis::Client::open(stack.db.redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let key = |ip: &str| format!("{}:rl:reads:{ip}", stack.db.name);
    let redis_now_ms = |t: (i64, i64)| t.0 * 1000 + t.1 / 1000;
    let read = |ip: String| stack.http.get(format!("{}/v1/posts", stack.query)).header("x-forwarded-for", ip).send();

    // Three reads on this instance reach the shared state within a sync interval (12 s each at 5 a minute).
    let ip = format!("192.0.2.{}", uuid::Uuid::now_v7().as_u128() % 250 + 1);
    for _ in 0..3 {
        assert_eq!(read(ip.clone()).await.unwrap().status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(read(ip.clone()).await.unwrap().status(), 200, "a fourth read, which also starts the next sync");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let now: (i64, i64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let tat: f64 = redis::cmd("GET").arg(key(&ip)).query_async(&mut redis).await.unwrap();
    let ahead_s = (tat - redis_now_ms(now) as f64) / 1000.0;
    assert!((40.0..=48.0).contains(&ahead_s), "four reads of 12 s each are in Redis: {ahead_s} s ahead");

    // Another instance used up a client's minute: this one refuses the client after its next sync, though
    // its own count would allow five reads.
    let other = format!("198.51.100.{}", uuid::Uuid::now_v7().as_u128() % 250 + 1);
    let now: (i64, i64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(key(&other))
        .arg(redis_now_ms(now) + 60_000)
        .arg("PX")
        .arg(61_000)
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(read(other.clone()).await.unwrap().status().as_u16());
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    assert!(
        statuses.iter().skip(2).all(|s| *s == 429),
        "refused once the other instance's count arrived: {statuses:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_published_posts_cached_entry_has_its_times_as_the_table_holds_them() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (_, slug, position) = stack.publish_post(&editor, json!({"title": "Timed", "body_markdown": "x"})).await;
    // Read nothing until the projector's Redis effects of the publish have landed: the first read takes
    // the entry it wrote through (the publish's time comes from the command with nanoseconds).
    let started = tokio::time::Instant::now();
    loop {
        let landed: Option<bool> = sqlx::query_scalar(
            "select effects_position >= $1 from read.checkpoints where name = 'posts' and effects_position is not null",
        )
        .bind(position)
        .fetch_optional(&stack.db.admin)
        .await
        .unwrap()
        .flatten();
        if landed == Some(true) {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "effects never landed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let post: Value = stack.get_post(&slug, None).await.json().await.unwrap();
    assert_times_as_stored(&stack, &slug, &post).await;
    stack.stop().await;
}

/// Asserts that `post` (a public answer) shows `updated_at` and `published_at` as `read.posts` holds them.
async fn assert_times_as_stored(stack: &Stack, slug: &str, post: &Value) {
    let (updated, published): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("select updated_at, published_at from read.posts where slug = $1")
            .bind(slug)
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
    let time = |field: &str| post[field].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    assert_eq!((time("updated_at"), time("published_at")), (updated, published), "{post}");
}
