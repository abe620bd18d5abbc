//! The write-side domain: validated values, events, and the pure aggregates that decide them.

pub mod author;
pub mod comment;
pub mod events;
pub mod media;
pub mod post;
pub mod role;
pub mod slug;
pub mod values;

pub use events::{DomainEvent, StreamType};

/// A command that the current state of its stream does not allow (e.g. publishing a deleted post).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    /// The stream does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The transition is not allowed from the current state (409).
    #[error("{0}")]
    InvalidTransition(String),
    /// The actor may not do this (403).
    #[error("{0}")]
    Forbidden(&'static str),
}
