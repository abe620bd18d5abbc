//! `pressroom-projector`: applies the event log to the read model.

use pressroom_projector::{app, run_projections, status::StatusBoard, AppState};
use shared::service::config::Config;

/// mimalloc instead of glibc's malloc: allocation and freeing were a fifth of the instructions per
/// request (callgrind over `POST /v1/posts`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::service::telemetry::init("pressroom-projector");
    shared::service::metrics::install();
    let config = Config::from_env()?;
    // Straight to the primary, not through PgBouncer: the projector is a singleton leader with a few
    // long-lived sessions (pooling gains nothing), and its batches would otherwise take turns with the
    // command API's statements on PgBouncer's server connections, each switch costing the next client a
    // `SET application_name` round trip.
    let pool =
        shared::store::db::pool(&config.database_primary_direct_url, config.db_pool_size, "pressroom-projector")?;
    let media = pressroom_projector::media_worker::WorkerConfig {
        store: shared::media::store::MediaStore::open(&config.media.store)?,
        workers: config.media.workers,
        sweep_grace: config.media.sweep_grace,
        wake: Default::default(),
    };
    let shutdown = shared::service::shutdown::on_signal();
    let status = StatusBoard::default();
    tokio::spawn(shared::service::metrics::watch_pool("primary".into(), pool.clone(), shutdown.clone()));
    shared::service::metrics::zero_counters(&[(
        "pressroom_webhook_deliveries_total",
        "result",
        &["delivered", "failed"],
    )]);
    let server = shared::http::serve_or_exit(
        shared::http::Listen { addr: config.projector_addr, setting: "PRESSROOM_PROJECTOR_ADDR" },
        app(AppState { pool: pool.clone(), status: status.clone() }),
        shutdown.clone(),
        config.shutdown_grace,
    );
    tokio::join!(server, run_projections(&config, pool, media, status, shutdown.clone()));
    shared::service::telemetry::shutdown();
    Ok(())
}
