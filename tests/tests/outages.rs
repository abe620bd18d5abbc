//! Dependency outages with the real processes: the replica or Redis stops mid-run, reads keep answering
//! 200, and each comes back into use when restarted. In a test binary of its own: the outage hits the
//! whole shared topology.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use shared::domain::role::Role;

fn topology() -> String {
    std::env::var("PRESSROOM_TEST_TOPOLOGY_DIR").expect("PRESSROOM_TEST_TOPOLOGY_DIR (run through ./ops/test)")
}

fn sh(cmd: &str) {
    let status = std::process::Command::new("bash").arg("-c").arg(cmd).status().unwrap();
    assert!(status.success(), "`{cmd}` failed");
}

fn stop_replica() {
    sh(&format!(
        "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D {}/replica -m fast -w stop >/dev/null",
        topology()
    ));
}

fn start_replica() {
    let dir = topology();
    sh(&format!("runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D {dir}/replica -l {dir}/log/replica.log -w start >/dev/null"));
}

fn stop_redis() {
    let port = std::env::var("PRESSROOM_TEST_REDIS_PORT").unwrap();
    sh(&format!("redis-cli -p {port} shutdown nosave >/dev/null 2>&1 || true"));
}

fn start_redis() {
    let (dir, port) = (topology(), std::env::var("PRESSROOM_TEST_REDIS_PORT").unwrap());
    sh(&format!(
        "redis-server --bind 127.0.0.1 --port {port} --daemonize yes --dir {dir}/redis --pidfile {dir}/redis/redis.pid \
         --logfile {dir}/log/redis.log --save '' >/dev/null; for i in $(seq 50); do redis-cli -p {port} ping >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"
    ));
}

async fn sources(stack: &Stack, slug: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let res = stack.http.get(format!("{}/v1/posts?limit=5", stack.query)).send().await.unwrap();
        assert_eq!(res.status(), 200, "list during the outage");
        let res = stack.get_post(slug, None).await;
        assert_eq!(res.status(), 200, "post during the outage");
        out.push(res.headers()["pressroom-read-source"].to_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

#[tokio::test]
async fn reads_keep_answering_while_the_replica_and_then_redis_are_down_and_use_them_again_after() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, slug, position) = stack.published_post(&token, "Outage proof").await;
    assert_eq!(stack.get_post(&slug, Some(position)).await.status(), 200);

    stop_replica();
    let result = tokio::spawn(async move {
        sources(&stack, &slug, 10).await;
        // Uncached reads prove the primary is answering: a list with a fresh token.
        let (_, _, p) = stack.published_post(&token, "During the replica outage").await;
        let res = stack
            .http
            .get(format!("{}/v1/posts", stack.query))
            .header("pressroom-min-position", p)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["pressroom-read-source"], "primary");
        start_replica();
        let started = tokio::time::Instant::now();
        loop {
            let res = stack
                .http
                .get(format!("{}/v1/posts?limit=3", stack.query))
                .header("pressroom-min-position", p)
                .send()
                .await
                .unwrap();
            if res.headers()["pressroom-read-source"] == "replica" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "the replica never came back into use");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        stop_redis();
        sources(&stack, &slug, 10).await;
        let (_, during, _) = stack.published_post(&token, "During the Redis outage").await;
        let started = tokio::time::Instant::now();
        while stack.get_post(&during, None).await.status() != 200 {
            assert!(started.elapsed() < Duration::from_secs(5), "posts published without Redis never became readable");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        start_redis();
        // Back in use: the projector writes through again and the query API reads entries from it.
        let (_, after, _) = stack.published_post(&token, "After the Redis outage").await;
        let started = tokio::time::Instant::now();
        loop {
            let res = stack.get_post(&after, None).await;
            if res.status() == 200 && res.headers()["pressroom-read-source"] == "cache" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "Redis never came back into use");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stack
    })
    .await;
    // Whatever happened, leave the topology whole for the tests that follow.
    if std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D {}/replica status >/dev/null",
            topology()
        ))
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        start_replica();
    }
    start_redis();
    match result {
        Ok(stack) => stack.stop().await,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
