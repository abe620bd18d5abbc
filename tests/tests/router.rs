//! The middle level of tests: each API's real router (`app()`), called in-process with
//! `tower::ServiceExt::oneshot` against a real database of the test topology — the error mapping and the
//! extractors of the handlers, in milliseconds, without starting a process. What only the running
//! processes show (shutdown, NOTIFY, replicas, kill -9) stays in the end-to-end tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use pressroom_tests::{TestDb, JWT_SECRET};
use serde_json::Value;
use shared::domain::role::Role;
use shared::http::auth::JwtKeys;
use tower::ServiceExt;

struct Apps {
    command: Router,
    query: Router,
    token: String,
}

async fn apps() -> Apps {
    let db = TestDb::fresh().await;
    let config = db.config(&[]);
    let command = pressroom_command_api::AppState::from_config(db.config(&[])).unwrap();
    let query = pressroom_query_api::AppState::from_config(&config).unwrap();
    let (id, _, _) = db.author(Role::Author).await;
    let keys = JwtKeys::new(&secrecy::SecretString::from(JWT_SECRET), Duration::from_secs(3600));
    let (token, _) = keys.issue(id, Role::Author, chrono::Utc::now()).unwrap();
    Apps {
        command: pressroom_command_api::app(command, Duration::from_secs(10)),
        query: pressroom_query_api::app(query, Duration::from_secs(10)),
        token,
    }
}

/// Sends one request; returns the status, the content type and the body as JSON (Null when not JSON).
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let content_type =
        res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn request(method: Method, path: &str, token: Option<&str>, content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        req = req.header(header::CONTENT_TYPE, content_type);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

/// Asserts a problem+json answer with this status; returns its body.
async fn problem(app: &Router, req: Request<Body>, status: StatusCode) -> Value {
    let (got, content_type, body) = send(app, req).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn command_extractors_answer_each_kind_of_bad_request_with_its_own_problem() {
    let apps = apps().await;
    let (app, token) = (&apps.command, Some(apps.token.as_str()));
    let post = |body: &str, token, content_type| request(Method::POST, "/v1/posts", token, content_type, body);
    problem(app, post(r#"{"title":"t","body_markdown":"b"}"#, None, JSON), StatusCode::UNAUTHORIZED).await;
    problem(app, post(r#"{"title":"t","body_markdown":"b"}"#, Some("not-a-jwt"), JSON), StatusCode::UNAUTHORIZED).await;
    problem(app, post("{not json", token, JSON), StatusCode::BAD_REQUEST).await;
    problem(
        app,
        post(r#"{"title":"t","body_markdown":"b"}"#, token, Some("text/plain")),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    let unknown = problem(
        app,
        post(r#"{"title":"t","body_markdown":"b","colour":1}"#, token, JSON),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(unknown["errors"][0]["field"], "colour", "{unknown}");
    let nul = problem(
        app,
        post(r#"{"title":"a\u0000b","body_markdown":"b"}"#, token, JSON),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(nul["errors"][0]["field"], "title", "{nul}");
    let empty =
        problem(app, post(r#"{"title":"  ","body_markdown":"b"}"#, token, JSON), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    assert_eq!(empty["errors"][0]["field"], "title", "{empty}");
}

#[tokio::test]
async fn command_state_changes_check_the_path_id_and_if_match_before_touching_the_post() {
    let apps = apps().await;
    let (app, token) = (&apps.command, Some(apps.token.as_str()));
    problem(app, request(Method::POST, "/v1/posts/not-a-uuid/unpublish", token, None, ""), StatusCode::NOT_FOUND).await;
    let mut bad_if_match = request(Method::DELETE, &format!("/v1/posts/{}", uuid::Uuid::now_v7()), token, None, "");
    bad_if_match.headers_mut().insert(header::IF_MATCH, "three".parse().unwrap());
    problem(app, bad_if_match, StatusCode::BAD_REQUEST).await;
    let missing = format!("/v1/posts/{}/restore", uuid::Uuid::now_v7());
    problem(app, request(Method::POST, &missing, token, None, ""), StatusCode::NOT_FOUND).await;
    let patch = request(Method::PATCH, &format!("/v1/posts/{}", uuid::Uuid::now_v7()), token, JSON, r#"{"title":"x"}"#);
    problem(app, patch, StatusCode::PRECONDITION_REQUIRED).await;
    let (status, content_type, body) = send(app, request(Method::PUT, "/v1/posts", token, JSON, "{}")).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "application/problem+json"), "{body}");
    let res = app.clone().oneshot(request(Method::PUT, "/v1/posts", token, JSON, "{}")).await.unwrap();
    assert_eq!(res.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()), Some("POST"));
}

#[tokio::test]
async fn a_draft_created_through_the_router_answers_201_with_its_position_and_a_clash_gets_the_next_slug() {
    let apps = apps().await;
    let (app, token) = (&apps.command, Some(apps.token.as_str()));
    let body = r#"{"title":"Router level","body_markdown":"Hello"}"#;
    let (status, _, first) = send(app, request(Method::POST, "/v1/posts", token, JSON, body)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(first["position"].as_i64().unwrap_or_default() > 0, "{first}");
    assert_eq!(first["slug"], "router-level");
    let (status, _, second) = send(app, request(Method::POST, "/v1/posts", token, JSON, body)).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["slug"], "router-level-2", "a generated slug that clashes takes the next suffix");
    let explicit = r#"{"title":"Other","body_markdown":"Hello","slug":"router-level"}"#;
    problem(app, request(Method::POST, "/v1/posts", token, JSON, explicit), StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn query_reads_answer_bad_parameters_and_unknown_things_with_problems() {
    let apps = apps().await;
    let app = &apps.query;
    let get = |path: &str| request(Method::GET, path, None, None, "");
    problem(app, get("/v1/posts?limit=0"), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(app, get("/v1/posts?limit=abc"), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(app, get("/v1/posts?cursor=garbage"), StatusCode::BAD_REQUEST).await;
    problem(app, get("/v1/posts/no-such-post"), StatusCode::NOT_FOUND).await;
    problem(app, get("/v1/search?q="), StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(app, get("/v1/nothing-here"), StatusCode::NOT_FOUND).await;
    let mut token = get("/v1/posts");
    token.headers_mut().insert("pressroom-min-position", "soon".parse().unwrap());
    problem(app, token, StatusCode::BAD_REQUEST).await;
    let mut unknown = get("/v1/posts");
    unknown.headers_mut().insert("pressroom-min-position", "999999".parse().unwrap());
    problem(app, unknown, StatusCode::BAD_REQUEST).await;
    problem(app, get("/v1/author/posts"), StatusCode::UNAUTHORIZED).await;
    problem(app, get("/v1/author/posts/not-a-uuid/versions/1"), StatusCode::UNAUTHORIZED).await;
    let own = request(Method::GET, "/v1/author/posts?status=bogus", Some(&apps.token), None, "");
    let bogus = problem(app, own, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(bogus["errors"][0]["field"], "status", "{bogus}");
    let (status, _, list) = send(app, get("/v1/posts")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["posts"], Value::Array(Vec::new()));
}
