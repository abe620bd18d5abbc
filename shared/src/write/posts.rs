//! Post commands: fold the stream, check the expected version, reserve slugs, decide, append — one
//! transaction per command.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::WriteError;
use crate::db::StatementConnections;
use crate::domain::post::{self, Actor, DraftPost, EditPost, Post, PostCommand};
use crate::domain::slug::Slug;
use crate::domain::StreamType;
use crate::event_store::{self, Appended, ExpectedVersion, Metadata};

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
    statements: &StatementConnections,
    actor: Actor,
    actor_version: Option<i32>,
    create: &CreatePost,
    metadata: &Metadata,
) -> Result<(Post, Appended), WriteError> {
    let pool = statements.pool();
    let id = Uuid::now_v7();
    let guard = actor_version.map(|v| (actor.id, v));
    // Decide first (authorisation included), then try the one-round-trip path with the first candidate.
    let events = post::decide(None, actor, PostCommand::Draft(create.draft.clone()))?;
    if let Some(appended) = claim_and_append(statements, id, &create.draft.slug, &events, metadata, guard).await? {
        let state = fold_new(None, id, &events).ok_or(WriteError::Concurrent)?;
        return Ok((state, appended));
    }
    // Nothing was appended: the actor changed, or the slug is taken.
    if let Some((author, version)) = guard {
        let mut conn = pool.acquire().await?;
        if event_store::stream_version(&mut conn, author).await? != version {
            return Err(WriteError::AuthorChanged);
        }
    }
    if create.explicit_slug {
        return Err(WriteError::SlugTaken(create.draft.slug.to_string()));
    }
    // The generated slug is taken: find the next free `-2`, `-3`… in a transaction.
    let mut tx = pool.begin().await?;
    let mut draft = create.draft.clone();
    draft.slug = generate_slug(&mut tx, &draft.slug, id).await?;
    let events = post::decide(None, actor, PostCommand::Draft(draft))?;
    let appended =
        event_store::append(&mut tx, id, StreamType::Post, ExpectedVersion::NoStream, &events, metadata).await?;
    tx.commit().await?;
    let state = fold_new(None, id, &events).ok_or(WriteError::Concurrent)?;
    Ok((state, appended))
}

/// Reserves `slug` and appends the new stream's first event in one statement (one round trip, atomic
/// without an explicit transaction), only while the `guard` stream (the actor) is at its version. None
/// when the slug is already reserved or the guard failed.
async fn claim_and_append(
    statements: &StatementConnections,
    id: Uuid,
    slug: &Slug,
    events: &[crate::domain::DomainEvent],
    metadata: &Metadata,
    guard: Option<(Uuid, i32)>,
) -> Result<Option<Appended>, WriteError> {
    let [first] = events else { return Ok(None) };
    let mut lease = statements.acquire().await?;
    let position = sqlx::query_scalar!(
        r#"with claimed as (
               insert into slug_reservations (slug, post_id)
               select $1, $2
               where $8::uuid is null
                  or (select coalesce(max(version), 0) from events where stream_id = $8) = $9::int
               on conflict (slug) do nothing returning post_id
           )
           insert into events (event_id, stream_id, stream_type, version, event_type, schema_version, payload, metadata)
           select $3, post_id, 'post', 1, $4, $5, $6, $7 from claimed
           returning global_position"#,
        slug.as_str(),
        id,
        Uuid::now_v7(),
        first.event_type(),
        crate::domain::events::CURRENT_SCHEMA_VERSION,
        sqlx::types::Json(first.payload_json()) as _,
        sqlx::types::Json(metadata) as _,
        guard.map(|g| g.0) as Option<Uuid>,
        guard.map(|g| g.1) as Option<i32>,
    )
    .fetch_optional(lease.conn())
    .await;
    lease.settle(&position);
    let position = position?;
    Ok(position.map(|position| Appended { version: 1, position }))
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
    let state = load(&mut conn, id).await?;
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
    let appended = match new_slug {
        None => {
            event_store::append(&mut conn, id, StreamType::Post, ExpectedVersion::Exact(version), &events, metadata)
                .await?
        }
        Some(slug) => {
            // A new slug is reserved in the same transaction as the event that claims it.
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            if !reserve_slug(&mut tx, &slug, id).await? {
                return Err(WriteError::SlugTaken(slug.to_string()));
            }
            let appended =
                event_store::append(&mut tx, id, StreamType::Post, ExpectedVersion::Exact(version), &events, metadata)
                    .await?;
            tx.commit().await?;
            appended
        }
    };
    let state = fold_new(state, id, &events).ok_or(WriteError::Concurrent)?;
    Ok((state, appended))
}

fn fold_new(state: Option<Post>, id: Uuid, events: &[crate::domain::DomainEvent]) -> Option<Post> {
    let now = chrono::Utc::now();
    events.iter().fold(state, |s, e| post::apply(s, id, e, now))
}

/// Folds a post's stream; None when the id is not a post. `max_version` stops early (time travel).
pub async fn load_version(
    conn: &mut PgConnection,
    id: Uuid,
    max_version: Option<i32>,
) -> Result<Option<Post>, sqlx::Error> {
    let events = event_store::read_stream(conn, id, max_version).await?;
    let mut state = None;
    for e in &events {
        if e.stream_type != StreamType::Post.as_str() {
            return Ok(None);
        }
        match e.decode() {
            Ok(d) => state = post::apply(state, id, &d, e.recorded_at),
            Err(err) => {
                tracing::error!(stream_id = %id, position = e.global_position, error = %err, "undecodable post event")
            }
        }
    }
    Ok(state)
}

/// Folds a post's whole stream.
pub async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Option<Post>, sqlx::Error> {
    load_version(conn, id, None).await
}

/// The post that holds `slug` (current or former), from the reservations.
pub async fn id_by_slug(conn: &mut PgConnection, slug: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("select post_id from slug_reservations where slug = $1", slug).fetch_optional(conn).await
}

/// Claims `slug` for post `id`; true when it is (now or already) this post's.
async fn reserve_slug(conn: &mut PgConnection, slug: &Slug, id: Uuid) -> Result<bool, sqlx::Error> {
    let owner = sqlx::query_scalar!(
        "insert into slug_reservations (slug, post_id) values ($1, $2)
         on conflict (slug) do update set slug = excluded.slug returning post_id",
        slug.as_str(),
        id
    )
    .fetch_one(conn)
    .await?;
    Ok(owner == id)
}

async fn generate_slug(conn: &mut PgConnection, base: &Slug, id: Uuid) -> Result<Slug, WriteError> {
    // Start after the highest `base-N` already taken (one range scan of the primary key) instead of
    // probing -2, -3… one by one: a popular title must not cost one insert per earlier post.
    let prefix = format!("{base}-");
    let taken = sqlx::query_scalar!(
        "select slug from slug_reservations where slug > $1 and slug < $2",
        prefix,
        format!("{base}.")
    )
    .fetch_all(&mut *conn)
    .await?;
    let highest = taken.iter().filter_map(|s| s.strip_prefix(&prefix)?.parse::<u32>().ok()).max().unwrap_or(1);
    for n in (highest + 1).max(2)..=highest.saturating_add(1000) {
        let candidate = base.with_suffix(n);
        let got = sqlx::query_scalar!(
            "insert into slug_reservations (slug, post_id) values ($1, $2) on conflict (slug) do nothing returning post_id",
            candidate.as_str(),
            id
        )
        .fetch_optional(&mut *conn)
        .await?;
        if got.is_some() {
            return Ok(candidate);
        }
    }
    Err(WriteError::SlugTaken(base.to_string()))
}
