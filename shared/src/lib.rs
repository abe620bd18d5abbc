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

/// Lowercase hex of `bytes` appended to `out`: the one encoding of digests (ETags, media hashes, request
/// body digests).
pub fn hex_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    hex_into(&mut out, bytes);
    out
}

/// Embedded migrations (`migrations/`), applied by `pressroom-ops migrate` and by the tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
