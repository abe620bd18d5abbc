//! The author write API over HTTP against the running binary: permissions, optimistic concurrency,
//! idempotency, bad input, token forgery and rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use futures::future::join_all;
use pressroom_tests::{assert_problem, Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

const ROLES: [Option<Role>; 5] =
    [Some(Role::Admin), Some(Role::Editor), Some(Role::Author), Some(Role::Contributor), None];

#[tokio::test]
async fn permission_matrix_every_route_by_every_role_and_anonymous() {
    let stack = Stack::start_with(
        TestDb::fresh().await,
        &[
            ("PRESSROOM_WEBHOOK_ALLOW_PRIVATE", "1"),
            ("PRESSROOM_RATE_LIMIT_LOGIN", "0"),
            ("PRESSROOM_RATE_LIMIT_COMMENTS", "0"),
        ],
    )
    .await;
    let (owner_id, owner) = stack.token(Role::Author).await;
    let mut tokens = Vec::new();
    for role in ROLES {
        tokens.push(match role {
            Some(r) => {
                let (id, t) = stack.token(r).await;
                Some((id, t))
            }
            None => None,
        });
    }
    let (_, published_slug_token) = (0, owner.clone());
    let (published_id, _, _) = stack.published_post(&published_slug_token, "Commented on").await;

    // Expected statuses in ROLES order: admin, editor, author, contributor, anonymous.
    type Case = (&'static str, [u16; 5]);
    let cases: Vec<Case> = vec![
        ("create post", [201, 201, 201, 201, 401]),
        ("edit another's draft", [200, 200, 403, 403, 401]),
        ("publish another's draft", [200, 200, 403, 403, 401]),
        ("publish own draft", [200, 200, 200, 403, 401]),
        ("unpublish another's post", [200, 200, 403, 403, 401]),
        ("delete another's draft", [200, 200, 403, 403, 401]),
        ("restore another's deleted post", [200, 200, 403, 403, 401]),
        ("register an author", [201, 403, 403, 403, 401]),
        ("edit another author", [200, 403, 403, 403, 401]),
        ("edit own profile", [200, 200, 200, 200, 401]),
        ("change own role to admin", [200, 403, 403, 403, 401]),
        ("deactivate an author", [200, 403, 403, 403, 401]),
        ("comment on a published post", [202, 202, 202, 202, 202]),
        ("approve a comment", [200, 200, 403, 403, 401]),
        ("reject a comment", [200, 200, 403, 403, 401]),
        ("create a webhook", [201, 403, 403, 403, 401]),
        ("list webhooks", [200, 403, 403, 403, 401]),
        ("delete a webhook", [204, 403, 403, 403, 401]),
    ];
    let admin = tokens[0].clone().unwrap().1;
    let mut failures = Vec::new();
    for (name, expected) in &cases {
        for (i, who) in tokens.iter().enumerate() {
            let token = who.as_ref().map(|(_, t)| t.as_str());
            let me = who.as_ref().map(|(id, _)| id.to_string());
            let (method, path, body, if_match): (Method, String, Option<Value>, Option<String>) = match *name {
                "create post" => {
                    (Method::POST, "/v1/posts".into(), Some(json!({"title": "Matrix", "body_markdown": "b"})), None)
                }
                "edit another's draft" => {
                    let id = stack.draft(&owner, "Theirs").await;
                    (Method::PATCH, format!("/v1/posts/{id}"), Some(json!({"title": "Mine now"})), Some("\"1\"".into()))
                }
                "publish another's draft" => {
                    let id = stack.draft(&owner, "Theirs").await;
                    (Method::POST, format!("/v1/posts/{id}/publish"), None, None)
                }
                "publish own draft" => {
                    let id = match token {
                        Some(t) => stack.draft(t, "Mine").await,
                        None => stack.draft(&owner, "Mine").await,
                    };
                    (Method::POST, format!("/v1/posts/{id}/publish"), None, None)
                }
                "unpublish another's post" => {
                    let (id, _, _) = stack.published_post(&owner, "Theirs live").await;
                    (Method::POST, format!("/v1/posts/{id}/unpublish"), None, None)
                }
                "delete another's draft" => {
                    let id = stack.draft(&owner, "Theirs").await;
                    (Method::DELETE, format!("/v1/posts/{id}"), None, None)
                }
                "restore another's deleted post" => {
                    let id = stack.draft(&owner, "Theirs").await;
                    let r = stack.command(Method::DELETE, &format!("/v1/posts/{id}"), Some(&owner), None, &[]).await;
                    assert_eq!(r.status(), 200);
                    (Method::POST, format!("/v1/posts/{id}/restore"), None, None)
                }
                "register an author" => {
                    let email = format!("new-{}@test.local", uuid::Uuid::now_v7().simple());
                    let body = json!({"email": email, "name": "New", "password": "long enough pw", "role": "author"});
                    (Method::POST, "/v1/authors".into(), Some(body), None)
                }
                "edit another author" => {
                    (Method::PATCH, format!("/v1/authors/{owner_id}"), Some(json!({"bio": "edited"})), None)
                }
                "edit own profile" => {
                    let target = me.clone().unwrap_or_else(|| owner_id.to_string());
                    (
                        Method::PATCH,
                        format!("/v1/authors/{target}"),
                        Some(json!({"name": format!("Renamed {i}")})),
                        None,
                    )
                }
                "change own role to admin" => {
                    let target = me.clone().unwrap_or_else(|| owner_id.to_string());
                    (Method::PATCH, format!("/v1/authors/{target}"), Some(json!({"role": "admin"})), None)
                }
                "deactivate an author" => {
                    let (victim, _, _) = stack.db.author(Role::Contributor).await;
                    (Method::POST, format!("/v1/authors/{victim}/deactivate"), None, None)
                }
                "comment on a published post" => (
                    Method::POST,
                    format!("/v1/posts/{published_id}/comments"),
                    Some(json!({"author_name": "Reader", "body": "Nice"})),
                    None,
                ),
                "approve a comment" | "reject a comment" => {
                    let c = stack
                        .command(
                            Method::POST,
                            &format!("/v1/posts/{published_id}/comments"),
                            None,
                            Some(json!({"author_name": "R", "body": "x"})),
                            &[],
                        )
                        .await;
                    let cid = c.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
                    let verb = if *name == "approve a comment" { "approve" } else { "reject" };
                    (Method::POST, format!("/v1/comments/{cid}/{verb}"), None, None)
                }
                "create a webhook" => (
                    Method::POST,
                    "/v1/webhooks".into(),
                    Some(
                        json!({"url": "http://127.0.0.1:9/hook", "events": ["PostPublished"], "secret": "0123456789abcdef"}),
                    ),
                    None,
                ),
                "list webhooks" => (Method::GET, "/v1/webhooks".into(), None, None),
                "delete a webhook" => {
                    let w = stack
                        .command(
                            Method::POST,
                            "/v1/webhooks",
                            Some(&admin),
                            Some(json!({"url": "http://127.0.0.1:9/h", "events": ["PostDeleted"], "secret": "0123456789abcdef"})),
                            &[],
                        )
                        .await;
                    let wid = w.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
                    (Method::DELETE, format!("/v1/webhooks/{wid}"), None, None)
                }
                other => panic!("no setup for {other}"),
            };
            let headers: Vec<(&str, String)> = if_match.into_iter().map(|v| ("if-match", v)).collect();
            let res = stack.command(method, &path, token, body, &headers).await;
            let got = res.status().as_u16();
            if got != expected[i] {
                let role = ROLES[i].map_or("anonymous", |r| r.as_str());
                failures.push(format!(
                    "{name} as {role}: expected {}, got {got}: {}",
                    expected[i],
                    res.text().await.unwrap_or_default()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "permission matrix mismatches:\n{}", failures.join("\n"));
    stack.stop().await;
}

#[tokio::test]
async fn two_concurrent_patches_with_the_same_if_match_one_wins_and_the_stream_gets_one_event() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    for round in 0..5 {
        let id = stack.draft(&token, &format!("Race {round}")).await;
        let (a, b) = tokio::join!(
            stack.patch_post(&token, &id, Some("\"1\""), json!({"title": "A"})),
            stack.patch_post(&token, &id, Some("\"1\""), json!({"title": "B"}))
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 412], "round {round}");
        let loser = if a.status() == 412 { a } else { b };
        assert_eq!(loser.json::<Value>().await.unwrap()["current_version"], 2);
        let events: i64 = sqlx::query_scalar("select count(*) from events where stream_id = $1::uuid")
            .bind(&id)
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
        assert_eq!(events, 2, "draft + exactly one edit");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_retries_with_one_idempotency_key_append_once_and_replay_the_same_reply() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (author, token) = stack.token(Role::Author).await;
    let body = json!({"title": "Exactly once", "body_markdown": "retry me"});
    let key = ("idempotency-key", "create-exactly-once".to_string());
    let keys = [key.clone()];
    let responses =
        join_all((0..50).map(|_| stack.command(Method::POST, "/v1/posts", Some(&token), Some(body.clone()), &keys)))
            .await;
    let mut bodies = HashSet::new();
    let mut created = 0;
    for res in responses {
        match res.status().as_u16() {
            201 => {
                if res.headers().get("idempotent-replayed").is_none() {
                    created += 1;
                }
                bodies.insert(res.text().await.unwrap());
            }
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 1, "exactly one original 201");
    assert_eq!(bodies.len(), 1, "replays carry the original body");
    let drafted: i64 = sqlx::query_scalar(
        "select count(*) from events where event_type = 'PostDrafted' and payload->>'author_id' = $1",
    )
    .bind(author.to_string())
    .fetch_one(&stack.db.admin)
    .await
    .unwrap();
    assert_eq!(drafted, 1, "one event appended");

    let again =
        stack.command(Method::POST, "/v1/posts", Some(&token), Some(body.clone()), std::slice::from_ref(&key)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert!(again.headers().contains_key("pressroom-position"));
    assert!(bodies.contains(&again.text().await.unwrap()), "identical stored reply");

    let other = stack
        .command(Method::POST, "/v1/posts", Some(&token), Some(json!({"title": "Other", "body_markdown": "x"})), &[key])
        .await;
    assert_problem(other, 422).await;
    stack.stop().await;
}

#[tokio::test]
async fn concurrent_drafts_share_statements_and_forty_with_one_title_each_get_their_own_slug() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (author, token) = stack.token(Role::Author).await;
    let body = json!({"title": "Crowded title", "body_markdown": "x"});
    let responses =
        join_all((0..40).map(|_| stack.command(Method::POST, "/v1/posts", Some(&token), Some(body.clone()), &[])))
            .await;
    let mut slugs = HashSet::new();
    for res in responses {
        assert_eq!(res.status(), 201);
        let created: serde_json::Value = res.json().await.unwrap();
        assert!(slugs.insert(created["slug"].as_str().unwrap().to_string()), "slug given twice: {created}");
    }
    let expected: HashSet<String> =
        std::iter::once("crowded-title".to_string()).chain((2..=40).map(|n| format!("crowded-title-{n}"))).collect();
    assert_eq!(slugs, expected);
    // Drafts that arrive together are appended by one statement: one transaction holds several.
    let distinct = (0..40).map(|i| json!({"title": format!("Own title {i}"), "body_markdown": "x"}));
    let responses =
        join_all(distinct.map(|body| stack.command(Method::POST, "/v1/posts", Some(&token), Some(body), &[]))).await;
    assert!(responses.iter().all(|r| r.status() == 201));
    let largest: i64 = sqlx::query_scalar(
        "select max(n) from (select count(*) as n from events where event_type = 'PostDrafted'
                             and payload->>'author_id' = $1 group by transaction_id) t",
    )
    .bind(author.to_string())
    .fetch_one(&stack.db.admin)
    .await
    .unwrap();
    assert!(largest >= 2, "no two drafts shared a statement");
    stack.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_right_status_as_problem_json() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Admin).await;
    let id = stack.draft(&token, "Target").await;
    let raw = |path: &str, ctype: &str, body: String| {
        stack
            .http
            .post(format!("{}{path}", stack.command))
            .bearer_auth(&token)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    assert_problem(raw("/v1/posts", "application/json", "{\"title\": ".into()).await.unwrap(), 400).await;
    assert_problem(raw("/v1/posts", "text/plain", "{}".into()).await.unwrap(), 415).await;
    assert_problem(
        raw("/v1/posts", "application/json", format!("{{\"title\":\"{}\"}}", "x".repeat(1_100_000))).await.unwrap(),
        413,
    )
    .await;

    let long_body = "y".repeat(512 * 1024 + 1);
    let tags: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"title": "ok", "body_markdown": "b", "surprise": 1}), "surprise"),
        (json!({"title": "", "body_markdown": "b"}), "title"),
        (json!({"title": "x".repeat(201), "body_markdown": "b"}), "title"),
        (json!({"title": "ok", "body_markdown": long_body}), "body_markdown"),
        (json!({"title": "ok", "body_markdown": "b", "tags": tags}), "tags"),
        (json!({"title": "ok", "body_markdown": "b", "cover_image_url": "javascript:alert(1)"}), "cover_image_url"),
        (json!({"title": "ok", "body_markdown": "b", "slug": "!!!"}), "slug"),
        (json!({"title": "ok", "body_markdown": "b", "slug": "word ".repeat(20)}), "slug"),
        (json!({"title": 5, "body_markdown": "b"}), "title"),
    ];
    for (body, field) in cases {
        let res = stack.create_post(&token, body.clone()).await;
        let problem = assert_problem(res, 422).await;
        let fields: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.iter().any(|f| f.contains(field)), "{body} → {problem}");
    }
    let bad_author = json!({"email": "not-an-email", "name": "N", "password": "long enough", "role": "author"});
    assert_problem(stack.command(Method::POST, "/v1/authors", Some(&token), Some(bad_author), &[]).await, 422).await;
    let bad_role = json!({"email": "a@b.test", "name": "N", "password": "long enough", "role": "overlord"});
    assert_problem(stack.command(Method::POST, "/v1/authors", Some(&token), Some(bad_role), &[]).await, 422).await;

    let unknown = uuid::Uuid::now_v7();
    assert_problem(stack.publish(&token, &unknown.to_string()).await, 404).await;
    assert_problem(stack.publish(&token, "not-a-uuid").await, 404).await;
    assert_problem(stack.patch_post(&token, &id, None, json!({"title": "x"})).await, 428).await;
    assert_problem(stack.patch_post(&token, &id, Some("\"7\""), json!({"title": "x"})).await, 412).await;
    assert_problem(
        stack.command(Method::DELETE, "/v1/posts/0190f0f0-0000-7000-8000-000000000000", Some(&token), None, &[]).await,
        404,
    )
    .await;
    let deleted = stack.command(Method::DELETE, &format!("/v1/posts/{id}"), Some(&token), None, &[]).await;
    assert_eq!(deleted.status(), 200);
    let problem = assert_problem(stack.publish(&token, &id).await, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("deleted"), "{problem}");
    assert_problem(stack.command(Method::GET, "/v1/nowhere", None, None, &[]).await, 404).await;
    stack.stop().await;
}

