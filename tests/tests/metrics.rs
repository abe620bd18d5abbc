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
    // Where an event's way to readers took its time: the batches' age at each stage, in order.
    let stage = |stage: &str| {
        let labels = ["projection=\"posts\"".to_string(), format!("stage=\"{stage}\"")];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let count = sample(&projector, "pressroom_freshness_duration_seconds_count", &labels).unwrap_or(0.0);
        let sum = sample(&projector, "pressroom_freshness_duration_seconds_sum", &labels).unwrap_or(0.0);
        (count, sum)
    };
    let (read, committed, effects) = (stage("read"), stage("committed"), stage("effects"));
    assert!(
        read.0 >= 1.0 && read.0 == committed.0 && committed.0 == effects.0,
        "every batch at every stage: {projector}"
    );
    assert!(
        read.1 <= committed.1 && committed.1 <= effects.1,
        "later stages are older: {read:?} {committed:?} {effects:?}"
    );
    stack.stop().await;
}

/// The metric names in an exposition (histograms as their `_bucket`/`_sum`/`_count` series).
fn exported(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect()
}

/// Every `pressroom_…` name in a text of queries.
fn queried(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("pressroom_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn the_dashboard_and_alert_rules_query_only_metrics_the_services_export() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, slug, position) = stack.published_post(&token, "Watched").await;
    assert_eq!(stack.get_post(&slug, Some(position)).await.status(), 200);
    assert_eq!(stack.list_posts("?limit=5").await.status(), 200);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/deploy");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    let rules = std::fs::read_to_string(root.join("pressroom-alerts.yml")).unwrap();
    let names = queried(&(exprs.join("\n") + &rules));
    assert!(names.len() >= 12, "{names:?}");
    // The background samplers (replica health every 0.5 s, projection lag every 5 s, pools) report soon.
    for attempt in 0.. {
        let mut all = std::collections::BTreeSet::new();
        for base in [&stack.query, &stack.command, &stack.projector] {
            let text = stack.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
            all.extend(exported(&text));
        }
        let missing: Vec<&String> = names.iter().filter(|n| !all.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(attempt < 100, "queried but not exported: {missing:?}\nexported: {all:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stack.stop().await;
}
