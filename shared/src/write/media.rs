//! Media commands: upload (the bytes to the object store first, then the event; the same bytes are the
//! same media), alt text, and deletion (refused while a published post uses the image).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::WriteError;
use crate::domain::events::MediaUploaded;
use crate::domain::media::{self, Media, MediaCommand};
use crate::domain::post::{Actor, PostStatus};
use crate::domain::role::Role;
use crate::domain::{DomainError, StreamType};
use crate::media::inspect::Inspected;
use crate::media::store::MediaStore;
use crate::media::urls::original_key;
use crate::store::event_store::{self, Appended, ExpectedVersion, Metadata};
use crate::store::streams;

/// An upload's outcome: the media, and the append when this upload created it (None: it existed).
#[derive(Debug)]
pub struct Uploaded {
    pub media: Media,
    pub appended: Option<Appended>,
}

/// Stores a checked upload and records it. The object is written before the event: an append that
/// fails leaves an object no event names, which the sweep removes after its grace period — never an
/// event naming missing bytes.
pub async fn upload(
    pool: &PgPool,
    store: &MediaStore,
    actor: Actor,
    image: Inspected,
    alt: Option<String>,
    metadata: &Metadata,
) -> Result<Uploaded, WriteError> {
    if actor.role < Role::Author {
        return Err(DomainError::Forbidden("contributors cannot upload media").into());
    }
    let id = crate::media::media_id(&image.hash).ok_or(WriteError::Concurrent)?;
    let mut conn = pool.acquire().await?;
    let state = streams::load_media(&mut conn, id).await?;
    if let Some(existing) = state.as_ref().filter(|m| !m.deleted) {
        return Ok(Uploaded { media: existing.clone(), appended: None });
    }
    drop(conn);
    store.put(&original_key(&image.hash, image.kind), image.bytes.clone()).await?;
    let event = MediaUploaded {
        hash: image.hash,
        kind: image.kind,
        width: image.width,
        height: image.height,
        size: image.bytes.len() as u64,
        alt,
        uploaded_by: actor.id,
    };
    let events = media::decide(state.as_ref(), actor, MediaCommand::Upload(event))?;
    let expected = state.as_ref().map_or(ExpectedVersion::NoStream, |m| ExpectedVersion::Exact(m.version));
    let mut conn = pool.acquire().await?;
    match event_store::append(&mut conn, id, StreamType::Media, expected, &events, metadata).await {
        Ok(appended) => {
            let media = events.iter().fold(state, |s, e| media::apply(s, id, e)).ok_or(WriteError::Concurrent)?;
            Ok(Uploaded { media, appended: Some(appended) })
        }
        // The same bytes uploaded at the same moment: the other upload recorded them.
        Err(event_store::EventStoreError::Conflict { .. }) => match streams::load_media(&mut conn, id).await? {
            Some(media) if !media.deleted => Ok(Uploaded { media, appended: None }),
            _ => Err(WriteError::Concurrent),
        },
        Err(e) => Err(e.into()),
    }
}

/// Whether media `id` exists and is not deleted (a post's cover must be).
pub async fn live(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    Ok(streams::load_media(&mut conn, id).await?.is_some_and(|m| !m.deleted))
}

/// Sets or clears the alt text, or deletes the media (see [`delete`] for the check deletion needs).
async fn execute(
    conn: &mut PgConnection,
    actor: Actor,
    id: Uuid,
    command: MediaCommand,
    metadata: &Metadata,
) -> Result<(Media, Appended), WriteError> {
    let state = streams::load_media(&mut *conn, id).await?;
    let version = state.as_ref().map_or(0, |m| m.version);
    let events = media::decide(state.as_ref(), actor, command)?;
    let appended =
        event_store::append(&mut *conn, id, StreamType::Media, ExpectedVersion::Exact(version), &events, metadata)
            .await?;
    let media = events.iter().fold(state, |s, e| media::apply(s, id, e)).ok_or(WriteError::Concurrent)?;
    Ok((media, appended))
}

/// Sets (or, with None, clears) the media's alt text.
pub async fn set_alt(
    pool: &PgPool,
    actor: Actor,
    id: Uuid,
    alt: Option<String>,
    metadata: &Metadata,
) -> Result<(Media, Appended), WriteError> {
    execute(&mut *pool.acquire().await?, actor, id, MediaCommand::SetAlt(alt), metadata).await
}

/// Deletes the media unless a published or scheduled post uses it (cover or body image): then
/// [`WriteError::InUse`] names the post. `media_uses` holds every post's current uses (the event store keeps
/// it as each draft or edit is appended), so only the users' status is read. The check and the append
/// hold the image's advisory lock (`media_lock_key`), which the `events` trigger takes, shared, before it
/// lets a post publish, schedule or start to use the image: neither can slip between check and append.
pub async fn delete(
    pool: &PgPool,
    actor: Actor,
    id: Uuid,
    metadata: &Metadata,
) -> Result<(Media, Appended), WriteError> {
    let mut tx = pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(media_lock_key($1))").bind(id).execute(&mut *tx).await?;
    let users: Vec<Uuid> = sqlx::query_scalar("select distinct post_id from media_uses where media_id = $1")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    for post_id in users {
        let going_out =
            |p: &crate::domain::post::Post| matches!(p.status, PostStatus::Published | PostStatus::Scheduled);
        if let Some(post) = streams::load_post(&mut tx, post_id).await?.filter(going_out) {
            return Err(WriteError::InUse(post.slug));
        }
    }
    let deleted = execute(&mut tx, actor, id, MediaCommand::Delete, metadata).await?;
    tx.commit().await?;
    Ok(deleted)
}
