//! Graceful shutdown of the query API: SIGTERM while requests are in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use shared::domain::role::Role;

#[tokio::test]
async fn sigterm_during_200_in_flight_slow_requests_lets_every_one_finish_without_a_5xx() {
    // Slow requests: list reads that wait up to PRESSROOM_CONSISTENCY_WAIT (4 s) for a projection that
    // cannot reach their token, because the projector is gone; then they answer 200 with what is projected.
    let off = [
        ("PRESSROOM_RATE_LIMIT_LOGIN", "0"),
        ("PRESSROOM_RATE_LIMIT_READS", "0"),
        ("PRESSROOM_CONSISTENCY_WAIT", "4s"),
    ];
    let mut stack = Stack::start_with(TestDb::fresh().await, &off).await;
    let (_, token) = stack.token(Role::Author).await;
    stack.kill_projector().await;
    let (_, _, position) = stack.published_post(&token, "Never projected").await;

    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = tokio::time::Instant::now();
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let req = http
                .get(format!("{}/v1/posts?limit=5", stack.query))
                .header("pressroom-min-position", position)
                .timeout(Duration::from_secs(20))
                .send();
            tokio::spawn(req)
        })
        .collect();
    // SIGTERM once the server is handling all 200 (the scrape itself is the 201st).
    let in_flight = || async {
        let text = http.get(format!("{}/metrics", stack.query)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("pressroom_http_requests_in_flight "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    while in_flight().await < 201.0 {
        assert!(started.elapsed() < Duration::from_millis(3000), "the 200 requests never were in flight together");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let query_api = stack.terminate_query_api();
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap().map(|res| res.status().as_u16()).map_err(|e| e.to_string()));
    }
    assert!(started.elapsed() >= Duration::from_millis(3900), "the requests waited for the consistency window");
    let bad: Vec<_> = statuses.iter().filter(|s| *s != &Ok(200)).collect();
    assert!(bad.is_empty(), "{} of 200 did not finish with 200: {:?}", bad.len(), &bad[..bad.len().min(5)]);
    let exit = tokio::time::timeout(Duration::from_secs(10), query_api.wait()).await.expect("query-api did not exit");
    assert!(exit.unwrap().success(), "query-api exits cleanly after draining");
    stack.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_responses_does_not_keep_the_query_api_alive_past_the_grace() {
    use tokio::io::AsyncWriteExt;
    let env = [("PRESSROOM_RATE_LIMIT_READS", "0"), ("PRESSROOM_SHUTDOWN_GRACE", "2s")];
    let mut stack = Stack::start_with(TestDb::fresh().await, &env).await;
    // Thousands of pipelined requests for a large document, none of whose answers is ever read: the
    // server's writes fill both socket buffers and its connection task waits on them forever.
    let addr = stack.query.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /openapi.json HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    let many = request.repeat(3000);
    let writer = tokio::spawn(async move {
        let _ = socket.write_all(many.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(60)).await; // hold the connection open, unread
        drop(socket);
    });
    // Until both buffers are full (a few MB of answers): from then on the connection cannot finish.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = tokio::time::Instant::now();
    let query_api = stack.terminate_query_api();
    let exit = tokio::time::timeout(Duration::from_secs(8), query_api.wait()).await;
    let exit = exit.expect("the query API outlived its 2 s shutdown grace by more than 6 s");
    assert!(exit.unwrap().success(), "exits 0 after closing what was left");
    assert!(started.elapsed() >= Duration::from_millis(1500), "it did wait for the stuck connection first");
    writer.abort();
    stack.stop().await;
}
