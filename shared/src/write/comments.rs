//! Comment submission (public, on published posts only) and moderation.

use sqlx::PgPool;
use uuid::Uuid;

use super::WriteError;
use crate::domain::comment::{self, Comment, Moderation};
use crate::domain::post::{Actor, PostStatus};
use crate::domain::{DomainError, StreamType};
use crate::store::event_store::{self, Appended, ExpectedVersion, Metadata};
use crate::store::streams;

/// A validated comment.
#[derive(Debug, Clone)]
pub struct NewComment {
    pub author_name: String,
    pub author_email: Option<String>,
    pub body: String,
}

/// Submits a pending comment on a published post; any other post (or none) is NotFound.
pub async fn submit(
    pool: &PgPool,
    post_id: Uuid,
    new: NewComment,
    metadata: &Metadata,
) -> Result<(Uuid, Appended), WriteError> {
    let mut tx = pool.begin().await?;
    let post = streams::load_post(&mut tx, post_id).await?;
    if post.is_none_or(|p| p.status != PostStatus::Published) {
        return Err(DomainError::NotFound("post").into());
    }
    let id = Uuid::now_v7();
    let event = comment::submit(post_id, new.author_name, new.author_email, new.body);
    let appended =
        event_store::append(&mut tx, id, StreamType::Comment, ExpectedVersion::NoStream, &[event], metadata).await?;
    tx.commit().await?;
    Ok((id, appended))
}

/// Approves or rejects a comment.
pub async fn moderate(
    pool: &PgPool,
    actor: Actor,
    id: Uuid,
    moderation: Moderation,
    metadata: &Metadata,
) -> Result<(Comment, Appended), WriteError> {
    let mut tx = pool.begin().await?;
    let state = streams::load_comment(&mut tx, id).await?;
    let version = state.as_ref().map_or(0, |c| c.version);
    let events = comment::decide(state.as_ref(), actor, moderation)?;
    let appended =
        event_store::append(&mut tx, id, StreamType::Comment, ExpectedVersion::Exact(version), &events, metadata)
            .await?;
    tx.commit().await?;
    let folded = events.iter().fold(state, |s, e| comment::apply(s, id, e)).ok_or(WriteError::Concurrent)?;
    Ok((folded, appended))
}
