//! The rebuild's swap, over the real `pressroom-ops`: the live tables it retires, and what refuses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::{Stack, TestDb};

async fn live_posts(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from read.posts").fetch_one(&db.admin).await.unwrap()
}

#[tokio::test]
async fn a_view_over_live_refuses_the_swap_and_the_retired_tables_never_outlive_a_rebuild() {
    let stack = Stack::start(TestDb::fresh().await).await;
    stack.db.seed(12).await;
    stack.db.wait_projected().await;
    let posts = live_posts(&stack.db).await;
    assert_eq!(posts, 12);
    // What an interrupted rebuild leaves behind: the old live tables moved aside, never dropped.
    sqlx::raw_sql("create schema rebuild_posts_retired; create table rebuild_posts_retired.posts (id uuid)")
        .execute(&stack.db.admin)
        .await
        .unwrap();
    // A view follows its table by identity: swapped, it would keep showing the retired rows.
    sqlx::query("create view public.post_titles as select title from read.posts")
        .execute(&stack.db.admin)
        .await
        .unwrap();

    let refused = stack.db.rebuild(&[]).await.expect_err("a view over live must refuse the swap");
    assert!(refused.contains("views depend on the live tables") && refused.contains("post_titles"), "{refused}");
    assert_eq!(live_posts(&stack.db).await, posts, "live kept");
    let titles: i64 =
        sqlx::query_scalar("select count(*) from public.post_titles").fetch_one(&stack.db.admin).await.unwrap();
    assert_eq!(titles, posts, "the view still reads live");
    assert!(!stack.db.schema_exists("rebuild_posts").await, "the refused copy was cleaned up");
    assert!(!stack.db.schema_exists("rebuild_posts_retired").await, "the leftover was dropped first");

    sqlx::query("drop view public.post_titles").execute(&stack.db.admin).await.unwrap();
    let report = stack.db.rebuild(&[]).await.unwrap_or_else(|e| panic!("{e}"));
    for t in report["tables"].as_array().unwrap() {
        assert_eq!((&t["live_rows"], &t["live_checksum"]), (&t["rebuilt_rows"], &t["rebuilt_checksum"]), "{t}");
    }
    assert_eq!(live_posts(&stack.db).await, posts);
    for schema in ["rebuild_posts", "rebuild_posts_retired"] {
        assert!(!stack.db.schema_exists(schema).await, "{schema} is gone after the swap");
    }
    let listed: serde_json::Value = stack.list_posts("?limit=50").await.json().await.unwrap();
    assert_eq!(listed["posts"].as_array().map(Vec::len), Some(12), "readers get the swapped tables: {listed}");
    stack.stop().await;
}

#[tokio::test]
async fn a_rebuild_without_redis_still_swaps_and_says_on_stderr_that_cached_posts_wait_for_their_ttl() {
    let stack = Stack::start(TestDb::fresh().await).await;
    stack.db.seed(3).await;
    stack.db.wait_projected().await;
    let redis_down = format!("redis://127.0.0.1:{}", pressroom_tests::free_port());
    let out = stack
        .db
        .ops(&["projections", "rebuild", "posts", "--json"])
        .env("REDIS_URL", &redis_down)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report alone");
    assert_eq!(report["redis_namespace"], serde_json::Value::Null);
    assert!(stderr.contains("WARN") && stderr.contains("Redis namespace not bumped"), "{stderr}");
    stack.stop().await;
}
