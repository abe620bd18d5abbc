//! The MCP servers with a real client: the official Python SDK (`mcp`, Streamable HTTP, installed by
//! `ops/lib/install-test-tools.sh`) lists and calls the query API's read tools and the answers are checked
//! against the JSON API's for the same data; protocol edge cases get protocol errors, never a 5xx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::{Stack, TestDb};
use serde_json::{json, Value};
use shared::domain::role::Role;

/// Runs the SDK client against `url` with these calls; returns what it printed.
async fn client(url: &str, calls: Value, token: Option<&str>) -> Value {
    let python = std::env::var("PRESSROOM_TEST_MCP_PYTHON").expect("PRESSROOM_TEST_MCP_PYTHON (set by ./ops/test)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/mcp/client.py");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script).arg(url).arg(calls.to_string()).kill_on_drop(true);
    if let Some(token) = token {
        cmd.arg(token);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "the MCP client failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn call<'a>(out: &'a Value, tool: &str) -> &'a Value {
    out["calls"].as_array().unwrap().iter().find(|c| c["tool"] == tool).unwrap_or_else(|| panic!("{tool}: {out}"))
}

#[tokio::test]
async fn an_mcp_client_lists_and_calls_every_read_tool_and_they_agree_with_the_json_api() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let markdown = "## Logs\n\nProjections **fold** the log.";
    let body =
        json!({"title": "Agents read this", "body_markdown": markdown, "summary": "For agents.", "tags": ["Agents"]});
    stack.publish_post(&token, body).await;
    let (_, _, last) = stack.published_post(&token, "Another post").await;
    stack.db.wait_projected().await;

    let author: Value = stack.query_at("/v1/posts/agents-read-this", last).await.json().await.unwrap();
    let author_slug = author["author"]["slug"].as_str().unwrap().to_string();
    let calls = json!([
        ["get_post", {"slug": "agents-read-this", "min_position": last}],
        ["list_posts", {"limit": 5}],
        ["search_posts", {"query": "projections fold"}],
        ["list_tags", {}],
        ["get_author", {"slug": author_slug}],
        ["trending", {}],
        ["get_post", {"slug": "no-such-post"}],
        ["no_such_tool", {}],
        ["list_posts", {"limit": "many"}],
    ]);
    let out = client(&format!("{}/mcp", stack.query), calls, None).await;
    assert_eq!(out["server"], "pressroom-query", "{out}");
    let names: Vec<&str> = out["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for tool in ["search_posts", "get_post", "list_posts", "list_tags", "get_author", "trending"] {
        assert!(names.contains(&tool), "{tool} listed: {names:?}");
    }
    assert!(out["tools"].as_array().unwrap().iter().all(|t| t["output_schema"] == true), "output schemas: {out}");

    let post = &call(&out, "get_post")["structured"];
    assert_eq!(post["body_markdown"], markdown, "Markdown, not HTML");
    let text = call(&out, "get_post")["text"][0].as_str().unwrap();
    assert!(
        text.starts_with("# Agents read this\n") && text.ends_with(markdown),
        "the text is the post in Markdown: {text}"
    );
    let listed_text = call(&out, "list_posts")["text"][0].as_str().unwrap();
    assert!(
        listed_text.contains("- Agents read this (`agents-read-this`") && listed_text.contains("position: "),
        "{listed_text}"
    );
    let uris: Vec<&str> = out["resources"].as_array().unwrap().iter().map(|r| r["uri"].as_str().unwrap()).collect();
    assert_eq!(uris, ["pressroom://posts/another-post", "pressroom://posts/agents-read-this"], "{out}");
    assert_eq!(out["resources"][0]["mime_type"], "text/markdown");
    assert_eq!(out["resource_text"][0], "# Another post\n\nHello **world**", "resources/read gives the Markdown");
    assert_eq!(post["title"], "Agents read this");
    assert_eq!(post["tags"], json!(["Agents"]));
    assert!(post["position"].as_i64().unwrap() > 0);

    let listed = &call(&out, "list_posts")["structured"];
    let api: Value = stack.query_at("/v1/posts?limit=5", last).await.json().await.unwrap();
    let slugs = |v: &Value, key: &str| -> Vec<String> {
        v[key].as_array().unwrap().iter().map(|p| p["slug"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(slugs(listed, "posts"), slugs(&api, "posts"), "list_posts agrees with GET /v1/posts");

    let found = &call(&out, "search_posts")["structured"];
    assert_eq!(found["results"][0]["slug"], "agents-read-this", "{found}");
    assert!(found["results"][0]["snippet"].as_str().unwrap().contains('«'));
    let tags = &call(&out, "list_tags")["structured"];
    assert_eq!(tags["tags"].as_array().unwrap().len(), 1);
    assert_eq!(call(&out, "get_author")["structured"]["slug"], author_slug);
    assert!(call(&out, "trending")["is_error"] == false);

    let calls = out["calls"].as_array().unwrap();
    let missing = calls.iter().find(|c| c["tool"] == "get_post" && c["is_error"] == true).expect("a tool error");
    assert!(missing["text"][0].as_str().unwrap().contains("no published post"), "{missing}");
    assert!(call(&out, "no_such_tool")["protocol_error"].is_string(), "an unknown tool is a protocol error");
    let bad = calls.iter().rev().find(|c| c["tool"] == "list_posts").unwrap();
    assert_eq!(bad["is_error"], true, "invalid arguments are a tool error the model can correct: {bad}");
    assert!(bad["text"][0].as_str().unwrap().contains("\"many\""), "names what was wrong: {bad}");
}

#[tokio::test]
async fn discovery_documents_list_the_same_tools_and_malformed_json_rpc_is_a_clear_4xx() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let res = stack.http.get(format!("{}/mcp/tools", stack.query)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    assert!(res.headers().contains_key("etag"));
    let tools: Value = res.json().await.unwrap();
    let listed = client(&format!("{}/mcp", stack.query), json!([]), None).await;
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> =
            v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&tools["tools"]), names(&listed["tools"]), "GET /mcp/tools is tools/list");
    assert!(tools["tools"][0]["inputSchema"].is_object() && tools["tools"][0]["outputSchema"].is_object());
    let meta: Value =
        stack.http.get(format!("{}/mcp/metadata", stack.query)).send().await.unwrap().json().await.unwrap();
    assert_eq!((meta["name"].as_str(), meta["auth_required"].as_bool()), (Some("pressroom-query"), Some(false)));
    assert_eq!(meta["openapi"], "/openapi.json");
    let spec: Value =
        stack.http.get(format!("{}/openapi.json", stack.query)).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"]["/mcp/tools"].is_object() && spec["paths"]["/mcp/metadata"].is_object());

    let post = |body: &'static str| {
        stack
            .http
            .post(format!("{}/mcp", stack.query))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    for body in ["{not json", "[]", r#"{"jsonrpc":"2.0","id":1}"#] {
        let res = post(body).await.unwrap();
        assert!(res.status().is_client_error(), "{body}: {}", res.status());
    }
}

