//! Pressroom's shared core, in layers: `domain` (events and aggregates: pure, no IO), `store` (the event
//! store, stream loading, connections and read routes), `write` (the command services), `read` (the
//! public read shapes, rendering, Redis key names), `http` (serving, problem+json, middleware, auth, rate
//! limits, outbound requests), `media` (image checks, variants, URLs and the object store) and `service` (configuration, telemetry, metrics, shutdown). It knows no service.

pub mod domain;
pub mod http;
pub mod media;
pub mod read;
pub mod service;
pub mod store;
pub mod write;

/// Embedded migrations (`migrations/`), applied by `pressroom-ops migrate` and by the tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
