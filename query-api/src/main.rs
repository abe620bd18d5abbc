//! `pressroom-query-api`: the public read API on 127.0.0.1:8080.

use std::sync::Arc;

use pressroom_query_api::routing::ReadPools;
use pressroom_query_api::{app, AppState};
use shared::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("pressroom-query-api");
    let config = Config::from_env()?;
    let reads = Arc::new(read_pools(&config)?);
    let shutdown = shared::shutdown::on_signal();
    tokio::spawn(reads.clone().watch_health(shutdown.clone()));
    shared::http::serve(
        config.query_addr,
        app(AppState { reads }, config.request_timeout),
        shutdown,
    )
    .await?;
    Ok(())
}

/// The primary pool and one pool per replica URL, named `replica1`, `replica2`…
pub fn read_pools(config: &Config) -> Result<ReadPools, sqlx::Error> {
    let primary = shared::db::pool(
        &config.database_primary_url,
        config.db_pool_size,
        "pressroom-query-api",
    )?;
    let mut replicas = Vec::new();
    for (i, url) in config.database_replica_urls.iter().enumerate() {
        replicas.push((
            format!("replica{}", i + 1),
            shared::db::pool(url, config.db_pool_size, "pressroom-query-api")?,
        ));
    }
    Ok(ReadPools::new(
        primary,
        replicas,
        config.max_replica_lag,
        config.consistency_wait,
    ))
}
