//! Operator rebuilds over the real `pressroom-ops`: readers hitting the query API throughout, a rebuild
//! that differs from live, the live tables the swap retires, and what refuses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use serde_json::Value;
use shared::domain::role::Role;

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
    pressroom_tests::assert_tables_identical(&report);
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

/// Every published post through the list, in order, read at `position` or later.
async fn walk(stack: &Stack, position: i64) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = stack
            .http
            .get(format!("{}/v1/posts?limit=100&cursor={cursor}", stack.query))
            .header("pressroom-min-position", position)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.extend(page["posts"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return all,
        }
    }
}

#[tokio::test]
async fn rebuilding_posts_while_readers_hit_the_query_api_never_fails_or_empties_a_read_and_keeps_the_content() {
    let stack = Stack::start(TestDb::fresh().await).await;
    stack.db.seed(1500).await;
    stack.db.wait_projected().await;
    let at = stack.db.head().await;
    let before = walk(&stack, at).await;
    assert_eq!(before.len(), 1500);
    let slugs: Arc<Vec<String>> =
        Arc::new(before.iter().step_by(50).map(|p| p["slug"].as_str().unwrap().to_string()).collect());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (http, base, slugs) = (stack.http.clone(), stack.query.clone(), slugs.clone());
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        readers.push(tokio::spawn(async move {
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (url, list) = match i % 3 {
                    0 => (format!("{base}/v1/posts?limit=20"), true),
                    1 => (format!("{base}/v1/posts/{}", slugs[i % slugs.len()]), false),
                    // Straight from the database, past every cache.
                    _ => (
                        format!(
                            "{base}/v1/posts?limit=5&cursor={}",
                            "9999999999999999.00000000000000000000000000000000"
                        ),
                        true,
                    ),
                };
                let mut req = http.get(&url);
                if i % 3 == 2 {
                    req = req.header("pressroom-min-position", at);
                }
                let res = req.send().await;
                let failure = match res {
                    Err(e) => Some(format!("{url}: {e}")),
                    Ok(res) if !res.status().is_success() => Some(format!("{url}: {}", res.status())),
                    Ok(res) => {
                        let body: Value = res.json().await.unwrap_or(Value::Null);
                        (list && body["posts"].as_array().is_none_or(|p| p.is_empty()))
                            .then(|| format!("{url}: empty list"))
                    }
                };
                reads.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = failure {
                    failures.lock().unwrap().push(f);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = stack.db.rebuild(&[]).await.unwrap_or_else(|e| panic!("rebuild failed: {e}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failed reads, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert!(reads.load(Ordering::Relaxed) > 100, "the readers barely ran");
    pressroom_tests::assert_tables_identical(&report);
    assert!(report["folded_events"].as_u64().unwrap() >= 3000);
    assert_eq!(walk(&stack, at).await, before, "the content changed across the swap");
    // The rebuilt tables take writes: the projector carries on.
    let (_, token) = stack.token(Role::Author).await;
    let (_, slug, _) = stack.published_post(&token, "After the rebuild").await;
    let started = tokio::time::Instant::now();
    while sqlx::query_scalar::<_, i64>("select count(*) from read.posts where slug = $1")
        .bind(&slug)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap()
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(10), "the projector stopped after the swap");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_rebuild_that_differs_from_live_is_aborted_and_live_kept_unless_changes_are_accepted() {
    let stack = Stack::start(TestDb::fresh().await).await;
    stack.db.seed(40).await;
    stack.db.wait_projected().await;
    let slug: String = sqlx::query_scalar("select slug from read.posts order by slug limit 1")
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    let title: String = sqlx::query_scalar("select title from read.posts where slug = $1")
        .bind(&slug)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    sqlx::query("update read.posts set title = 'Tampered' where slug = $1")
        .bind(&slug)
        .execute(&stack.db.admin)
        .await
        .unwrap();

    let refused = stack.db.rebuild(&[]).await.expect_err("a differing rebuild must not swap");
    assert!(refused.contains("differs from live") && refused.contains("posts"), "{refused}");
    let kept: String = sqlx::query_scalar("select title from read.posts where slug = $1")
        .bind(&slug)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    assert_eq!(kept, "Tampered", "live was kept as it was");
    let shadow = stack.db.schema_exists("rebuild_posts").await;
    assert!(!shadow, "the aborted copy was cleaned up");

    let report = stack.db.rebuild(&["--accept-changes"]).await.unwrap_or_else(|e| panic!("{e}"));
    let posts = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "posts").unwrap();
    assert_ne!(posts["live_checksum"], posts["rebuilt_checksum"]);
    let repaired: String = sqlx::query_scalar("select title from read.posts where slug = $1")
        .bind(&slug)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    assert_eq!(repaired, title);
    // The repaired post's vector was computed afresh, the other 39 taken from live: all are their text's.
    assert_eq!(stack.db.stale_search_vectors().await, 0);
    let position = stack.db.head().await;
    let served: Value = stack.get_post(&slug, Some(position)).await.json().await.unwrap();
    assert_eq!(served["title"], title.as_str());
    let found: Value = stack.query_at("/v1/search?q=tampered", position).await.json().await.unwrap();
    assert_eq!(found["results"], serde_json::json!([]), "the tampered title is no longer searched");
    stack.stop().await;
}
