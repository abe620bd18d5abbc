//! The rebuild's first pass: the whole log, as far as it is safely ordered, folded in memory through the
//! live projection's own fold ([`PostsFold`]), the next chunks read (one per core) while this one is folded.

use std::collections::{HashSet, VecDeque};

use shared::store::event_store::RecordedEvent;
use shared::store::log;
use shared::store::position::LogPosition;
use sqlx::PgPool;

use super::shadow::parallelism;
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
    // The next chunks are read while this one is folded.
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

/// Sends the log in order, in chunks of [`FOLD_CHUNK`] events, as far as it is safely ordered when it starts
/// (the catch-up reads the rest), until an error or the receiver is gone.
async fn read_log(pool: PgPool, chunks: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, sqlx::Error>>) {
    if let Err(e) = send_log(&pool, &chunks).await {
        let _ = chunks.send(Err(e)).await;
    }
}

/// Reads one chunk per core at a time, each on its own connection: PostgreSQL turning the payloads into
/// JSON text is most of a chunk's time, and one backend alone left the fold waiting with a core idle. The
/// chunks' bounds come from the position index first, so none depends on the one before being read.
async fn send_log(
    pool: &PgPool,
    chunks: &tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, sqlx::Error>>,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let horizon = log::safe_horizon(&mut conn).await?;
    let (mut reading, mut next) = (VecDeque::new(), Some(LogPosition::START));
    loop {
        while reading.len() < parallelism() {
            let Some(from) = next else { break };
            // Chunk bounds below the horizon never move: the chunk after `from` is exactly the events up to
            // `next`, and a last, shorter one may run past the horizon (those events are safely ordered too).
            next = log::nth_after(&mut conn, from, FOLD_CHUNK, horizon).await?;
            let pool = pool.clone();
            reading.push_back(tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                log::read_after(&mut conn, from, FOLD_CHUNK, Some(posts::EVENT_TYPES)).await
            }));
        }
        let Some(read) = reading.pop_front() else { return Ok(()) };
        let events = read.await.map_err(|e| sqlx::Error::Protocol(format!("reading the log failed: {e}")))??;
        if chunks.send(Ok(events)).await.is_err() {
            return Ok(());
        }
    }
}
