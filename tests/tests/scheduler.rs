//! Scheduled publishing with two projector processes: published once, on time, with `published_at = at`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

#[tokio::test]
async fn a_scheduled_post_is_published_exactly_once_within_5_seconds_with_two_projectors_running() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let _second = stack.spawn_projector();
    let (_, token) = stack.token(Role::Author).await;
    let mut scheduled = Vec::new();
    for i in 0..3 {
        let id = stack.draft(&token, &format!("Scheduled {i}")).await;
        let at = chrono::Utc::now() + chrono::Duration::seconds(2);
        let res = stack
            .command(
                Method::POST,
                &format!("/v1/posts/{id}/publish"),
                Some(&token),
                Some(json!({"at": at.to_rfc3339()})),
                &[],
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "scheduled");
        scheduled.push((id, format!("scheduled-{i}"), at));
    }
    // Not readable before its time.
    assert_eq!(stack.get_post("scheduled-0", None).await.status(), 404);
    for (id, slug, at) in &scheduled {
        let deadline = *at + chrono::Duration::seconds(5);
        loop {
            let res = stack.get_post(slug, None).await;
            if res.status() == 200 {
                let body: Value = res.json().await.unwrap();
                let published_at: chrono::DateTime<chrono::Utc> =
                    body["published_at"].as_str().unwrap().parse().unwrap();
                assert_eq!(
                    published_at.timestamp_micros(),
                    at.timestamp_micros(),
                    "published_at is the scheduled time"
                );
                break;
            }
            assert!(chrono::Utc::now() < deadline, "{slug} not published within 5 s of its time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Give a racing scheduler every chance to publish twice; it must not.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let published: i64 = sqlx::query_scalar(
            "select count(*) from events where stream_id = $1::uuid and event_type = 'PostPublished'",
        )
        .bind(id)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
        assert_eq!(published, 1, "{slug} published exactly once");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_schedule_whose_author_was_deactivated_or_demoted_is_cancelled_with_a_reason_not_published() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, admin) = stack.token(Role::Admin).await;
    let mut cases = Vec::new();
    for (i, change) in [json!("deactivate"), json!({"role": "contributor"})].into_iter().enumerate() {
        let (author_id, token) = stack.token(Role::Author).await;
        let id = stack.draft(&token, &format!("Due later {i}")).await;
        let at = chrono::Utc::now() + chrono::Duration::seconds(2);
        let body = json!({"at": at.to_rfc3339()});
        let res = stack.command(Method::POST, &format!("/v1/posts/{id}/publish"), Some(&token), Some(body), &[]).await;
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "scheduled");
        let res = if change == "deactivate" {
            stack.command(Method::POST, &format!("/v1/authors/{author_id}/deactivate"), Some(&admin), None, &[]).await
        } else {
            stack.command(Method::PATCH, &format!("/v1/authors/{author_id}"), Some(&admin), Some(change), &[]).await
        };
        assert_eq!(res.status(), 200);
        cases.push((id, format!("due-later-{i}")));
    }
    for (id, slug) in &cases {
        let started = tokio::time::Instant::now();
        let reason = loop {
            let row: Option<(String,)> = sqlx::query_as(
                "select payload->>'reason' from events where stream_id = $1::uuid and event_type = 'PostScheduleCancelled'",
            )
            .bind(id)
            .fetch_optional(&stack.db.admin)
            .await
            .unwrap();
            if let Some((reason,)) = row {
                break reason;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{slug}: schedule neither cancelled nor kept");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(reason.contains("deactivated") || reason.contains("may no longer publish"), "{reason}");
        let published: i64 = sqlx::query_scalar(
            "select count(*) from events where stream_id = $1::uuid and event_type = 'PostPublished'",
        )
        .bind(id)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
        assert_eq!(published, 0, "{slug} never went live");
        // The admin sees it back in draft, and the public never sees it.
        let position = stack.db.head().await;
        let res = stack
            .http
            .get(format!("{}/v1/author/posts/{id}", stack.query))
            .bearer_auth(&admin)
            .header("pressroom-min-position", position)
            .send()
            .await
            .unwrap();
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "draft");
        assert_eq!(stack.get_post(slug, Some(position)).await.status(), 404);
    }
    stack.stop().await;
}
