//! Read-your-writes with the replica's replay paused. In a test binary of its own: pausing replay
//! affects the whole replica, so no other test may run beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::{replica_exec, Stack, TestDb};
use serde_json::Value;
use shared::domain::role::Role;

#[tokio::test]
async fn with_replay_paused_a_min_position_read_is_served_by_the_primary_and_plain_reads_keep_answering() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, first_slug, first) = stack.published_post(&token, "Before the pause").await;
    // Make sure the replica has the first post before pausing.
    assert_eq!(stack.get_post(&first_slug, Some(first)).await.status(), 200);
    for _ in 0..50 {
        if stack.get_post(&first_slug, None).await.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    replica_exec(&stack.db.replica_admin_url, "select pg_wal_replay_pause()").await;
    let replica = stack.db.replica_admin_url.clone();
    let result = tokio::spawn(async move {
        let (_, slug, position) = stack.published_post(&token, "During the pause").await;
        let res = stack.get_post(&slug, Some(position)).await;
        assert_eq!(res.status(), 200);
        let source = res.headers()["pressroom-read-source"].to_str().unwrap().to_string();
        assert!(source == "primary" || source == "events", "served by {source}");
        assert_eq!(res.json::<Value>().await.unwrap()["title"], "During the pause");
        // Ordinary reads keep answering.
        assert_eq!(stack.get_post(&first_slug, None).await.status(), 200);
        assert_eq!(stack.list_posts("").await.status(), 200);
        stack
    })
    .await;
    // Resume whatever happened, then report.
    replica_exec(&replica, "select pg_wal_replay_resume()").await;
    match result {
        Ok(stack) => stack.stop().await,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
