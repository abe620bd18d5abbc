//! Reads folded from the event store, over HTTP: an author's own posts in any status, drafts by id, version
//! history and time travel; a public read whose token no projection has reached.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

async fn author_get(stack: &Stack, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = stack.http.get(format!("{}{path}", stack.query));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn authors_read_their_drafts_history_and_past_versions_and_nobody_elses() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, mine) = stack.token(Role::Author).await;
    let (_, other) = stack.token(Role::Author).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let id = stack.draft(&mine, "First title").await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let res = stack.patch_post(&mine, &id, Some("\"1\""), json!({"title": "Second title"})).await;
    assert_eq!(res.status(), 200);
    let res = stack.patch_post(&mine, &id, Some("\"2\""), json!({"title": "Third title"})).await;
    let position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();

    let now: Value = author_get(&stack, Some(&mine), &format!("/v1/author/posts/{id}")).await.json().await.unwrap();
    assert_eq!(
        (now["title"].as_str(), now["status"].as_str(), now["version"].as_i64()),
        (Some("Third title"), Some("draft"), Some(3))
    );
    let v1: Value =
        author_get(&stack, Some(&mine), &format!("/v1/author/posts/{id}/versions/1")).await.json().await.unwrap();
    assert_eq!(v1["title"], "First title");
    let as_of = between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B");
    let then: Value =
        author_get(&stack, Some(&mine), &format!("/v1/author/posts/{id}?as_of={as_of}")).await.json().await.unwrap();
    assert_eq!(then["title"], "First title");
    let history: Value =
        author_get(&stack, Some(&mine), &format!("/v1/author/posts/{id}/versions")).await.json().await.unwrap();
    let types: Vec<&str> =
        history["versions"].as_array().unwrap().iter().map(|v| v["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["PostDrafted", "PostEdited", "PostEdited"]);
    assert!(history["versions"][0]["actor_id"].is_string());
    assert_eq!(author_get(&stack, Some(&mine), &format!("/v1/author/posts/{id}/versions/9")).await.status(), 404);

    let list = stack
        .http
        .get(format!("{}/v1/author/posts?status=draft", stack.query))
        .bearer_auth(&mine)
        .header("pressroom-min-position", position)
        .send()
        .await
        .unwrap();
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["posts"][0]["title"], "Third title");
    assert_eq!(
        author_get(&stack, Some(&other), &format!("/v1/author/posts/{id}")).await.status(),
        404,
        "another author's draft"
    );
    assert_eq!(
        author_get(&stack, Some(&editor), &format!("/v1/author/posts/{id}")).await.status(),
        200,
        "editors see all"
    );
    assert_eq!(author_get(&stack, None, "/v1/author/posts").await.status(), 401);
    assert_eq!(author_get(&stack, Some(&mine), "/v1/author/posts?status=bogus").await.status(), 422);
    stack.stop().await;
}

/// A post's JSON and page read with a token: the JSON's read source, the JSON, the page.
async fn read_at(stack: &Stack, slug: &str, at: i64) -> (String, Value, String) {
    let res = stack.query_at(&format!("/v1/posts/{slug}"), at).await;
    let source = res.headers()["pressroom-read-source"].to_str().unwrap().to_string();
    (source, res.json().await.unwrap(), stack.query_at(&format!("/posts/{slug}"), at).await.text().await.unwrap())
}

#[tokio::test]
async fn a_post_folded_from_its_events_counts_and_lists_the_comments_folded_from_theirs() {
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (id, slug, _) = stack.published_post(&editor, "Folded with its comments").await;
    stack.db.wait_projected().await;
    // No projection reaches what follows: a read with its token folds the post and comments from the events.
    stack.kill_projector().await;
    let mut last = 0;
    for (body, verdicts) in [
        ("First approved", &["approve"][..]),
        ("Approved then rejected", &["approve", "reject"]),
        ("Still pending", &[]),
        ("Second approved", &["approve"]),
    ] {
        let res = stack
            .command(
                Method::POST,
                &format!("/v1/posts/{id}/comments"),
                None,
                Some(json!({"author_name": "Reader", "body": body})),
                &[],
            )
            .await;
        let cid = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        for verdict in verdicts {
            let res =
                stack.command(Method::POST, &format!("/v1/comments/{cid}/{verdict}"), Some(&editor), None, &[]).await;
            assert_eq!(res.status(), 200, "{verdict} {body}");
            last = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
        }
    }
    let shows = |json: &Value, page: &str| {
        assert_eq!(json["comment_count"], 2, "{json}");
        assert!(page.contains("Comments (2)"), "{page}");
        let (first, second) = (page.find("First approved"), page.find("Second approved"));
        assert!(first.is_some() && second.is_some() && first < second, "both approved, oldest first: {page}");
        assert!(!page.contains("Approved then rejected") && !page.contains("Still pending"), "{page}");
    };
    let (source, json, page) = read_at(&stack, &slug, last).await;
    assert_eq!(source, "events");
    shows(&json, &page);
    // The author's reads fold the same way: now, and as the post was at its publication (version 2).
    for (path, count) in [(format!("/v1/author/posts/{id}"), 2), (format!("/v1/author/posts/{id}/versions/2"), 0)] {
        let res = author_get(&stack, Some(&editor), &path).await;
        assert_eq!(res.json::<Value>().await.unwrap()["comment_count"], count, "{path}");
    }
    // The projections, once they catch up, say the same.
    let _projector = stack.spawn_projector();
    let started = tokio::time::Instant::now();
    loop {
        let (source, json, page) = read_at(&stack, &slug, last).await;
        if source != "events" {
            shows(&json, &page);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never projected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.stop().await;
}
