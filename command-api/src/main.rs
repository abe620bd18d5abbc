//! `pressroom-command-api`: the authors' write API on 127.0.0.1:8081.

use pressroom_command_api::{app, AppState};
use shared::http::Listen;
use shared::service::config::Config;

/// mimalloc instead of glibc's malloc: allocation and freeing were a fifth of the instructions per
/// request (callgrind over `POST /v1/posts`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::service::telemetry::init("pressroom-command-api");
    shared::service::metrics::install();
    let config = Config::from_env()?;
    let (addr, timeout, grace) = (config.command_addr, config.request_timeout, config.shutdown_grace);
    let state = AppState::from_config(config)?;
    let shutdown = shared::service::shutdown::on_signal();
    tokio::spawn(shared::service::metrics::watch_pool("primary".into(), state.pool.clone(), shutdown.clone()));
    shared::service::metrics::zero_counters(&[(
        "pressroom_rate_limit_rejections_total",
        "bucket",
        &["writes", "comments", "login"],
    )]);
    shared::http::serve_or_exit(
        Listen { addr, setting: "PRESSROOM_COMMAND_ADDR" },
        app(state, timeout),
        shutdown,
        grace,
    )
    .await;
    shared::service::telemetry::shutdown();
    Ok(())
}