#[tokio::test]
async fn the_database_being_unreachable_is_a_503_with_retry_after() {
    let db = TestDb::fresh().await;
    let closed = pressroom_tests::free_port();
    let url = format!("postgres://pressroom_app@127.0.0.1:{closed}/x");
    let stack = Stack::start_with(db, &[]).await;
    // A second command API whose primary is unreachable.
    let port = pressroom_tests::free_port();
    let _child = tokio::process::Command::new(pressroom_tests::bin("pressroom-command-api"))
        .env("DATABASE_PRIMARY_URL", &url)
        .env("PRESSROOM_JWT_SECRET", "test-secret-not-for-production-use")
        .env("PRESSROOM_COMMAND_ADDR", format!("127.0.0.1:{port}"))
        .env("REDIS_URL", &stack.db.redis_url)
        .env("PRESSROOM_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut res = None;
    for _ in 0..100 {
        if let Ok(r) = stack
            .http
            .post(format!("{base}/v1/session"))
            .json(&json!({"email": "a@b.test", "password": "whatever1"}))
            .send()
            .await
        {
            res = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let res = res.expect("command API answered");
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503).await;
    let ready = stack.http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    stack.stop().await;
}

#[tokio::test]
async fn forged_unsigned_expired_and_wrong_audience_tokens_are_401() {
    use secrecy::SecretString;
    use shared::http::auth::{JwtKeys, DEFAULT_SESSION_TTL};
    let stack = Stack::start(TestDb::fresh().await).await;
    let (id, _) = stack.token(Role::Admin).await;
    let right =
        JwtKeys::new(&SecretString::from("test-secret-not-for-production-use".to_string()), DEFAULT_SESSION_TTL);
    let wrong = JwtKeys::new(&SecretString::from("another-secret".to_string()), DEFAULT_SESSION_TTL);
    let (forged, _) = wrong.issue(id, Role::Admin, chrono::Utc::now()).unwrap();
    let (expired, _) = right.issue(id, Role::Admin, chrono::Utc::now() - chrono::Duration::hours(2)).unwrap();
    let b64 = |s: &str| base64_url(s.as_bytes());
    let exp = chrono::Utc::now().timestamp() + 3600;
    let claims = format!(r#"{{"sub":"{id}","role":"admin","iss":"pressroom","aud":"pressroom","iat":0,"exp":{exp}}}"#);
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
    let other_aud =
        format!(r#"{{"sub":"{id}","role":"admin","iss":"pressroom","aud":"elsewhere","iat":0,"exp":{exp}}}"#);
    let (valid, _) = right.issue(id, Role::Admin, chrono::Utc::now()).unwrap();
    let sig = valid.rsplit('.').next().unwrap();
    let wrong_aud = format!("{}.{}.{sig}", b64(r#"{"alg":"HS256","typ":"JWT"}"#), b64(&other_aud));
    for (what, token) in [("forged", forged), ("expired", expired), ("alg none", none), ("wrong aud", wrong_aud)] {
        let res = stack.create_post(&token, json!({"title": "x", "body_markdown": "y"})).await;
        assert_eq!(res.status(), 401, "{what}");
    }
    assert_eq!(stack.create_post(&valid, json!({"title": "x", "body_markdown": "y"})).await.status(), 201);
    stack.stop().await;
}

fn base64_url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn the_sixth_comment_from_one_ip_within_a_minute_is_429_with_retry_after() {
    let stack = Stack::start_with(
        TestDb::fresh().await,
        &[("PRESSROOM_TRUSTED_PROXIES", "127.0.0.1"), ("PRESSROOM_RATE_LIMIT_LOGIN", "0")],
    )
    .await;
    let (_, token) = stack.token(Role::Author).await;
    let (post, _, _) = stack.published_post(&token, "Popular").await;
    let ip = format!("203.0.113.{}", rand_octet());
    let path = format!("/v1/posts/{post}/comments");
    let forwarded = [("x-forwarded-for", ip.clone())];
    let comment =
        || stack.command(Method::POST, &path, None, Some(json!({"author_name": "R", "body": "hi"})), &forwarded);
    for i in 0..5 {
        assert_eq!(comment().await.status(), 202, "comment {i}");
    }
    let sixth = comment().await;
    let retry: u64 = sixth.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_problem(sixth, 429).await;
    // Another client is not affected.
    let other = stack
        .command(
            Method::POST,
            &format!("/v1/posts/{post}/comments"),
            None,
            Some(json!({"author_name": "S", "body": "hi"})),
            &[("x-forwarded-for", "198.51.100.7".into())],
        )
        .await;
    assert_eq!(other.status(), 202);
    stack.stop().await;
}

fn rand_octet() -> u8 {
    (uuid::Uuid::now_v7().as_u128() % 250) as u8 + 1
}

#[tokio::test]
async fn a_deactivated_authors_token_stops_drafting_at_the_next_request_though_the_instance_knew_them() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, admin) = stack.token(Role::Admin).await;
    let (author, token) = stack.token(Role::Author).await;
    // The command API has read (and remembered) the author: their drafts need no re-read.
    for title in ["Known one", "Known two"] {
        assert_eq!(stack.create_post(&token, json!({"title": title, "body_markdown": "b"})).await.status(), 201);
    }
    let res = stack.command(Method::POST, &format!("/v1/authors/{author}/deactivate"), Some(&admin), None, &[]).await;
    assert_eq!(res.status(), 200);
    let drafted = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from events where event_type = 'PostDrafted' and payload->>'author_id' = $1",
        )
        .bind(author.to_string())
        .fetch_one(&stack.db.admin)
        .await
        .unwrap()
    };
    assert_eq!(drafted().await, 2);
    let res = stack.create_post(&token, json!({"title": "After deactivation", "body_markdown": "b"})).await;
    assert_problem(res, 401).await;
    assert_eq!(drafted().await, 2, "nothing was appended for the deactivated author");
    stack.stop().await;
}