#[tokio::test]
async fn an_authors_agent_drafts_edits_tags_and_publishes_and_the_read_tools_return_it_at_its_position() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let command = format!("{}/mcp", stack.command);
    let draft = json!([["create_draft", {"title": "Written by an agent", "body_markdown": "First *draft*."}]]);
    let out = client(&command, draft, Some(&token)).await;
    assert_eq!(out["server"], "pressroom-command");
    let created = &call(&out, "create_draft")["structured"];
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!((created["slug"].as_str(), created["version"].as_i64()), (Some("written-by-an-agent"), Some(1)));

    let events = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from events").fetch_one(&stack.db.admin).await.unwrap()
    };
    let before = events().await;
    let refused = json!([
        ["update_post", {"id": id, "expected_version": 7, "fields": {"title": "Stale"}}],
        ["update_post", {"id": id, "expected_version": 1, "fields": {"title": ""}}],
    ]);
    let out = client(&command, refused, Some(&token)).await;
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["is_error"], true);
    assert!(calls[0]["text"][0].as_str().unwrap().contains("version 1"), "names the current version: {out}");
    assert!(calls[1]["text"][0].as_str().unwrap().starts_with("title:"), "a validation error: {out}");
    let anonymous = client(&command, json!([["create_draft", {"title": "Nobody", "body_markdown": "x"}]]), None).await;
    assert!(anonymous["connect_error"].is_string(), "no token, no session (the 401 is checked below): {anonymous}");
    let wrong = json!([["update_post", {"id": id, "expected_version": "seven", "fields": {}}]]);
    let out = client(&command, wrong, Some(&token)).await;
    let text = call(&out, "update_post")["text"][0].as_str().unwrap().to_string();
    assert!(text.contains("\"seven\""), "an argument error the model can correct: {out}");
    assert_eq!(events().await, before, "nothing appended by refused calls");

    let steps = json!([
        ["update_post", {"id": id, "expected_version": 1, "fields": {"body_markdown": "Second **draft**."}}],
        ["add_tags", {"id": id, "tags": ["Agents", "MCP"]}],
        ["publish_post", {"id": id}],
    ]);
    let out = client(&command, steps, Some(&token)).await;
    assert_eq!(call(&out, "update_post")["structured"]["version"], 2, "{out}");
    assert_eq!(call(&out, "add_tags")["structured"]["version"], 3, "{out}");
    let published = &call(&out, "publish_post")["structured"];
    assert_eq!(published["status"], "published", "{out}");
    let position = published["position"].as_i64().unwrap();

    let read = json!([["get_post", {"slug": "written-by-an-agent", "min_position": position}]]);
    let out = client(&format!("{}/mcp", stack.query), read, None).await;
    let post = &call(&out, "get_post")["structured"];
    assert_eq!(post["body_markdown"], "Second **draft**.", "{out}");
    assert_eq!(post["tags"], json!(["Agents", "MCP"]));
    assert_eq!(post["version"], 4);
    let tools: Value =
        stack.http.get(format!("{}/mcp/tools", stack.command)).send().await.unwrap().json().await.unwrap();
    assert_eq!(tools["tools"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn the_author_server_answers_401_with_www_authenticate_to_a_missing_expired_or_deactivated_token() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let stack = Stack::start(TestDb::fresh().await).await;
    let (id, token) = stack.token(Role::Author).await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": id, "role": "author", "iss": "pressroom", "aud": "pressroom", "iat": now - 7200, "exp": now - 3600});
    let key = EncodingKey::from_secret(pressroom_tests::JWT_SECRET.as_bytes());
    let expired = encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}});
    let post = |bearer: Option<String>| {
        let req = stack
            .http
            .post(format!("{}/mcp", stack.command))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        match bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };
    let ok = post(Some(token.clone())).send().await.unwrap();
    assert_eq!(ok.status(), 200, "a signed-in author starts a session");

    let (_, admin_token) = stack.token(Role::Admin).await;
    let res = stack
        .command(reqwest::Method::POST, &format!("/v1/authors/{id}/deactivate"), Some(&admin_token), None, &[])
        .await;
    assert!(res.status().is_success(), "deactivated: {}", res.status());
    for (bearer, what) in
        [(None, "no token"), (Some(expired), "an expired token"), (Some(token), "a deactivated author")]
    {
        let res = post(bearer).send().await.unwrap();
        assert_eq!(res.status(), 401, "{what}");
        assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="pressroom""#, "{what}");
        assert_eq!(res.headers()["content-type"], "application/problem+json", "{what}");
    }
    let tools = stack.http.get(format!("{}/mcp/tools", stack.command)).send().await.unwrap();
    assert_eq!(tools.status(), 200, "discovery stays open");
}

