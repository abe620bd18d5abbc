//! Access rules on every path, over HTTP against the real services with accounts of each role: what a
//! contributor may take down, which URLs are stored, which tokens are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::{assert_problem, Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::role::Role;

#[tokio::test]
async fn a_contributor_deletes_or_restores_only_posts_that_were_never_published() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, editor) = stack.token(Role::Editor).await;
    let (_, contributor) = stack.token(Role::Contributor).await;
    let never = stack.draft(&contributor, "Never published").await;
    let res = stack.command(Method::DELETE, &format!("/v1/posts/{never}"), Some(&contributor), None, &[]).await;
    assert_eq!(res.status(), 200, "their own draft, never public");
    let res = stack.command(Method::POST, &format!("/v1/posts/{never}/restore"), Some(&contributor), None, &[]).await;
    assert_eq!(res.status(), 200);

    let shown = stack.draft(&contributor, "Published by an editor").await;
    assert_eq!(stack.publish(&editor, &shown).await.status(), 200);
    let res = stack.command(Method::DELETE, &format!("/v1/posts/{shown}"), Some(&contributor), None, &[]).await;
    assert_problem(res, 403).await;
    let res = stack.command(Method::POST, &format!("/v1/posts/{shown}/unpublish"), Some(&editor), None, &[]).await;
    assert_eq!(res.status(), 200);
    let res = stack.command(Method::DELETE, &format!("/v1/posts/{shown}"), Some(&contributor), None, &[]).await;
    assert_problem(res, 403).await;
    let res = stack.command(Method::DELETE, &format!("/v1/posts/{shown}"), Some(&editor), None, &[]).await;
    assert_eq!(res.status(), 200, "editors still may");
    let res = stack.command(Method::POST, &format!("/v1/posts/{shown}/restore"), Some(&contributor), None, &[]).await;
    assert_problem(res, 403).await;
    stack.stop().await;
}

#[tokio::test]
async fn urls_are_parsed_refused_without_a_host_and_stored_normalised() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (author_id, author) = stack.token(Role::Author).await;
    for bad in ["https://", "javascript:alert(1)", "https://user:pw@x.test/a.png", "ftp://x.test/a.png"] {
        let res = stack.create_post(&author, json!({"title": "t", "body_markdown": "x", "cover_image_url": bad})).await;
        let problem = assert_problem(res, 422).await;
        assert_eq!(problem["errors"][0]["field"], "cover_image_url", "{bad}");
    }
    let hostile = "https://x/\"><script>alert(1)</script>";
    let res =
        stack.create_post(&author, json!({"title": "Hostile", "body_markdown": "x", "cover_image_url": hostile})).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let position: i64 =
        stack.publish(&author, &id).await.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let post: Value = stack.query_at("/v1/posts/hostile", position).await.json().await.unwrap();
    assert_eq!(post["cover_image_url"], "https://x/%22%3E%3Cscript%3Ealert(1)%3C/script%3E");
    let res = stack
        .command(
            Method::PATCH,
            &format!("/v1/authors/{author_id}"),
            Some(&author),
            Some(json!({"avatar_url": "nope"})),
            &[],
        )
        .await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "avatar_url");
    stack.stop().await;
}

