//! `pressroom-query-api`: the public read API on 127.0.0.1:8080.

use pressroom_query_api::{app, AppState};
use shared::http::Listen;
use shared::service::config::Config;

/// mimalloc instead of glibc's malloc: allocation and freeing were a fifth of the instructions per
/// request (callgrind over `POST /v1/posts`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::service::telemetry::init("pressroom-query-api");
    shared::service::metrics::install();
    let config = Config::from_env()?;
    let state = AppState::from_config(&config)?;
    let shutdown = shared::service::shutdown::on_signal();
    tokio::spawn(state.reads.clone().watch_health(shutdown.clone()));
    tokio::spawn(shared::service::metrics::watch_pool(
        "primary".into(),
        state.reads.route(shared::store::db::ReadRoute::Primary).0,
        shutdown.clone(),
    ));
    for replica in &state.reads.replicas {
        tokio::spawn(shared::service::metrics::watch_pool(
            replica.name.clone(),
            replica.pool.clone(),
            shutdown.clone(),
        ));
    }
    shared::service::metrics::zero_counters(&[("pressroom_rate_limit_rejections_total", "bucket", &["reads"])]);
    pressroom_query_api::cache::counters();
    tokio::spawn(state.cache.clone().follow_invalidations(config.redis_url.clone(), shutdown.clone()));
    tokio::spawn(state.cache.clone().flush_views(shutdown.clone()));
    let app = app(state, config.request_timeout);
    let listen = Listen { addr: config.query_addr, setting: "PRESSROOM_QUERY_ADDR" };
    shared::http::serve_or_exit(listen, app, shutdown, config.shutdown_grace).await;
    shared::service::telemetry::shutdown();
    Ok(())
}
