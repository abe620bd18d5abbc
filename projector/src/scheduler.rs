//! Publishes scheduled posts when their time comes — if the author who scheduled one may still publish it
//! (active, and allowed to publish that post); otherwise the schedule is cancelled with an event saying
//! why. Runs under its own advisory lock (one active instance), and appends with the expected version, so
//! that even two schedulers racing could never publish a post twice: the loser's append is a version
//! conflict.

use std::time::Duration;

use shared::domain::post::{Actor, PostCommand, PostStatus, Requester};
use shared::domain::role::Role;
use shared::store::event_store::Metadata;
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

/// The author who scheduled the post, as they are now (None when there is no such author).
async fn requester(pool: &PgPool, post: Uuid) -> Result<Option<Requester>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let Some(by) = shared::store::streams::load_post(&mut conn, post).await?.and_then(|p| p.scheduled_by) else {
        return Ok(None);
    };
    let author = shared::store::streams::load_author(&mut conn, by).await?;
    Ok(author.map(|a| Requester { actor: Actor { id: a.id, role: a.role }, active: a.active }))
}

/// The id of the post's last `PostScheduled` event.
async fn scheduled_by_event(pool: &PgPool, post: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select event_id from events where stream_id = $1 and event_type = 'PostScheduled' order by version desc limit 1",
        post
    )
    .fetch_optional(pool)
    .await
}

/// One pass: every post whose scheduled time has come is published (or its schedule cancelled); returns
/// how many were published.
pub async fn publish_due(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let due = sqlx::query!(
        "select id, version from read.posts where status = 'scheduled' and scheduled_at <= now()
         order by scheduled_at limit 200"
    )
    .fetch_all(pool)
    .await?;
    let (mut published, mut changed) = (0, 0);
    for post in due {
        // Caused by the PostScheduled event that set the time.
        let meta = Metadata { causation_id: scheduled_by_event(pool, post.id).await?, ..Metadata::default() };
        let command = PostCommand::PublishDue { requester: requester(pool, post.id).await? };
        match shared::write::posts::execute(pool, SYSTEM, post.id, Some(post.version), command, &meta).await {
            Ok((folded, appended)) if folded.status == PostStatus::Published => {
                published += 1;
                tracing::info!(post_id = %post.id, position = appended.position, "published scheduled post");
            }
            Ok((_, appended)) => {
                changed += 1;
                tracing::warn!(post_id = %post.id, position = appended.position, "scheduled publish cancelled: its author may no longer publish it");
            }
            // Changed since the read model saw it (edited, unpublished, or another scheduler won): next pass.
            Err(WriteError::VersionMismatch { .. } | WriteError::Concurrent | WriteError::Domain(_)) => {}
            Err(WriteError::Database(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(post_id = %post.id, error = %e, "cannot publish scheduled post")
            }
        }
    }
    if published + changed > 0 {
        if let Err(e) = shared::store::notify::notify_appended(pool).await {
            tracing::warn!(error = %e, "cannot notify listeners of published posts; they will poll");
        }
    }
    Ok(published)
}
