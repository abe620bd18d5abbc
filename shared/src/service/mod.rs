//! What every process needs around its work: configuration, telemetry, metrics and graceful shutdown.

pub mod config;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
