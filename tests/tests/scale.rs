//! The horizontal read path of DESIGN §8 on one machine: nginx (ops/deploy/nginx.conf) in front of two
//! query-api instances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pressroom_tests::{free_port, Stack, TestDb};
use shared::domain::role::Role;

async fn ready(http: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

#[tokio::test]
async fn reads_through_nginx_keep_answering_while_one_of_two_query_apis_restarts() {
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let (_, slug, position) = stack.published_post(&token, "Behind nginx").await;
    assert_eq!(stack.get_post(&slug, Some(position)).await.status(), 200);
    let first_port: u16 = stack.query.rsplit(':').next().unwrap().parse().unwrap();
    let second_port = free_port();
    let _second = stack.spawn_query_api(second_port);
    ready(&stack.http, &format!("http://127.0.0.1:{second_port}/ready")).await;

    // nginx with the deployment config, rendered for these ports.
    let dir = tempfile_dir();
    let listen = free_port();
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/deploy/nginx.conf"))
        .unwrap()
        .replace("__LISTEN__", &format!("127.0.0.1:{listen}"))
        .replace("__QUERY_1__", &format!("127.0.0.1:{first_port}"))
        .replace("__QUERY_2__", &format!("127.0.0.1:{second_port}"))
        .replace("__COMMAND__", stack.command.trim_start_matches("http://"))
        .replace("__CACHE_DIR__", &format!("{dir}/cache"))
        .replace("__PID__", &format!("{dir}/nginx.pid"))
        .replace("__LOGS__", &dir);
    std::fs::write(format!("{dir}/nginx.conf"), conf).unwrap();
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists());
    let mut nginx = tokio::process::Command::new(nginx.expect("nginx is installed by ops/lib/install-deps.sh"))
        .args(["-p", &dir, "-c", &format!("{dir}/nginx.conf"), "-g", "daemon off;"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let front = format!("http://127.0.0.1:{listen}");
    ready(&stack.http, &format!("{front}/v1/posts")).await;
    // One origin: writes through nginx reach the command API (a wrong password is its 401, not a 405).
    let login = stack
        .http
        .post(format!("{front}/v1/session"))
        .json(&serde_json::json!({"email": "a@b.c", "password": "wrong-password"}));
    assert_eq!(login.send().await.unwrap().status(), 401, "POST through nginx reaches the command API");

    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let (http, front, slug) = (stack.http.clone(), front.clone(), slug.clone());
            let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
            tokio::spawn(async move {
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let url = if n % 2 == 0 { format!("{front}/v1/posts/{slug}") } else { format!("{front}/v1/posts") };
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => failures.lock().unwrap().push(format!("{url}: {}", r.status())),
                        Err(e) => failures.lock().unwrap().push(format!("{url}: {e}")),
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Restart the first instance: SIGTERM (it drains), down for a moment, then up again on its port.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = stack.terminate_query_api();
    tokio::time::timeout(Duration::from_secs(10), first.wait()).await.unwrap().unwrap();
    let during = reads.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(reads.load(Ordering::Relaxed) > during + 20, "reads stalled while one instance was down");
    let _restarted = stack.spawn_query_api(first_port);
    ready(&stack.http, &format!("http://127.0.0.1:{first_port}/ready")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failed reads: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert!(reads.load(Ordering::Relaxed) > 100);
    let res = stack.http.get(format!("{front}/v1/posts/{slug}")).send().await.unwrap();
    assert!(res.headers().contains_key("pressroom-position"), "Pressroom-* headers pass through nginx");
    // SIGTERM, not SIGKILL: nginx's master takes its workers down with it.
    let pid = nginx.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    tokio::time::timeout(Duration::from_secs(10), nginx.wait()).await.unwrap().unwrap();
    stack.stop().await;
}

/// A fresh folder nginx's workers (nobody) can write to.
fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("pressroom-nginx-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [dir.clone(), dir.join("cache")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    dir.to_string_lossy().to_string()
}
