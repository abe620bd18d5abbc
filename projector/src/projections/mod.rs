//! Projections: each turns events into its own read tables, inside the batch transaction that also
//! advances its checkpoint; side effects outside PostgreSQL (Redis) run after commit.

pub mod comments;
pub mod media;
pub mod posts;

use std::future::Future;

use shared::domain::events::DecodeError;
use shared::domain::DomainEvent;
use shared::store::event_store::RecordedEvent;
use shared::store::position::LogPosition;
use sqlx::PgConnection;
use tracing::Instrument;

/// An event of a batch, decoded, with the span that traces its application (it continues the trace of
/// the command that appended the event).
pub struct Applying<'a> {
    pub event: &'a RecordedEvent,
    pub decoded: DomainEvent,
    pub span: tracing::Span,
}

/// Why an event could not be applied. Any of these halts the projection at that event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("event at position {position} cannot be decoded: {source}")]
    Decode { position: i64, source: DecodeError },
    #[error("event at position {position} cannot be applied: {reason}")]
    Invalid { position: i64, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Whether `event_type` is one of `types`: an exact name, or a prefix followed by `%`.
pub fn matches_types(types: &[&str], event_type: &str) -> bool {
    types.iter().any(|t| t.strip_suffix('%').map_or(*t == event_type, |prefix| event_type.starts_with(prefix)))
}

/// A read model fed by the event log.
pub trait Projection: Send + Sync + 'static {
    /// What the projection leaves to do after its transaction commits.
    type Effect: Send;

    /// The checkpoint and status name (`posts`, `authors`, …).
    fn name(&self) -> &'static str;

    /// The event types this projection reads: exact names, or a prefix followed by `%` (SQL `LIKE`, which
    /// the log read uses to leave out the payloads of the others). Others pass by undecoded, so an event
    /// that cannot be decoded halts only the projections that need it.
    fn event_types(&self) -> &'static [&'static str];

    /// Whether this projection reads events of this type (one of [`Projection::event_types`]).
    fn handles(&self, event_type: &str) -> bool {
        matches_types(self.event_types(), event_type)
    }

    /// Applies one decoded event in the batch transaction, queuing after-commit effects.
    fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<Self::Effect>,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Applies a batch's events in log order, in the batch transaction. The default applies them one by
    /// one, each in its span; a projection may override it to read and write set-based.
    fn apply_all(
        &self,
        conn: &mut PgConnection,
        batch: &[Applying<'_>],
        effects: &mut Vec<Self::Effect>,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        async move {
            for a in batch {
                self.apply(&mut *conn, a.event, &a.decoded, effects).instrument(a.span.clone()).await?;
            }
            Ok(())
        }
    }

    /// Runs the effects of a committed batch; false when some did not land (Redis down). Failures are
    /// logged, never fatal: the runner redoes them with [`Projection::redo_effects`].
    fn after_commit(&self, effects: Vec<Self::Effect>) -> impl Future<Output = bool> + Send;

    /// Redoes the effects of everything applied after `since` (after a crash between commit and
    /// effects, or a Redis outage); true when they all landed.
    fn redo_effects(&self, since: LogPosition) -> impl Future<Output = bool> + Send {
        let _ = since;
        async { true }
    }
}

#[cfg(test)]
mod tests {
    use super::matches_types;

    #[test]
    fn event_types_match_exact_names_and_percent_prefixes_only() {
        let types = ["Post%", "AuthorRegistered"];
        assert!(matches_types(&types, "PostDrafted"));
        assert!(matches_types(&types, "AuthorRegistered"));
        assert!(!matches_types(&types, "AuthorRegisteredAgain"));
        assert!(!matches_types(&types, "CommentSubmitted"));
        assert!(!matches_types(&[], "PostDrafted"));
    }
}