#[tokio::test]
async fn tokens_not_valid_yet_or_living_longer_than_a_session_are_refused_on_both_apis() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let stack = Stack::start(TestDb::fresh().await).await;
    let (id, _) = stack.token(Role::Admin).await;
    let now = chrono::Utc::now().timestamp();
    let sign = |iat: i64, exp: i64, nbf: Option<i64>| {
        let mut claims =
            json!({"sub": id, "role": "admin", "iss": "pressroom", "aud": "pressroom", "iat": iat, "exp": exp});
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        let key = EncodingKey::from_secret(pressroom_tests::JWT_SECRET.as_bytes());
        encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    };
    let cases = [
        (sign(now, now + 3000, None), 200, "a session-long token"),
        (sign(now, now + 10 * 365 * 86_400, None), 401, "a token valid for ten years"),
        (sign(now, now + 3000, Some(now + 600)), 401, "a token not valid for ten minutes"),
    ];
    for (token, status, what) in cases {
        let res = stack.command(Method::GET, "/v1/webhooks", Some(&token), None, &[]).await;
        assert_eq!(res.status().as_u16(), status, "command API: {what}");
        let res = stack.http.get(format!("{}/v1/author/posts", stack.query)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "query API: {what}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_public_author_directory_lists_only_active_authors_with_a_published_post_page_by_page() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (admin_id, admin) = stack.token(Role::Admin).await;
    let (_, contributor) = stack.token(Role::Contributor).await;
    stack.draft(&contributor, "Only a draft").await;
    let mut writers = Vec::new();
    for _ in 0..3 {
        let (id, token) = stack.token(Role::Author).await;
        stack.published_post(&token, &format!("By {id}")).await;
        writers.push(id.to_string());
    }
    let (leaving, leaving_token) = stack.token(Role::Author).await;
    let (_, _, _) = stack.published_post(&leaving_token, "Before leaving").await;
    let res = stack.command(Method::POST, &format!("/v1/authors/{leaving}/deactivate"), Some(&admin), None, &[]).await;
    let position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();

    let mut seen = Vec::new();
    let mut path = "/v1/authors?limit=2".to_string();
    loop {
        let page: Value = stack.query_at(&path, position).await.json().await.unwrap();
        let authors = page["authors"].as_array().unwrap();
        assert!(authors.len() <= 2);
        seen.extend(authors.iter().map(|a| a["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/authors?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected = writers.clone();
    expected.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "exactly the active authors with a published post, each once");
    assert!(!seen.contains(&admin_id.to_string()) && !seen.contains(&leaving.to_string()));
    let slug_of = |id: uuid::Uuid| {
        let db = &stack.db.admin;
        async move {
            sqlx::query_scalar::<_, String>("select slug from read.post_authors where id = $1")
                .bind(id)
                .fetch_one(db)
                .await
                .unwrap()
        }
    };
    for hidden in [admin_id, leaving] {
        let slug = slug_of(hidden).await;
        assert_eq!(stack.query_at(&format!("/v1/authors/{slug}"), position).await.status(), 404, "{slug}");
    }
    assert_eq!(stack.query_at("/v1/authors?cursor=garbage", position).await.status(), 400);
    stack.stop().await;
}

#[tokio::test]
async fn look_alike_emails_names_and_slugs_are_refused_and_names_are_unique_ignoring_case() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, admin) = stack.token(Role::Admin).await;
    let register = |email: &str, name: &str, slug: Option<&str>| {
        let mut body = json!({"email": email, "name": name, "password": "long enough pw", "role": "author"});
        if let Some(slug) = slug {
            body["slug"] = json!(slug);
        }
        stack.command(Method::POST, "/v1/authors", Some(&admin), Some(body), &[])
    };
    assert_eq!(register("ada@lovelace.test", "Ada Lovelace", None).await.status(), 201);
    for (email, what) in [
        ("ada\u{200B}@lovelace.test", "a zero-width space"),
        ("\u{0430}da@lovelace.test", "a Cyrillic а"),
        ("ada@lovelace.test\u{202E}", "a right-to-left override"),
    ] {
        let problem = assert_problem(register(email, "Someone Else", None).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], "email", "{what}");
    }
    let problem = assert_problem(register("b@x.test", "Ada\u{200D} Lovelace", None).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "name");
    let problem = assert_problem(register("c@x.test", "Charles", Some("charles\u{202E}")).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "slug");
    // The same address in full-width letters is the same account.
    assert_problem(register("ＡＤＡ@lovelace.test", "Ada Other", None).await, 409).await;
    // One display name per author, ignoring case and width.
    assert_problem(register("d@x.test", "ADA LOVELACE", None).await, 409).await;
    assert_problem(register("e@x.test", "ａｄａ lovelace", None).await, 409).await;
    let grace: Value = register("grace@x.test", "Grace Hopper", None).await.json().await.unwrap();
    let grace_id = grace["id"].as_str().unwrap().to_string();
    let grace_path = format!("/v1/authors/{grace_id}");
    let rename = |name: &str| stack.command(Method::PATCH, &grace_path, Some(&admin), Some(json!({"name": name})), &[]);
    assert_problem(rename("ada lovelace").await, 409).await;
    assert_eq!(rename("Grace B. Hopper").await.status(), 200);
    assert_eq!(register("f@x.test", "Grace Hopper", None).await.status(), 201, "a name given up is free again");
    stack.stop().await;
}
