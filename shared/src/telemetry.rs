//! One telemetry setup for every binary: JSON logs filtered by `PRESSROOM_LOG` (or `RUST_LOG`).

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(service: &'static str) {
    let filter = std::env::var("PRESSROOM_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false);
    let _ = tracing_subscriber::registry().with(filter).with(json).try_init();
    tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
}
