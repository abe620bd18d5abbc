//! Webhook delivery against a receiver running in the test: every subscribed event once, in order,
//! signed; retries with backoff; dead letters; replay from a position.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use pressroom_tests::{Stack, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use shared::domain::role::Role;

const SECRET: &str = "a-long-webhook-secret";

#[derive(Default)]
struct Receiver {
    /// (signature header, body) of every successfully answered delivery.
    ok: Mutex<Vec<(String, Bytes)>>,
    failures_left: AtomicUsize,
    dead_answers_ok: AtomicBool,
    dead: Mutex<Vec<Bytes>>,
}

async fn flaky(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if r.failures_left.load(Ordering::SeqCst) > 0 {
        r.failures_left.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let sig = headers.get("pressroom-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    r.ok.lock().unwrap().push((sig, body));
    StatusCode::OK
}

async fn broken(State(r): State<Arc<Receiver>>, body: Bytes) -> StatusCode {
    if r.dead_answers_ok.load(Ordering::SeqCst) {
        r.dead.lock().unwrap().push(body);
        StatusCode::NO_CONTENT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let started = tokio::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_events_arrive_once_in_order_signed_with_retries_dead_letters_and_replay() {
    let receiver = Arc::new(Receiver { failures_left: AtomicUsize::new(3), ..Default::default() });
    let app =
        axum::Router::new().route("/flaky", post(flaky)).route("/broken", post(broken)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = [
        ("PRESSROOM_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("PRESSROOM_WEBHOOK_RETRY_BASE", "50ms"),
        ("PRESSROOM_WEBHOOK_MAX_ATTEMPTS", "4"),
        ("PRESSROOM_RATE_LIMIT_LOGIN", "0"),
    ];
    let stack = Stack::start_with(TestDb::fresh().await, &env).await;
    let (_, admin) = stack.token(Role::Admin).await;
    let subscribe = |url: String, events: Value| {
        let body = json!({"url": url, "events": events, "secret": SECRET});
        stack.command(Method::POST, "/v1/webhooks", Some(&admin), Some(body), &[])
    };
    let flaky_sub = subscribe(format!("{base}/flaky"), json!(["PostDrafted", "PostPublished"])).await;
    assert_eq!(flaky_sub.status(), 201);
    let broken_sub: Value = subscribe(format!("{base}/broken"), json!(["PostPublished"])).await.json().await.unwrap();
    let broken_id = broken_sub["id"].as_str().unwrap().to_string();
    let from = broken_sub["from_position"].as_i64().unwrap();

    let (_, author) = stack.token(Role::Author).await;
    for i in 0..3 {
        stack.published_post(&author, &format!("Hooked {i}")).await;
    }

    until("six deliveries", 20, || receiver.ok.lock().unwrap().len() >= 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = receiver.ok.lock().unwrap().clone();
    assert_eq!(delivered.len(), 6, "each event once after the retries");
    let mut positions = Vec::new();
    for (sig, body) in &delivered {
        assert_eq!(sig, &expected_signature(body), "signed with the subscription's secret");
        let event: Value = serde_json::from_slice(body).unwrap();
        for field in ["event_id", "global_position", "event_type", "stream_id", "version", "recorded_at", "payload"] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
        positions.push(event["global_position"].as_i64().unwrap());
    }
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in log order: {positions:?}");
    let failed: i64 =
        sqlx::query_scalar("select count(*) from webhook_deliveries where not succeeded and error like '%500%'")
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
    assert_eq!(failed, 3, "the three refused tries are in the delivery log");

    // The broken receiver: every PostPublished ends in the dead letter after 4 tries.
    let admin_pool = stack.db.admin.clone();
    let started = tokio::time::Instant::now();
    loop {
        let dead: i64 =
            sqlx::query_scalar("select count(*) from webhook_dead_letters where subscription_id = $1::uuid")
                .bind(&broken_id)
                .fetch_one(&admin_pool)
                .await
                .unwrap();
        if dead == 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "dead letters: {dead}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Fixed, then replayed from where the subscription started: all three arrive.
    receiver.dead_answers_ok.store(true, Ordering::SeqCst);
    let replay = stack
        .command(
            Method::POST,
            &format!("/v1/webhooks/{broken_id}/replay"),
            Some(&admin),
            Some(json!({"from_position": from})),
            &[],
        )
        .await;
    assert_eq!(replay.status(), 200);
    until("replayed deliveries", 10, || receiver.dead.lock().unwrap().len() >= 3).await;
    let types: Vec<String> = receiver
        .dead
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap()["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, vec!["PostPublished"; 3]);
    stack.stop().await;
}
