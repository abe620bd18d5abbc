//! Write-side application services: each loads a stream ([`crate::store::streams`]), lets its aggregate decide,
//! and appends the events together with any reservation rows atomically. Used by the command API and `pressroom-ops`.

pub mod authors;
pub mod comments;
pub mod media;
pub mod posts;

use crate::domain::values::FieldError;
use crate::domain::DomainError;
use crate::store::event_store::EventStoreError;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The caller's expected version is stale (412 when it came from If-Match).
    #[error("the stream is at version {current}, not {expected}")]
    VersionMismatch { expected: i32, current: i32 },
    /// A concurrent writer appended first; the current version must be re-read.
    #[error("a concurrent write won")]
    Concurrent,
    #[error("slug `{0}` is already taken")]
    SlugTaken(String),
    /// The acting author's stream moved on since the caller read it (a deactivation, a role change):
    /// re-read the author and decide again.
    #[error("the acting author changed since they were read")]
    AuthorChanged,
    #[error("email is already registered")]
    EmailTaken,
    /// Another author has this display name (ignoring case).
    #[error("an author named `{0}` already exists")]
    NameTaken(String),
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// Media a published or scheduled post (this slug) uses cannot be deleted.
    #[error("the post `{0}` uses this media")]
    InUse(String),
    /// A post cannot be published or scheduled, or start to use an image, while the image is deleted.
    #[error("media {0} is deleted")]
    MediaDeleted(uuid::Uuid),
    /// The media store failed (503; nothing was recorded).
    #[error(transparent)]
    Store(#[from] crate::media::store::StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<EventStoreError> for WriteError {
    fn from(e: EventStoreError) -> Self {
        match e {
            EventStoreError::Conflict { .. } => WriteError::Concurrent,
            EventStoreError::GuardMoved(_) => WriteError::AuthorChanged,
            EventStoreError::SlugTaken(slug) => WriteError::SlugTaken(slug),
            EventStoreError::MediaDeleted(id) => WriteError::MediaDeleted(id),
            EventStoreError::Database(d) => WriteError::Database(d),
        }
    }
}
