//! `/metrics` on every service, in Prometheus text format, counting the traffic a test caused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::{Stack, TestDb};
use shared::domain::role::Role;

/// The value of the first sample line that contains every fragment.
fn sample(text: &str, name: &str, fragments: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && fragments.iter().all(|f| l.contains(f)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_cache_lookups_by_layer() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, slug, position) = stack.published_post(&token, "Measured").await;
    for _ in 0..3 {
        assert_eq!(stack.list_posts("?limit=5").await.status(), 200);
    }
    assert_eq!(stack.get_post("no-such-post", None).await.status(), 404);
    assert_eq!(stack.get_post(&slug, Some(position)).await.status(), 200);
    for _ in 0..20 {
        if stack.get_post(&slug, None).await.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stack.get_post(&slug, None).await.status(), 200);

    let text = stack.http.get(format!("{}/metrics", stack.query)).send().await.unwrap().text().await.unwrap();
    let list = sample(&text, "pressroom_http_requests_total", &["route=\"/v1/posts\"", "status=\"200\""]);
    assert_eq!(list, Some(3.0), "{text}");
    let missing = sample(&text, "pressroom_http_requests_total", &["route=\"/v1/posts/{slug}\"", "status=\"404\""]);
    assert_eq!(missing, Some(1.0));
    assert!(sample(&text, "pressroom_http_request_duration_seconds_bucket", &["route=\"/v1/posts\"", "le=\"0.001\""])
        .is_some());
    assert!(
        sample(&text, "pressroom_cache_requests_total", &["layer=\"process\"", "result=\"hit\""]).unwrap_or(0.0) >= 1.0
    );
    assert!(text.contains("pressroom_replica_lag_seconds"));

    let commands = stack.http.get(format!("{}/metrics", stack.command)).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(
            &commands,
            "pressroom_http_requests_total",
            &["route=\"/v1/posts\"", "method=\"POST\"", "status=\"201\""]
        ),
        Some(1.0)
    );
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let projector = stack.http.get(format!("{}/metrics", stack.projector)).send().await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(&projector, "pressroom_projection_lag_events", &["projection=\"posts\""]),
        Some(0.0),
        "{projector}"
    );
    stack.stop().await;
}
