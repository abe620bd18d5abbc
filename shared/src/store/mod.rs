//! Storage: the event store (the only writer of `events`), stream loading, log positions, projection
//! checkpoints, and the connections every read and write goes through, with the route each read names.

pub mod db;
pub mod event_store;
pub mod grouped;
pub mod log;
pub mod notify;
pub mod position;
pub mod projections;
pub mod streams;
