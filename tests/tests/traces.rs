//! OpenTelemetry: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the services export traces over OTLP (HTTP/JSON),
//! and one publish is one trace from the command API's request into the projector's apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use pressroom_tests::{Stack, TestDb};
use serde_json::Value;
use shared::domain::role::Role;

/// A collector stand-in: keeps every OTLP/JSON export it receives.
type Exports = Arc<Mutex<Vec<Value>>>;

async fn collect(State(exports): State<Exports>, body: Bytes) -> &'static str {
    if let Ok(v) = serde_json::from_slice(&body) {
        exports.lock().unwrap().push(v);
    }
    "{}"
}

/// trace id → (service.name, span name) of every exported span.
fn spans(exports: &[Value]) -> HashMap<String, Vec<(String, String)>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for export in exports {
        for rs in export["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or("")
                .to_string();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let trace = span["traceId"].as_str().unwrap_or("").to_lowercase();
                    out.entry(trace).or_default().push((service.clone(), span["name"].as_str().unwrap_or("").into()));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn one_publish_is_one_trace_from_the_command_api_into_the_projector() {
    let exports: Exports = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/v1/traces", post(collect)).with_state(exports.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let endpoint = format!("http://{collector}");
    let env = [
        ("PRESSROOM_RATE_LIMIT_LOGIN", "0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("PRESSROOM_LOG", "info,sqlx=warn"),
    ];
    let stack = Stack::start_with(TestDb::fresh().await, &env).await;
    let (_, token) = stack.token(Role::Author).await;
    let (id, _, position) = stack.published_post(&token, "Traced").await;

    // The publish event's metadata carries the command's trace context.
    let traceparent: String = sqlx::query_scalar(
        "select metadata->>'traceparent' from events where stream_id = $1 and event_type = 'PostPublished'",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&stack.db.admin)
    .await
    .unwrap();
    let trace_id = traceparent.split('-').nth(1).expect("a W3C traceparent").to_string();
    assert_eq!(trace_id.len(), 32);
    let published: i64 =
        sqlx::query_scalar("select global_position from events where stream_id = $1 and event_type = 'PostPublished'")
            .bind(uuid::Uuid::parse_str(&id).unwrap())
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
    assert_eq!(published, position);

    // Both services export spans of that trace: the request in the command API, the apply in the projector.
    for attempt in 0.. {
        let by_trace = spans(&exports.lock().unwrap());
        let services: HashSet<&str> =
            by_trace.get(&trace_id).into_iter().flatten().map(|(service, _)| service.as_str()).collect();
        if services.contains("pressroom-command-api") && services.contains("pressroom-projector") {
            let names: Vec<&str> = by_trace[&trace_id].iter().map(|(_, name)| name.as_str()).collect();
            assert!(names.contains(&"projector.apply"), "{names:?}");
            assert!(names.contains(&"request"), "{names:?}");
            break;
        }
        assert!(attempt < 100, "trace {trace_id} not exported by both services: {services:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop().await;
}
