//! Publishes scheduled posts when their time comes. Runs under its own advisory lock (one active
//! instance), and appends `PostPublished` with the expected version, so that even two schedulers racing
//! could never publish a post twice: the loser's append is a version conflict.

use std::time::Duration;

use shared::domain::post::{Actor, PostCommand};
use shared::domain::role::Role;
use shared::event_store::Metadata;
use shared::write::WriteError;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runner::acquire_leadership;
use crate::status::StatusBoard;

pub const NAME: &str = "scheduler";
const TICK: Duration = Duration::from_secs(1);

/// The scheduler acts as the system, with editor rights over every post.
const SYSTEM: Actor = Actor { id: Uuid::nil(), role: Role::Editor };

/// Runs until shutdown: stands by while another instance leads, publishes due posts while leading.
pub async fn run(pool: PgPool, direct_url: String, status: StatusBoard, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let Some(lock) = acquire_leadership(NAME, &direct_url, &status, &shutdown).await else {
            break;
        };
        status.set_leader(NAME, true);
        status.set_state(NAME, "running", None);
        let mut lock = lock;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(TICK) => {}
            }
            if sqlx::Connection::ping(&mut lock).await.is_err() {
                tracing::warn!("scheduler lost its leadership connection");
                break;
            }
            if let Err(e) = publish_due(&pool).await {
                tracing::warn!(error = %e, "scheduler pass failed; retrying");
                status.set_state(NAME, "retrying", Some(e.to_string()));
            } else {
                status.set_state(NAME, "running", None);
            }
        }
        status.set_leader(NAME, false);
    }
}

/// One pass: every post whose scheduled time has come is published; returns how many.
pub async fn publish_due(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let due = sqlx::query!(
        "select id, version from read.posts where status = 'scheduled' and scheduled_at <= now()
         order by scheduled_at limit 200"
    )
    .fetch_all(pool)
    .await?;
    let mut published = 0;
    for post in due {
        let meta = Metadata { causation_id: Some(post.id), ..Metadata::default() };
        match shared::write::posts::execute(pool, SYSTEM, post.id, Some(post.version), PostCommand::PublishDue, &meta)
            .await
        {
            Ok((_, appended)) => {
                published += 1;
                tracing::info!(post_id = %post.id, position = appended.position, "published scheduled post");
            }
            // Changed since the read model saw it (edited, unpublished, or another scheduler won): next pass.
            Err(WriteError::VersionMismatch { .. } | WriteError::Concurrent | WriteError::Domain(_)) => {}
            Err(WriteError::Database(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(post_id = %post.id, error = %e, "cannot publish scheduled post")
            }
        }
    }
    if published > 0 {
        if let Err(e) = shared::event_store::notify_appended(pool).await {
            tracing::warn!(error = %e, "cannot notify listeners of published posts; they will poll");
        }
    }
    Ok(published)
}
