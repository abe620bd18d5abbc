//! `pressroom-command-api`: the authors' write API on 127.0.0.1:8081.

use pressroom_command_api::{app, AppState};
use shared::auth::JwtKeys;
use shared::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("pressroom-command-api");
    let config = Config::from_env()?;
    let keys = JwtKeys::new(config.require_jwt_secret()?);
    let pool = shared::db::pool(
        &config.database_primary_url,
        config.db_pool_size,
        "pressroom-command-api",
    )?;
    let shutdown = shared::shutdown::on_signal();
    shared::http::serve(
        config.command_addr,
        app(AppState { pool, keys }, config.request_timeout),
        shutdown,
    )
    .await?;
    Ok(())
}
