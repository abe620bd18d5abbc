//! Hostile and tricky input against the real binaries: ETags that change with every byte served, search
//! excerpts that are safe to render, NUL characters refused with a 4xx naming the field, bounded
//! request ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{assert_problem, Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

fn etag(res: &reqwest::Response) -> String {
    res.headers().get("etag").expect("an ETag").to_str().unwrap().to_string()
}

async fn get_if_none_match(stack: &Stack, path: &str, etag: &str) -> reqwest::Response {
    stack.http.get(format!("{}{path}", stack.query)).header("if-none-match", etag).send().await.unwrap()
}

/// Polls `path` (without a token: the public, cached path) until `check` holds on its JSON body.
async fn until_json(stack: &Stack, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> reqwest::Response {
    let started = tokio::time::Instant::now();
    loop {
        let res = stack.http.get(format!("{}{path}", stack.query)).send().await.unwrap();
        let headers = res.headers().clone();
        let status = res.status();
        let body = res.bytes().await.unwrap();
        if status == 200 && serde_json::from_slice::<Value>(&body).is_ok_and(|v| check(&v)) {
            // Hand back a fresh response for the headers and body together.
            let again = stack.http.get(format!("{}{path}", stack.query)).send().await.unwrap();
            assert_eq!(again.headers().get("etag"), headers.get("etag"), "stable ETag for unchanged bytes");
            return again;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: {}", String::from_utf8_lossy(&body));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_post_whose_comment_count_changed_never_answers_304_to_its_old_etag() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (id, slug, _) = stack.published_post(&editor, "Counted").await;
    let post = format!("/v1/posts/{slug}");
    let first = until_json(&stack, &post, "published post", |p| p["comment_count"] == 0).await;
    let old = etag(&first);
    assert_eq!(get_if_none_match(&stack, &post, &old).await.status(), 304, "unchanged: 304");
    let list = until_json(&stack, "/v1/posts", "list", |l| l["posts"][0]["comment_count"] == 0).await;
    let old_list = etag(&list);
    assert_eq!(get_if_none_match(&stack, "/v1/posts", &old_list).await.status(), 304);

    let body = json!({"author_name": "Reader", "body": "First!"});
    let res = stack.command(Method::POST, &format!("/v1/posts/{id}/comments"), None, Some(body), &[]).await;
    let cid = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let res = stack.command(Method::POST, &format!("/v1/comments/{cid}/approve"), Some(&editor), None, &[]).await;
    assert_eq!(res.status(), 200);

    let now = until_json(&stack, &post, "comment count 1", |p| p["comment_count"] == 1).await;
    assert_ne!(etag(&now), old);
    let res = get_if_none_match(&stack, &post, &old).await;
    assert_eq!(res.status(), 200, "the old ETag must not match the changed post");
    assert_eq!(res.json::<Value>().await.unwrap()["comment_count"], 1);
    until_json(&stack, "/v1/posts", "list comment count", |l| l["posts"][0]["comment_count"] == 1).await;
    assert_eq!(get_if_none_match(&stack, "/v1/posts", &old_list).await.status(), 200);
    stack.stop().await;
}

#[tokio::test]
async fn an_approvals_position_reads_its_comment_count_at_once_in_the_json_and_the_page() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (id, slug, _) = stack.published_post(&editor, "Counted at once").await;
    let post = format!("/v1/posts/{slug}");
    until_json(&stack, &post, "published post", |p| p["comment_count"] == 0).await;
    for n in 1..=5 {
        let body = json!({"author_name": "Reader", "body": format!("Comment {n}")});
        let res = stack.command(Method::POST, &format!("/v1/posts/{id}/comments"), None, Some(body), &[]).await;
        let cid = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let res = stack.command(Method::POST, &format!("/v1/comments/{cid}/approve"), Some(&editor), None, &[]).await;
        assert_eq!(res.status(), 200);
        let approved: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
        // The posts projection passes an approval by at once; the count is the comments projection's.
        let json: Value = stack.query_at(&post, approved).await.json().await.unwrap();
        assert_eq!(json["comment_count"], n, "read with the approval's position: {json}");
        let page = stack.query_at(&format!("/posts/{slug}"), approved).await.text().await.unwrap();
        assert!(page.contains(&format!("Comments ({n})")), "page {n}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn tags_authors_feeds_and_the_sitemap_answer_304_only_while_unchanged() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let res = stack.create_post(&token, json!({"title": "Tagged", "body_markdown": "x", "tags": ["Rust"]})).await;
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let position: i64 =
        stack.publish(&token, &id).await.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let paths = ["/v1/tags", "/v1/tags/rust", "/v1/authors", "/feed.xml", "/sitemap.xml"];
    let mut tags = Vec::new();
    for path in paths {
        let res = stack.query_at(path, position).await;
        assert_eq!(res.status(), 200, "{path}");
        let tag = etag(&res);
        assert_eq!(stack.query_at(path, position).await.headers()["etag"], tag.as_str(), "{path}: stable");
        let again = stack
            .http
            .get(format!("{}{path}", stack.query))
            .header("pressroom-min-position", position)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
        tags.push(tag);
    }
    let (_, _, later) = stack.published_post(&token, "Another").await;
    let res = stack.create_post(&token, json!({"title": "Third", "body_markdown": "x", "tags": ["Rust"]})).await;
    let third = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let later = later
        .max(stack.publish(&token, &third).await.headers()["pressroom-position"].to_str().unwrap().parse().unwrap());
    for (path, old) in paths.iter().zip(&tags) {
        let res = stack
            .http
            .get(format!("{}{path}", stack.query))
            .header("pressroom-min-position", later)
            .header("if-none-match", old)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path} changed, yet the old ETag matched");
    }
    stack.stop().await;
}

#[tokio::test]
async fn search_excerpts_escape_the_authors_markup_and_mark_only_the_matches() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let body = "Before <img src=x onerror=alert(1)> zeppelin & <b>more</b> words \u{E000}forged\u{E001} zeppelin after";
    let res = stack.create_post(&token, json!({"title": "Airships", "body_markdown": body})).await;
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let position: i64 =
        stack.publish(&token, &id).await.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let page: Value = stack.query_at("/v1/search?q=zeppelin", position).await.json().await.unwrap();
    let snippet = page["results"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>zeppelin</mark>"), "{snippet}");
    assert!(snippet.contains("&lt;img src=x onerror=alert(1)&gt;"), "{snippet}");
    assert!(snippet.contains("&amp;"), "{snippet}");
    let tags: Vec<&str> = snippet.match_indices('<').map(|(i, _)| &snippet[i..]).collect();
    assert!(tags.iter().all(|t| t.starts_with("<mark>") || t.starts_with("</mark>")), "only <mark> markup: {snippet}");
    assert!(!snippet.contains('\u{E000}') && !snippet.contains("<mark>forged"), "{snippet}");
    stack.stop().await;
}

#[tokio::test]
async fn nul_characters_in_any_text_field_are_a_422_naming_the_field_and_append_nothing() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, admin) = stack.token(Role::Admin).await;
    let (published, _, _) = stack.published_post(&admin, "Open for comments").await;
    let head = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from events").fetch_one(&stack.db.admin).await.unwrap()
    };
    let before = head().await;
    let cases: Vec<(&str, String, Value, &str)> = vec![
        ("POST", "/v1/posts".into(), json!({"title": "a\u{0}b", "body_markdown": "x"}), "title"),
        ("POST", "/v1/posts".into(), json!({"title": "t", "body_markdown": "x\u{0}"}), "body_markdown"),
        ("POST", "/v1/posts".into(), json!({"title": "t", "body_markdown": "x", "summary": "\u{0}"}), "summary"),
        ("POST", "/v1/posts".into(), json!({"title": "t", "body_markdown": "x", "tags": ["ok", "b\u{0}d"]}), "tags[1]"),
        ("POST", format!("/v1/posts/{published}/comments"), json!({"author_name": "R", "body": "hi\u{0}"}), "body"),
        (
            "POST",
            format!("/v1/posts/{published}/comments"),
            json!({"author_name": "R\u{0}", "body": "hi"}),
            "author_name",
        ),
        (
            "POST",
            "/v1/authors".into(),
            json!({"email": "n@x.test", "name": "N\u{0}", "password": "long enough pw", "role": "author"}),
            "name",
        ),
    ];
    for (method, path, body, field) in cases {
        let res = stack.command(method.parse().unwrap(), &path, Some(&admin), Some(body.clone()), &[]).await;
        let problem = assert_problem(res, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{path} {body}");
    }
    assert_eq!(head().await, before, "nothing appended");
    // Query parameters and path segments the database would choke on are a 400, never a 500.
    for path in ["/v1/search?q=a%00b", "/v1/posts/a%00b", "/v1/posts?tag=a%00b", "/v1/authors/a%00b"] {
        let res = stack.http.get(format!("{}{path}", stack.query)).send().await.unwrap();
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_overlong_or_invisible_request_id_is_replaced_and_a_fair_one_is_kept() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let long = "x".repeat(10_000);
    for (sent, kept) in [(long.as_str(), false), ("has space", false), ("req-42.a_b", true)] {
        let res = stack
            .command(
                Method::POST,
                "/v1/posts",
                Some(&token),
                Some(json!({"title": format!("Id {}", sent.len()), "body_markdown": "x"})),
                &[("x-request-id", sent.to_string())],
            )
            .await;
        assert_eq!(res.status(), 201);
        let echoed = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        assert!(echoed.len() <= 128 && !echoed.is_empty());
        assert_eq!(echoed == sent, kept, "{sent:.20}");
        let stored: String =
            sqlx::query_scalar("select metadata->>'request_id' from events where stream_id = $1::uuid")
                .bind(&id)
                .fetch_one(&stack.db.admin)
                .await
                .unwrap();
        assert_eq!(stored, echoed, "the event records the id the client was told");
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_operator_sets_a_new_password_from_stdin_and_the_change_is_on_record_without_the_hash() {
    use tokio::io::AsyncWriteExt;
    let stack = Stack::start(TestDb::fresh().await).await;
    let (id, email, old_password) = stack.db.author(Role::Admin).await;
    let set = |password: &'static str, email: String| {
        let mut cmd = stack.db.ops(&["admin", "set-password", &email]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        async move {
            stdin.write_all(format!("{password}\n").as_bytes()).await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let short = set("short", email.clone()).await;
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"), "says why");
    assert!(!set("long enough password", "nobody@test.local".into()).await.status.success());

    let out = set("a brand new password", email.clone()).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let login = |password: &str| {
        stack.command(Method::POST, "/v1/session", None, Some(json!({"email": email, "password": password})), &[])
    };
    assert_eq!(login(&old_password).await.status(), 401, "the old password is gone");
    assert_eq!(login("a brand new password").await.status(), 200);
    let recorded: Vec<(String, Value)> = sqlx::query_as(
        "select event_type, payload from events where stream_id = $1 and event_type = 'AuthorPasswordChanged'",
    )
    .bind(id)
    .fetch_all(&stack.db.admin)
    .await
    .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].1, json!({}), "no hash in the log");
    stack.stop().await;
}

#[tokio::test]
async fn a_deactivated_authors_token_gets_a_401_not_a_stored_reply_for_a_used_idempotency_key() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, admin) = stack.token(Role::Admin).await;
    let (author_id, author) = stack.token(Role::Author).await;
    let body = json!({"title": "Replayed", "body_markdown": "x"});
    let key = [("idempotency-key", "k-1".to_string())];
    let first = stack.command(Method::POST, "/v1/posts", Some(&author), Some(body.clone()), &key).await;
    assert_eq!(first.status(), 201);
    let again = stack.command(Method::POST, "/v1/posts", Some(&author), Some(body.clone()), &key).await;
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let res =
        stack.command(Method::POST, &format!("/v1/authors/{author_id}/deactivate"), Some(&admin), None, &[]).await;
    assert_eq!(res.status(), 200);
    let after = stack.command(Method::POST, "/v1/posts", Some(&author), Some(body), &key).await;
    assert!(after.headers().get("idempotent-replayed").is_none(), "no stored reply for a deactivated account");
    assert_problem(after, 401).await;
    stack.stop().await;
}

#[tokio::test]
async fn operator_help_never_prints_a_secret_and_create_admin_reads_a_password_from_stdin() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::fresh().await;
    for args in [vec!["--help"], vec!["projections", "rebuild", "--help"], vec!["create-admin", "--help"]] {
        let out = db
            .ops(&args)
            .env("DATABASE_ADMIN_URL", "postgres://postgres:s3cret-pw@db.internal/pressroom")
            .env("REDIS_URL", "redis://:redis-s3cret@cache.internal")
            .env("PRESSROOM_ADMIN_PASSWORD", "admin-s3cret")
            .output()
            .await
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && help.contains("Usage"), "{args:?}");
        assert!(!help.contains("s3cret"), "{args:?} printed a secret:\n{help}");
    }
    // Neither the flag nor the variable: one line of standard input, and a short one says why it failed.
    let run = |password: &'static str| {
        let mut cmd = db.ops(&["create-admin", "--email", "root@x.test"]);
        cmd.env_remove("PRESSROOM_ADMIN_PASSWORD").stdin(std::process::Stdio::piped());
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        async move {
            stdin.write_all(password.as_bytes()).await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let none = run("").await;
    assert!(String::from_utf8_lossy(&none.stderr).contains("PRESSROOM_ADMIN_PASSWORD"), "names the ways to give one");
    let short = run("short\n").await;
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"), "says why");
    let ok = run("long enough password\n").await;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[tokio::test]
async fn a_taken_port_stops_the_service_with_one_line_naming_the_address_and_the_variable() {
    let db = TestDb::fresh().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tokio::process::Command::new(pressroom_tests::bin("pressroom-query-api"))
        .envs(db.config_env())
        .env("PRESSROOM_QUERY_ADDR", &addr)
        .env("PRESSROOM_LOG", "error")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out).await.expect("exits").unwrap();
    assert!(!out.status.success());
    let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = logs.lines().find(|l| l.contains("cannot listen")).unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains(&addr) && line.contains("PRESSROOM_QUERY_ADDR"), "{line}");
    assert!(line.starts_with('{'), "a JSON log line: {line}");
    assert_eq!(logs.lines().filter(|l| !l.trim().is_empty()).count(), 1, "that line and nothing else:\n{logs}");
}

#[tokio::test]
async fn replicas_status_names_the_replica_as_ready_and_the_metrics_do() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let out = stack.db.ops(&["replicas", "status", "--json"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ready: Value = stack.http.get(format!("{}/ready", stack.query)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["replicas"][0]["name"], "replica1", "{status}");
    assert_eq!(ready["replicas"][0]["name"], "replica1", "{ready}");
    assert_eq!(status["replicas"][0]["healthy"], true);
    stack.stop().await;
}
