//! The projector under crashes and over the real binaries: kill -9 during appends, standby takeover, one
//! batch of every transition equal to a rebuild, and what it computes or writes only when it must.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

#[tokio::test]
async fn killing_the_projector_five_times_during_20000_appends_leaves_rows_a_rebuild_reproduces_and_redis_at_row_positions(
) {
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (editor, token) = stack.token(Role::Editor).await;
    for i in 0..5 {
        stack.published_post(&token, &format!("Kept through crashes {i}")).await;
    }
    // ~20,000 events from four concurrent writers while the projector is killed five times.
    let seeding = stack.db.ops(&["seed", "--posts", "10000", "--authors", "4", "--concurrency", "4"]).output();
    let seeding = tokio::spawn(seeding);
    let mut standbys = Vec::new();
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // Side effects that touch many rows and Redis entries at once: a rename, an edit.
        let res = stack
            .command(
                Method::PATCH,
                &format!("/v1/authors/{editor}"),
                Some(&token),
                Some(json!({"name": format!("Editor, take {i}")})),
                &[],
            )
            .await;
        assert_eq!(res.status(), 200);
        if i == 0 {
            stack.kill_projector().await;
        } else {
            let mut leader: tokio::process::Child = standbys.pop().unwrap();
            leader.kill().await.unwrap();
        }
        standbys.push(stack.spawn_projector());
    }
    let out = seeding.await.unwrap().unwrap();
    assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stack.db.head().await >= 20_000);
    stack.db.wait_projected().await;

    // Every Redis entry carries its row's position (entries lost in a crash are redone by the next leader).
    let client = redis::Client::open(stack.db.redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let ns: Option<i64> = redis::cmd("GET").arg(format!("{}:ns", stack.db.name)).query_async(&mut redis).await.unwrap();
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("select slug, last_position, status from read.posts").fetch_all(&stack.db.admin).await.unwrap();
    let mut mismatches = Vec::new();
    for attempt in 0..50 {
        mismatches.clear();
        let mut pipe = redis::pipe();
        for (slug, _, _) in &rows {
            pipe.cmd("HGET").arg(format!("{}:{}:post:slug:{slug}", stack.db.name, ns.unwrap_or(0))).arg("pos");
        }
        let positions: Vec<Option<i64>> = pipe.query_async(&mut redis).await.unwrap();
        for ((slug, row_position, status), cached) in rows.iter().zip(positions) {
            if cached.is_some_and(|p| p != *row_position) {
                mismatches.push(format!("{slug} ({status}): row {row_position}, Redis {cached:?}"));
            }
        }
        let published = rows.iter().filter(|r| r.2 == "published").count();
        assert!(published >= 10_000, "{published} published rows");
        if mismatches.is_empty() {
            break;
        }
        assert!(attempt < 49, "{} Redis entries disagree with their rows: {:?}", mismatches.len(), &mismatches[..5]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The rows equal a from-scratch rebuild: the rebuild verifies counts and checksums per table.
    let report = stack.db.rebuild(&[]).await.unwrap_or_else(|e| panic!("rebuild disagreed with live: {e}"));
    pressroom_tests::assert_tables_identical(&report);
    let renamed: i64 = sqlx::query_scalar(
        "select count(*) from read.posts where author_id = $1 and author->>'name' = 'Editor, take 4'",
    )
    .bind(editor)
    .fetch_one(&stack.db.admin)
    .await
    .unwrap();
    assert_eq!(renamed, 5);
    for mut p in standbys {
        let _ = p.kill().await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_standby_projector_takes_over_within_seconds_when_the_leader_is_killed() {
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, slug, position) = stack.published_post(&token, "Before the crash").await;
    assert_eq!(stack.get_post(&slug, Some(position)).await.status(), 200);
    let port = pressroom_tests::free_port();
    let mut standby = stack.spawn_projector_on(port);
    // Kill the leader only once the second process is up and standing by for `posts`.
    for attempt in 0.. {
        let status = stack.http.get(format!("http://127.0.0.1:{port}/status")).send().await;
        let state = match status {
            Ok(res) => res.json::<Value>().await.unwrap_or(Value::Null)["projections"]["posts"]["state"].clone(),
            Err(_) => Value::Null,
        };
        if state == "standby" {
            break;
        }
        assert!(attempt < 300, "the second projector never stood by (state {state})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.kill_projector().await;
    let killed = tokio::time::Instant::now();
    let (_, slug, position) = stack.published_post(&token, "After the crash").await;
    loop {
        let projected: i64 =
            sqlx::query_scalar("select count(*) from read.posts where slug = $1 and status = 'published'")
                .bind(&slug)
                .fetch_one(&stack.db.admin)
                .await
                .unwrap();
        if projected == 1 {
            break;
        }
        // It retries the lock every second; the bound leaves room for a loaded machine.
        assert!(killed.elapsed() < Duration::from_secs(10), "no projector took over within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = stack.get_post(&slug, Some(position)).await;
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["pressroom-read-source"], "events", "the standby projected it");
    let _ = standby.kill().await;
    stack.stop().await;
}

/// Sends a command that must succeed; returns its body.
async fn ok(
    stack: &Stack,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    if_match: Option<i64>,
) -> Value {
    let headers: Vec<(&str, String)> = if_match.map(|v| ("if-match", format!("\"{v}\""))).into_iter().collect();
    let res = stack.command(method.clone(), path, Some(token), body, &headers).await;
    assert!(res.status().is_success(), "{method} {path}: {}", res.status());
    res.json().await.unwrap()
}

#[tokio::test]
async fn every_post_transition_and_an_author_rename_applied_in_one_batch_equal_a_rebuild() {
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (editor, token) = stack.token(Role::Editor).await;
    stack.db.wait_projected().await;
    // With the projector down, everything below lands in one batch when it comes back.
    stack.kill_projector().await;
    let post =
        |title: &str, tags: &[&str]| json!({"title": title, "body_markdown": format!("{title} body"), "tags": tags});
    let create = |body: Value| ok(&stack, Method::POST, "/v1/posts", &token, Some(body), None);
    let one = create(post("Batch one", &["Rust", "Databases"])).await["id"].as_str().unwrap().to_string();
    ok(&stack, Method::POST, &format!("/v1/posts/{one}/publish"), &token, None, None).await;
    let edit = json!({"tags": ["Rust", "Operations"], "slug": "batch-one-renamed", "body_markdown": "new body"});
    ok(&stack, Method::PATCH, &format!("/v1/posts/{one}"), &token, Some(edit), Some(2)).await;
    ok(&stack, Method::POST, &format!("/v1/posts/{one}/unpublish"), &token, None, None).await;
    ok(&stack, Method::POST, &format!("/v1/posts/{one}/publish"), &token, None, None).await;
    let two = create(post("Batch two", &["Databases"])).await["id"].as_str().unwrap().to_string();
    ok(&stack, Method::POST, &format!("/v1/posts/{two}/publish"), &token, None, None).await;
    ok(&stack, Method::DELETE, &format!("/v1/posts/{two}"), &token, None, None).await;
    let rename = json!({"name": "Renamed Mid-Batch"});
    ok(&stack, Method::PATCH, &format!("/v1/authors/{editor}"), &token, Some(rename), None).await;
    let three = create(post("Batch three", &["Databases"])).await["id"].as_str().unwrap().to_string();
    ok(&stack, Method::POST, &format!("/v1/posts/{three}/publish"), &token, None, None).await;
    let four = create(post("Batch four", &["Fleeting"])).await["id"].as_str().unwrap().to_string();
    ok(&stack, Method::POST, &format!("/v1/posts/{four}/publish"), &token, None, None).await;
    ok(&stack, Method::PATCH, &format!("/v1/posts/{four}"), &token, Some(json!({"tags": []})), Some(2)).await;
    let _projector = stack.spawn_projector();
    stack.db.wait_projected().await;

    let tags: Vec<(String, i32)> = sqlx::query_as("select slug, post_count from read.tags order by slug")
        .fetch_all(&stack.db.admin)
        .await
        .unwrap();
    let expected = [("databases", 1), ("fleeting", 0), ("operations", 1), ("rust", 1)];
    assert_eq!(tags, expected.map(|(s, n)| (s.to_string(), n)).to_vec());
    let (count, name): (i32, String) = sqlx::query_as("select post_count, name from read.post_authors where id = $1")
        .bind(editor)
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    assert_eq!((count, name.as_str()), (3, "Renamed Mid-Batch"));
    let names: Vec<String> = sqlx::query_scalar("select author->>'name' from read.posts where author_id = $1")
        .bind(editor)
        .fetch_all(&stack.db.admin)
        .await
        .unwrap();
    assert_eq!(names, vec!["Renamed Mid-Batch"; 4]);
    // Reads without a token trail the primary's checkpoint by the replica's replay and the Redis
    // write-through: they show the batch within moments.
    for (slug, want, what) in [
        ("batch-one", 301, "the old slug redirects"),
        ("batch-one-renamed", 200, "the new slug serves the post"),
        ("batch-two", 404, "a deleted post is gone"),
    ] {
        let mut got = 0;
        for _ in 0..100 {
            got = stack.get_post(slug, None).await.status().as_u16();
            if got == want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(got, want, "{what}");
    }
    let res = stack.get_post("batch-one-renamed", None).await;
    assert!(res.json::<Value>().await.unwrap()["body_html"].as_str().unwrap().contains("new body"));

    assert_eq!(stack.db.stale_search_vectors().await, 0, "live vectors follow the text");
    let report = stack.db.rebuild(&[]).await.unwrap_or_else(|e| panic!("rebuild disagreed with live: {e}"));
    pressroom_tests::assert_tables_identical(&report);
    assert_eq!(stack.db.stale_search_vectors().await, 0, "the rebuilt vectors are the text's");
    stack.stop().await;
}

/// The Redis entry of `slug` ((tx, pos) as stored) and the list generation, as the projector left them.
async fn redis_state(stack: &Stack, slug: &str) -> (Option<i64>, Option<i64>) {
    let client = redis::Client::open(stack.db.redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = &stack.db.name;
    let ns: Option<i64> = redis::cmd("GET").arg(format!("{prefix}:ns")).query_async(&mut redis).await.unwrap();
    let key = format!("{prefix}:{}:post:slug:{slug}", ns.unwrap_or(0));
    let pos: Option<i64> = redis::cmd("HGET").arg(key).arg("pos").query_async(&mut redis).await.unwrap();
    let generation: Option<i64> =
        redis::cmd("GET").arg(format!("{prefix}:lists:generation")).query_async(&mut redis).await.unwrap();
    (pos, generation)
}

async fn has_search_vector(db: &TestDb, id: &str) -> bool {
    sqlx::query_scalar("select search is not null from read.posts where id = $1::uuid")
        .bind(id)
        .fetch_one(&db.admin)
        .await
        .unwrap()
}

async fn slug_history(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar("select slug from read.slug_history order by slug").fetch_all(&db.admin).await.unwrap()
}

#[tokio::test]
async fn the_search_vector_is_computed_only_when_the_text_changes_not_on_a_tags_only_edit() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (id, _, _) =
        stack.publish_post(&token, json!({"title": "Kept vector", "body_markdown": "original words"})).await;
    stack.db.wait_projected().await;
    let vector = || async {
        sqlx::query_scalar::<_, String>("select search::text from read.posts where id = $1::uuid")
            .bind(&id)
            .fetch_one(&stack.db.admin)
            .await
            .unwrap()
    };
    // A marker no text makes, written past the trigger: it survives exactly as long as nothing recomputes.
    let mark = "alter table read.posts disable trigger posts_search;
                update read.posts set search = 'marker'::tsvector where id = $1::uuid;
                alter table read.posts enable trigger posts_search;";
    let mut tx = stack.db.admin.begin().await.unwrap();
    for statement in mark.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(statement).bind(&id).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();

    let edit = |version: i64, body: Value| {
        let (stack, token, id) = (&stack, &token, &id);
        async move {
            let res = stack.patch_post(token, id, Some(&format!("\"{version}\"")), body).await;
            assert!(res.status().is_success(), "{}", res.status());
        }
    };
    edit(2, json!({"tags": ["Kept"]})).await;
    stack.db.wait_projected().await;
    assert_eq!(vector().await, "'marker'", "a tags-only edit (an upsert of unchanged text) reuses the vector");
    edit(3, json!({"body_markdown": "different words"})).await;
    stack.db.wait_projected().await;
    assert!(vector().await.contains("'differ'"), "a body edit computes it: {}", vector().await);
    assert_eq!(stack.db.stale_search_vectors().await, 0);
    stack.stop().await;
}

#[tokio::test]
async fn a_new_draft_costs_no_redis_write_list_generation_or_search_vector_until_it_is_published() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    stack.published_post(&token, "Already out").await;
    stack.db.wait_projected().await;
    let (_, generation_before) = redis_state(&stack, "already-out").await;
    assert!(generation_before.is_some(), "publishing bumped the list generation");

    let body = json!({"title": "Quiet draft", "body_markdown": "Searchable words about replication"});
    let created: Value = stack.create_post(&token, body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    stack.db.wait_projected().await;
    assert!(!has_search_vector(&stack.db, &id).await, "a draft has no search vector");
    assert_eq!(redis_state(&stack, "quiet-draft").await, (None, generation_before), "a draft touches no cache");
    assert_eq!(stack.get_post("quiet-draft", Some(created["position"].as_i64().unwrap())).await.status(), 404);

    let published = stack.publish(&token, &id).await;
    assert_eq!(published.status(), 200);
    let at: i64 = published.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    stack.db.wait_projected().await;
    assert!(has_search_vector(&stack.db, &id).await, "a published post has its search vector");
    let (pos, generation) = redis_state(&stack, "quiet-draft").await;
    assert_eq!(pos, Some(at), "the published post is written through at its position");
    assert!(generation > generation_before, "publishing retires cached list pages");
    let found: Value = stack.query_at("/v1/search?q=replication", at).await.json().await.unwrap();
    assert_eq!(found["results"][0]["title"], "Quiet draft", "{found}");
    stack.stop().await;
}

#[tokio::test]
async fn the_slug_history_keeps_only_slugs_a_post_left_even_when_it_returns_to_one_and_a_rebuild_agrees() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Editor).await;
    let (id, slug, _) = stack.published_post(&token, "Round trip").await;
    stack.db.wait_projected().await;
    assert!(slug_history(&stack.db).await.is_empty(), "a post's current slug is not history");
    let path = format!("/v1/posts/{id}");
    ok(&stack, Method::PATCH, &path, &token, Some(json!({"slug": "round-trip-away"})), Some(2)).await;
    stack.db.wait_projected().await;
    assert_eq!(slug_history(&stack.db).await, vec![slug.clone()]);
    let back = ok(&stack, Method::PATCH, &path, &token, Some(json!({"slug": slug})), Some(3)).await;
    stack.db.wait_projected().await;
    assert_eq!(
        slug_history(&stack.db).await,
        vec!["round-trip-away".to_string()],
        "back on its first slug, the other is history"
    );
    let at = back["position"].as_i64().unwrap();
    let moved = stack.get_post("round-trip-away", Some(at)).await;
    assert_eq!(moved.status(), 301);
    assert_eq!(moved.headers()["location"], format!("/v1/posts/{slug}"));
    assert_eq!(stack.get_post(&slug, Some(at)).await.status(), 200);

    assert_eq!(stack.db.stale_search_vectors().await, 0, "live vectors follow the text");
    let report = stack.db.rebuild(&[]).await.unwrap_or_else(|e| panic!("rebuild disagreed with live: {e}"));
    pressroom_tests::assert_tables_identical(&report);
    assert_eq!(stack.db.stale_search_vectors().await, 0, "the rebuilt vectors are the text's");
    stack.stop().await;
}
