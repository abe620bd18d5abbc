//! Author reads over HTTP: own posts in any status, drafts by id, version history and time travel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::{Stack, TestDb};
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
