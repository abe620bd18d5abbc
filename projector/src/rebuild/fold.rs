//! The rebuild's first pass: the whole log, as far as it is safely ordered, folded in memory through the
//! live projection's own fold ([`PostsFold`]), the next chunk read while this one is folded.

use std::collections::HashSet;

use shared::store::event_store::RecordedEvent;
use shared::store::position::LogPosition;
use sqlx::PgPool;

use super::{Progress, RebuildError, FOLD_CHUNK};
use crate::projections::posts::{self, PostsFold};

/// The fold of the log up to `at`, and how many events were read.
pub(super) struct Folded {
    pub fold: PostsFold,
    pub at: LogPosition,
    pub events: u64,
}

/// Reads the whole log (as far as it is safely ordered) and folds it exactly as the live projection
/// applies it, event by event.
pub(super) async fn fold_log(
    pool: &PgPool,
    skipped: &HashSet<i64>,
    progress: &dyn Progress,
) -> Result<Folded, RebuildError> {
    // The next chunk is read while this one is folded (PostgreSQL and the fold each keep a core busy).
    let (chunks, mut incoming) = tokio::sync::mpsc::channel(1);
    tokio::spawn(read_log(pool.clone(), chunks));
    let mut fold = PostsFold::default();
    let (mut at, mut total, mut effects) = (LogPosition::START, 0u64, Vec::new());
    while let Some(events) = incoming.recv().await {
        let events = events?;
        let Some(last) = events.last().map(|e| e.log_position()) else { break };
        for event in &events {
            if skipped.contains(&event.global_position) || !posts::handles(&event.event_type) {
                continue;
            }
            let decoded = event
                .decode()
                .map_err(|e| RebuildError::Fold { position: event.global_position, reason: e.to_string() })?;
            fold.apply(event, &decoded, &mut effects)?;
            effects.clear(); // nothing to refresh: the swap bumps the Redis namespace
        }
        total += events.len() as u64;
        progress.advance(events.len() as u64);
        at = last;
    }
    Ok(Folded { fold, at, events: total })
}

/// Sends the log in chunks of [`FOLD_CHUNK`] events, as far as it is safely ordered, until a short chunk,
/// an error, or the receiver is gone.
async fn read_log(pool: PgPool, chunks: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, sqlx::Error>>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            let _ = chunks.send(Err(e)).await;
            return;
        }
    };
    let mut at = LogPosition::START;
    loop {
        let chunk = shared::store::log::read_after(&mut conn, at, FOLD_CHUNK, Some(posts::EVENT_TYPES)).await;
        let next = match &chunk {
            Ok(events) if events.len() as i64 == FOLD_CHUNK => events.last().map(|e| e.log_position()),
            _ => None,
        };
        if chunks.send(chunk).await.is_err() {
            return;
        }
        match next {
            Some(last) => at = last,
            None => return,
        }
    }
}
