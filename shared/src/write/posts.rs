//! Post commands: fold the stream, check the expected version, reserve slugs, decide, append — one
//! transaction per command.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use super::WriteError;
use crate::domain::post::{self, Actor, DraftPost, EditPost, Post, PostCommand};
use crate::domain::slug::Slug;
use crate::domain::{DomainEvent, StreamType};
use crate::store::event_store::{self, Appended, Conditions, EventStoreError, ExpectedVersion, Guard, Metadata};
use crate::store::grouped::{GroupedAppends, Starting};
use crate::store::streams;

/// A new post whose slug is either explicit (a clash is an error) or generated from the title.
#[derive(Debug, Clone)]
pub struct CreatePost {
    pub draft: DraftPost,
    pub explicit_slug: bool,
}

/// Creates a draft. A generated slug that clashes gets `-2`, `-3`…; an explicit one is [`WriteError::SlugTaken`].
///
/// `actor_version` is the version of the actor's stream that `actor` (its role, its being active) was read
/// at, when the caller read it earlier (a cache): the draft is appended only while the stream is still
/// there, else [`WriteError::AuthorChanged`] and nothing is written. None when `actor` is not an author
/// read from the store (the scheduler, seeds).
pub async fn create(
    appends: &GroupedAppends,
    actor: Actor,
    actor_version: Option<i32>,
    create: &CreatePost,
    metadata: &Metadata,
) -> Result<(Post, Appended), WriteError> {
    let id = Uuid::now_v7();
    let guard = actor_version.map(|version| Guard { stream_id: actor.id, version });
    // Decided once (authorisation included): a generated slug that clashes only changes the draft's slug.
    let events: Arc<[DomainEvent]> = post::decide(None, actor, PostCommand::Draft(create.draft.clone()))?.into();
    // First in a statement shared with the drafts created beside it; what that did not append is made
    // alone below, where a taken slug gets its suffix and any other refusal its reason.
    let start = Starting {
        id,
        stream_type: StreamType::Post,
        events: Arc::clone(&events),
        metadata: metadata.clone(),
        guard,
        slug: Some(create.draft.slug.to_string()),
    };
    if let Some(appended) = appends.start(start).await {
        let state = fold_new(None, id, &events).ok_or(WriteError::Concurrent)?;
        return Ok((state, appended));
    }
    // Alone, a taken slug changes the events.
    let mut events = events.to_vec();
    let statements = appends.statements();
    let base = &create.draft.slug;
    let mut slug = base.clone();
    let mut next_suffix = None;
    for _ in 0..=MAX_SLUG_TRIES {
        let conditions = Conditions { guard, slug: Some(slug.as_str()) };
        // One statement: the slug, the guard and the append, on a statement connection.
        let mut lease = statements.acquire().await?;
        let result = event_store::append_if(
            lease.conn(),
            id,
            StreamType::Post,
            ExpectedVersion::NoStream,
            &events,
            metadata,
            conditions,
        )
        .await;
        lease.settle_clean(
            !matches!(&result, Err(EventStoreError::Database(e)) if !matches!(e, sqlx::Error::Database(_))),
        );
        match result {
            Ok(appended) => {
                let state = fold_new(None, id, &events).ok_or(WriteError::Concurrent)?;
                return Ok((state, appended));
            }
            Err(EventStoreError::SlugTaken(_)) if !create.explicit_slug => {
                let n = match next_suffix {
                    Some(n) => n,
                    None => first_free_suffix(statements.pool(), base).await?,
                };
                next_suffix = Some(n + 1);
                slug = base.with_suffix(n);
                for e in &mut events {
                    if let DomainEvent::PostDrafted(d) = e {
                        d.slug = slug.to_string();
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(WriteError::SlugTaken(base.to_string()))
}

/// How many generated slugs a new post tries before giving up (each only after a concurrent writer took the last).
const MAX_SLUG_TRIES: u32 = 1000;

/// The suffix after the highest `base-N` already taken (one range scan of the reservations' primary key),
/// at least 2: a popular title must not cost one try per earlier post.
async fn first_free_suffix(pool: &PgPool, base: &Slug) -> Result<u32, sqlx::Error> {
    let prefix = format!("{base}-");
    let taken = sqlx::query_scalar!(
        "select slug from slug_reservations where slug > $1 and slug < $2",
        prefix,
        format!("{base}.")
    )
    .fetch_all(pool)
    .await?;
    let highest = taken.iter().filter_map(|s| s.strip_prefix(&prefix)?.parse::<u32>().ok()).max().unwrap_or(1);
    Ok(highest.saturating_add(1).max(2))
}

/// Runs a command on an existing post. `expected` (from If-Match) must equal the current version when given.
pub async fn execute(
    pool: &PgPool,
    actor: Actor,
    id: Uuid,
    expected: Option<i32>,
    command: PostCommand,
    metadata: &Metadata,
) -> Result<(Post, Appended), WriteError> {
    // The fold needs no transaction: the append re-checks the version in the same statement, and a
    // concurrent writer trips the unique (stream_id, version) constraint.
    let mut conn = pool.acquire().await?;
    let state = streams::load_post(&mut conn, id).await?;
    let Some(current) = state.as_ref() else {
        return Err(crate::domain::DomainError::NotFound("post").into());
    };
    if let Some(expected) = expected {
        if expected != current.version {
            return Err(WriteError::VersionMismatch { expected, current: current.version });
        }
    }
    let version = current.version;
    let new_slug = match &command {
        PostCommand::Edit(EditPost { slug: Some(slug), .. }) if slug.as_str() != current.slug => Some(slug.clone()),
        _ => None,
    };
    let events = post::decide(state.as_ref(), actor, command)?;
    // A new slug is claimed in the statement that appends the event that takes it.
    let conditions = Conditions { guard: None, slug: new_slug.as_ref().map(Slug::as_str) };
    let appended = event_store::append_if(
        &mut conn,
        id,
        StreamType::Post,
        ExpectedVersion::Exact(version),
        &events,
        metadata,
        conditions,
    )
    .await?;
    let state = fold_new(state, id, &events).ok_or(WriteError::Concurrent)?;
    Ok((state, appended))
}

fn fold_new(state: Option<Post>, id: Uuid, events: &[DomainEvent]) -> Option<Post> {
    let now = chrono::Utc::now();
    events.iter().fold(state, |s, e| post::apply(s, id, e, now))
}
