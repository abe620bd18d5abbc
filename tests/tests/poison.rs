//! A poison event halts only the projection that needs it, with a clear status; an operator's skip
//! moves it on and is recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::json;
use shared::domain::role::Role;

/// The projection's checkpoint, once the projector has written it (its first batch creates it).
async fn checkpoint(stack: &Stack, name: &str) -> (i64, String, Option<String>) {
    let started = tokio::time::Instant::now();
    loop {
        let row = sqlx::query_as("select global_position, state, error from read.checkpoints where name = $1")
            .bind(name)
            .fetch_optional(&stack.db.admin)
            .await
            .unwrap();
        if let Some(row) = row {
            return row;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the projector never started {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_poison_event_halts_only_its_projection_until_an_operator_skips_it() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Editor).await;
    let (post, _, _) = stack.published_post(&token, "Before the poison").await;
    // A PostEdited whose payload does not match its schema, written straight into the log.
    let poison: i64 = sqlx::query_scalar(
        "insert into events (event_id, stream_id, stream_type, version, event_type, schema_version, payload)
         values (gen_random_uuid(), gen_random_uuid(), 'post', 1, 'PostEdited', 1, '{\"title\": 5}') returning global_position",
    )
    .fetch_one(&stack.db.admin)
    .await
    .unwrap();
    let (after_id, after_slug, _) = stack.published_post(&token, "After the poison").await;
    // Approved while the posts projection cannot have its row: the comments projection runs ahead of it.
    let body = json!({"author_name": "Early", "body": "First!"});
    let res = stack.command(Method::POST, &format!("/v1/posts/{after_id}/comments"), None, Some(body), &[]).await;
    let early = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let res = stack.command(Method::POST, &format!("/v1/comments/{early}/approve"), Some(&token), None, &[]).await;
    let after: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let comment = stack
        .command(
            Method::POST,
            &format!("/v1/posts/{post}/comments"),
            None,
            Some(json!({"author_name": "R", "body": "b"})),
            &[],
        )
        .await;
    assert_eq!(comment.status(), 202);
    let comment_position: i64 = comment.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();

    let started = tokio::time::Instant::now();
    let (position, state, error) = loop {
        let c = checkpoint(&stack, "posts").await;
        if c.1 == "failed" {
            break c;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "posts never reported failed: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state, "failed");
    assert!(position < poison, "the checkpoint stops before the poison event");
    assert!(error.as_deref().unwrap_or_default().contains(&format!("position {poison}")), "{error:?}");
    // The comments projection does not need PostEdited and carries on past it.
    let started = tokio::time::Instant::now();
    while checkpoint(&stack, "comments").await.0 < comment_position {
        assert!(started.elapsed() < Duration::from_secs(10), "comments stalled behind another projection's poison");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.get_post(&after_slug, None).await.status(), 404, "posts after the poison wait");
    let halted = posts_status(&stack).await;
    assert!(halted["lag_events"].as_i64().is_some_and(|n| n >= 2), "the poison and the post after it: {halted}");
    assert!(halted["lag_seconds"].as_f64().is_some_and(|s| s > 0.0), "the poison has been waiting: {halted}");

    let out = stack
        .db
        .ops(&["projections", "skip", "posts", &poison.to_string(), "--reason", "malformed test event"])
        // As from cron or systemd: the operator is still named, from the process's user id.
        .env_remove("USER")
        .env_remove("SUDO_USER")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let skipped_by: String = sqlx::query_scalar("select skipped_by from projection_skips where projection = 'posts'")
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    assert_eq!(skipped_by, me.trim(), "the operating-system user, not 'unknown'");
    let recorded: (String, i64) =
        sqlx::query_as("select reason, global_position from projection_skips where projection = 'posts'")
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
    assert_eq!(recorded, ("malformed test event".to_string(), poison));
    let started = tokio::time::Instant::now();
    let res = loop {
        let res = stack.get_post(&after_slug, Some(after)).await;
        assert_eq!(res.status(), 200, "the projection moved on");
        if res.headers()["pressroom-read-source"] != "events" {
            break res;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "posts never projected past the skip");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let post: serde_json::Value = res.json().await.unwrap();
    assert_eq!(post["comment_count"], 1, "the row counts the approval the comments projection made before it: {post}");
    assert_eq!(checkpoint(&stack, "posts").await.1, "running");
    let posts = posts_status(&stack).await;
    for field in ["position", "head", "lag_events", "lag_seconds", "state"] {
        assert!(posts.get(field).is_some(), "{field} missing in {posts}");
    }
    assert!(posts["leader"].as_str().is_some_and(|l| l.starts_with("pid ")), "a running projector leads: {posts}");
    stack.stop().await;
}

/// The `posts` entry of `pressroom-ops projections status --json`.
async fn posts_status(stack: &Stack) -> serde_json::Value {
    let status = stack.db.ops(&["projections", "status", "--json"]).output().await.unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    status["projections"].as_array().unwrap().iter().find(|p| p["name"] == "posts").unwrap().clone()
}
