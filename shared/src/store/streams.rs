//! Loading a stream: its events folded into the aggregate's state — up to its head, a version or a
//! moment — with the position of the last event folded. The one fold of a stream, used by the write side
//! to decide, by author reads and time travel, and by the read-your-writes fallback.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::author::{self, Author};
use crate::domain::comment::{self, Comment};
use crate::domain::media::{self, Media};
use crate::domain::post::{self, Post};
use crate::domain::{DomainEvent, StreamType};
use crate::store::event_store::RecordedEvent;

/// A state folded from one stream type's events.
pub trait Aggregate: Sized {
    /// The stream type whose events fold into it; a stream of another type loads as None.
    const STREAM: StreamType;
    fn apply(state: Option<Self>, id: Uuid, event: &DomainEvent, recorded_at: DateTime<Utc>) -> Option<Self>;
}

impl Aggregate for Post {
    const STREAM: StreamType = StreamType::Post;
    fn apply(state: Option<Self>, id: Uuid, event: &DomainEvent, recorded_at: DateTime<Utc>) -> Option<Self> {
        post::apply(state, id, event, recorded_at)
    }
}

impl Aggregate for Author {
    const STREAM: StreamType = StreamType::Author;
    fn apply(state: Option<Self>, id: Uuid, event: &DomainEvent, recorded_at: DateTime<Utc>) -> Option<Self> {
        author::apply(state, id, event, recorded_at)
    }
}

impl Aggregate for Comment {
    const STREAM: StreamType = StreamType::Comment;
    fn apply(state: Option<Self>, id: Uuid, event: &DomainEvent, _: DateTime<Utc>) -> Option<Self> {
        comment::apply(state, id, event)
    }
}

impl Aggregate for Media {
    const STREAM: StreamType = StreamType::Media;
    fn apply(state: Option<Self>, id: Uuid, event: &DomainEvent, _: DateTime<Utc>) -> Option<Self> {
        media::apply(state, id, event)
    }
}

/// How far to fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every event.
    Head,
    /// Events up to and including this version.
    Version(i32),
    /// Events recorded at or before this moment.
    Time(DateTime<Utc>),
    /// Events at or before this `global_position`.
    Position(i64),
}

impl Until {
    /// Whether an event of a stream read in version order is within this bound.
    fn includes(self, e: &RecordedEvent) -> bool {
        match self {
            Until::Head => true,
            Until::Version(v) => e.version <= v,
            Until::Time(t) => e.recorded_at <= t,
            Until::Position(p) => e.global_position <= p,
        }
    }
}

/// A folded state and the `global_position` of the last event folded into it.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub position: i64,
}

/// Folds stream `id` as far as `until`. None when it has no events that far or is another type's stream.
///
/// An event this build cannot decode stops the load with [`sqlx::Error::Decode`] (a 500, logged): deciding
/// or answering from a fold with a gap would be wrong without saying so.
pub async fn load<A: Aggregate>(
    conn: &mut PgConnection,
    id: Uuid,
    until: Until,
) -> Result<Option<Loaded<A>>, sqlx::Error> {
    let max_version = match until {
        Until::Version(v) => Some(v),
        _ => None,
    };
    let events = crate::store::log::read_stream(conn, id, max_version).await?;
    let mut folded: Option<Loaded<A>> = None;
    for e in &events {
        if e.stream_type != A::STREAM.as_str() {
            return Ok(None);
        }
        if !until.includes(e) {
            break;
        }
        let decoded = decode(e)?;
        let state = A::apply(folded.map(|l| l.state), id, &decoded, e.recorded_at);
        folded = state.map(|state| Loaded { state, position: e.global_position });
    }
    Ok(folded)
}

/// An event decoded, or [`sqlx::Error::Decode`] (logged) when this build cannot read it.
fn decode(e: &RecordedEvent) -> Result<DomainEvent, sqlx::Error> {
    e.decode().map_err(|err| {
        tracing::error!(stream_id = %e.stream_id, position = e.global_position, error = %err, "undecodable event in a stream");
        sqlx::Error::Decode(Box::new(err))
    })
}

/// The post's current state.
pub async fn load_post(conn: &mut PgConnection, id: Uuid) -> Result<Option<Post>, sqlx::Error> {
    Ok(load::<Post>(conn, id, Until::Head).await?.map(|l| l.state))
}

/// The author's current state.
pub async fn load_author(conn: &mut PgConnection, id: Uuid) -> Result<Option<Author>, sqlx::Error> {
    Ok(load::<Author>(conn, id, Until::Head).await?.map(|l| l.state))
}

/// The comment's current state.
pub async fn load_comment(conn: &mut PgConnection, id: Uuid) -> Result<Option<Comment>, sqlx::Error> {
    Ok(load::<Comment>(conn, id, Until::Head).await?.map(|l| l.state))
}

pub async fn load_media(conn: &mut PgConnection, id: Uuid) -> Result<Option<Media>, sqlx::Error> {
    Ok(load::<Media>(conn, id, Until::Head).await?.map(|l| l.state))
}

/// The post that holds `slug` (current or former), from the write side's slug reservations.
pub async fn post_id_by_slug(conn: &mut PgConnection, slug: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("select post_id from slug_reservations where slug = $1", slug).fetch_optional(conn).await
}

/// A comment folded from its stream, with what its submission said.
#[derive(Debug, Clone)]
pub struct PostComment {
    pub state: Comment,
    pub author_name: String,
    pub body: String,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
}

/// Every comment submitted to post `post_id`, each folded from its stream as far as `until`, oldest first
/// (by submission time, then id, as the comments projection orders them). A post's comments folded from the
/// event store: for the read-your-writes fallback and the author's reads.
pub async fn load_post_comments(
    conn: &mut PgConnection,
    post_id: Uuid,
    until: Until,
) -> Result<Vec<PostComment>, sqlx::Error> {
    let events = sqlx::query_as!(
        RecordedEvent,
        r#"select global_position, transaction_id::text::bigint as "transaction_id!", event_id, stream_id, stream_type,
                  version, event_type, schema_version, payload as "payload: Json<Box<RawValue>>", metadata, recorded_at
           from events
           where stream_id in (select stream_id from events
                               where event_type = 'CommentSubmitted' and payload ->> 'post_id' = $1::uuid::text)
           order by stream_id, version"#,
        post_id,
    )
    .fetch_all(conn)
    .await?;
    let mut comments: Vec<PostComment> = Vec::new();
    for e in events.iter().filter(|e| until.includes(e)) {
        let decoded = decode(e)?;
        if let (DomainEvent::CommentSubmitted(s), Some(state)) = (&decoded, comment::apply(None, e.stream_id, &decoded))
        {
            let (author_name, body) = (s.author_name.clone(), s.body.clone());
            comments.push(PostComment { state, author_name, body, created_at: e.recorded_at });
        } else if let Some(c) = comments.last_mut().filter(|c| c.state.id == e.stream_id) {
            // A moderation follows its submission: the events come by stream, then version.
            if let Some(state) = comment::apply(Some(c.state.clone()), e.stream_id, &decoded) {
                c.state = state;
            }
        }
    }
    comments.sort_by_key(|c| (c.created_at, c.state.id));
    Ok(comments)
}
