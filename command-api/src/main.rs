//! `pressroom-command-api`: the authors' write API on 127.0.0.1:8081.

use pressroom_command_api::{app, AppState};
use shared::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("pressroom-command-api");
    let config = Config::from_env()?;
    let (addr, timeout) = (config.command_addr, config.request_timeout);
    let state = AppState::from_config(config)?;
    let shutdown = shared::shutdown::on_signal();
    shared::http::serve(addr, app(state, timeout), shutdown).await?;
    Ok(())
}