#[tokio::test]
async fn an_author_tool_retried_with_its_idempotency_key_writes_once_and_returns_the_first_result() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, other) = stack.token(Role::Author).await;
    let command = format!("{}/mcp", stack.command);
    let tools: Value =
        stack.http.get(format!("{}/mcp/tools", stack.command)).send().await.unwrap().json().await.unwrap();
    for tool in tools["tools"].as_array().unwrap() {
        assert!(tool["inputSchema"]["properties"]["idempotency_key"].is_object(), "{tool}");
    }
    let events = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from events").fetch_one(&stack.db.admin).await.unwrap()
    };
    let before = events().await;
    let draft = json!({"title": "Once only", "body_markdown": "Retried.", "idempotency_key": "draft-1"});
    let calls = json!([
        ["create_draft", draft],
        ["create_draft", draft],
        ["create_draft", {"title": "Something else", "body_markdown": "x", "idempotency_key": "draft-1"}],
    ]);
    let out = client(&command, calls, Some(&token)).await;
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["is_error"], false, "{out}");
    assert_eq!(calls[0]["structured"], calls[1]["structured"], "the retry gets the first result: {out}");
    assert!(calls[0]["meta"].is_null(), "{out}");
    assert_eq!(calls[1]["meta"]["pressroom.dev/idempotent-replayed"], true, "{out}");
    assert_eq!(calls[2]["is_error"], true, "{out}");
    assert!(calls[2]["text"][0].as_str().unwrap().contains("idempotency_key"), "{out}");
    assert_eq!(events().await, before + 1, "one draft appended");

    // A key is the author's own: another author with the same key drafts their own post.
    let out = client(&command, json!([["create_draft", draft]]), Some(&other)).await;
    assert_ne!(call(&out, "create_draft")["structured"]["id"], calls[0]["structured"]["id"], "{out}");
    assert_eq!(events().await, before + 2);
}
