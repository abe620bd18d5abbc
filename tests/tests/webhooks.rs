//! Webhook delivery against receivers running in the test: every subscribed event once, in order, signed
//! the Standard Webhooks way (verified here with the specification's algorithm, not the product's code);
//! retries with backoff; dead letters; replay from a position; a slow receiver holds up only itself;
//! loopback targets are refused at delivery time; the status lists every subscription.
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

/// The Standard Webhooks headers of one delivery.
#[derive(Clone, Debug)]
struct Signed {
    id: String,
    timestamp: String,
    signature: String,
}

#[derive(Default)]
struct Receiver {
    /// (headers, body) of every successfully answered delivery.
    ok: Mutex<Vec<(Signed, Bytes)>>,
    failures_left: AtomicUsize,
    dead_answers_ok: AtomicBool,
    dead: Mutex<Vec<Bytes>>,
}

async fn flaky(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if r.failures_left.load(Ordering::SeqCst) > 0 {
        r.failures_left.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let signed = Signed { id: h("webhook-id"), timestamp: h("webhook-timestamp"), signature: h("webhook-signature") };
    r.ok.lock().unwrap().push((signed, body));
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

/// A receiver's check, as the Standard Webhooks specification describes it: the key is the base64 after
/// `whsec_`; the content is `id.timestamp.body`; any `v1,` entry of the space-separated header may match
/// (compared in constant time by real libraries); timestamps more than 5 minutes from `now` are refused.
fn verify(secret: &str, signed: &Signed, body: &[u8], now: i64) -> Result<(), &'static str> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").ok_or("not a whsec_ secret")?).map_err(|_| "bad secret")?;
    let ts: i64 = signed.timestamp.parse().map_err(|_| "bad timestamp")?;
    if (now - ts).abs() > 300 {
        return Err("timestamp outside the tolerance");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", signed.id, signed.timestamp).as_bytes());
    mac.update(body);
    let expected = b64.encode(mac.finalize().into_bytes());
    let ok = signed.signature.split(' ').any(|entry| entry.strip_prefix("v1,") == Some(expected.as_str()));
    if ok {
        Ok(())
    } else {
        Err("no matching signature")
    }
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
    let flaky_sub: Value = flaky_sub.json().await.unwrap();
    let secret = flaky_sub["secret"].as_str().unwrap().to_string();
    assert_eq!(secret, "whsec_YS1sb25nLXdlYmhvb2stc2VjcmV0", "shown once, as the key's base64");
    let listed: Value = stack.command(Method::GET, "/v1/webhooks", Some(&admin), None, &[]).await.json().await.unwrap();
    assert!(listed["webhooks"][0].get("secret").is_none(), "never shown again: {listed}");
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
    let now = chrono::Utc::now().timestamp();
    for (signed, body) in &delivered {
        assert_eq!(verify(&secret, signed, body, now), Ok(()), "signed with the subscription's secret");
        assert!(verify(&secret, signed, body, now + 600).is_err(), "a replay ten minutes later is detectable");
        let mut tampered = body.to_vec();
        tampered.push(b' ');
        assert!(verify(&secret, signed, &tampered, now).is_err(), "the body is signed");
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(signed.id, event["event_id"].as_str().unwrap(), "webhook-id is the event id");
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

#[derive(Default)]
struct Pair {
    fast: Mutex<Vec<Bytes>>,
    slow_calls: AtomicUsize,
}

async fn fast(State(r): State<Arc<Pair>>, body: Bytes) -> StatusCode {
    r.fast.lock().unwrap().push(body);
    StatusCode::OK
}

/// Answers long after the delivery timeout (10 s).
async fn slow(State(r): State<Arc<Pair>>) -> StatusCode {
    r.slow_calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    StatusCode::OK
}

async fn webhooks_status(stack: &Stack) -> Value {
    let out = stack.db.ops(&["projections", "status", "--json"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["projections"].as_array().unwrap().iter().find(|p| p["name"] == "webhooks").expect("webhooks listed").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_holds_up_only_its_own_subscription_and_the_status_lists_each_subscription() {
    let pair = Arc::new(Pair::default());
    let app = axum::Router::new().route("/fast", post(fast)).route("/slow", post(slow)).with_state(pair.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let env = [("PRESSROOM_WEBHOOK_ALLOW_PRIVATE", "1"), ("PRESSROOM_RATE_LIMIT_LOGIN", "0")];
    let stack = Stack::start_with(TestDb::fresh().await, &env).await;
    let (_, admin) = stack.token(Role::Admin).await;
    for path in ["slow", "fast"] {
        let body = json!({"url": format!("{base}/{path}"), "events": ["PostPublished"]});
        let res = stack.command(Method::POST, "/v1/webhooks", Some(&admin), Some(body), &[]).await;
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        assert!(created["secret"].as_str().unwrap().starts_with("whsec_"), "generated when omitted");
    }
    let (_, author) = stack.token(Role::Author).await;
    for i in 0..3 {
        stack.published_post(&author, &format!("Hurried {i}")).await;
    }
    until("the fast receiver's three deliveries", 6, || pair.fast.lock().unwrap().len() >= 3).await;
    assert!(pair.slow_calls.load(Ordering::SeqCst) >= 1, "the slow receiver was being called meanwhile");

    let status = webhooks_status(&stack).await;
    let subs = status["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 2, "{status}");
    let by_url = |suffix: &str| subs.iter().find(|s| s["url"].as_str().unwrap().ends_with(suffix)).unwrap().clone();
    assert_eq!(by_url("/fast")["lag_events"], 0, "{status}");
    assert_eq!(by_url("/slow")["lag_events"], 3, "{status}");
    assert_eq!(status["lag_events"], 3, "the slowest subscription's lag: {status}");
    assert_eq!(status["position"], by_url("/slow")["position"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_never_reach_loopback_addresses_even_for_a_subscription_stored_with_one() {
    let pair = Arc::new(Pair::default());
    let app = axum::Router::new().route("/fast", post(fast)).with_state(pair.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Private targets are not allowed here. The rows stand for a name that resolved to a public address
    // when the subscription was created and to loopback now (DNS rebinding), and for literal forms.
    let stack = Stack::start(TestDb::fresh().await).await;
    let urls = [
        format!("http://localhost:{port}/fast"),
        format!("http://[::ffff:127.0.0.1]:{port}/fast"),
        format!("http://127.0.0.1:{port}/fast"),
    ];
    for url in &urls {
        sqlx::query(
            "insert into webhook_subscriptions (id, url, events, secret, from_position)
             values (gen_random_uuid(), $1, '{PostPublished}', 'whsec_YS1sb25nLXdlYmhvb2stc2VjcmV0', 0)",
        )
        .bind(url)
        .execute(&stack.db.admin)
        .await
        .unwrap();
    }
    let (_, author) = stack.token(Role::Author).await;
    stack.published_post(&author, "Not for loopback").await;
    let started = tokio::time::Instant::now();
    loop {
        let refused: i64 = sqlx::query_scalar(
            "select count(distinct subscription_id) from webhook_deliveries
              where not succeeded and (error like '%loopback%' or error like '%private%')",
        )
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
        if refused == urls.len() as i64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "refused attempts logged: {refused}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pair.fast.lock().unwrap().is_empty(), "nothing reached the loopback receiver");
    let status = webhooks_status(&stack).await;
    assert_eq!(status["state"], "retrying", "{status}");
    stack.stop().await;
}
