//! Pressroom's shared core: event types and aggregates, the event store, configuration, telemetry,
//! problem+json errors, authentication and database/Redis helpers. It knows no service.

pub mod api_doc;
pub mod auth;
pub mod client_ip;
pub mod config;
pub mod db;
pub mod domain;
pub mod event_store;
pub mod http;
pub mod metrics;
pub mod middleware;
pub mod outbound;
pub mod position;
pub mod problem;
pub mod projections;
pub mod rate_limit;
pub mod read_model;
pub mod redis_keys;
pub mod render;
pub mod shutdown;
pub mod streams;
pub mod telemetry;
pub mod write;

/// Embedded migrations (`migrations/`), applied by `pressroom-ops migrate` and by the tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
