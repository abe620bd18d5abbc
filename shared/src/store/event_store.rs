//! The event store: append with an expected version, read a stream, and read the global log in
//! projection order without ever skipping a transaction that commits late.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::events::{DecodeError, CURRENT_SCHEMA_VERSION};
use crate::domain::{DomainEvent, StreamType};
use crate::store::position::LogPosition;

/// Event metadata: who did it, and which request and causal chain it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event that caused this one (a scheduled publish: its `PostScheduled`); None for a person's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The command's W3C trace context, so the projector's span that applies the event joins its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What the appender believes the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(i32),
}

impl ExpectedVersion {
    fn as_version(self) -> i32 {
        match self {
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(v) => v,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// Another writer got there first, or the caller's view of the stream is stale.
    #[error("stream {stream_id} is at version {actual}, expected {expected}")]
    Conflict { stream_id: Uuid, expected: i32, actual: i32 },
    /// The [`Guard`]'s stream moved on since the caller read it: nothing was appended.
    #[error("stream {0} changed since it was read")]
    GuardMoved(Uuid),
    /// The slug the append claims belongs to another stream: nothing was appended.
    #[error("slug `{0}` is taken")]
    SlugTaken(String),
    /// The post would publish, schedule or start to use this image, which is deleted (the `events`
    /// trigger's check, SQLSTATE `PRM01`): nothing was appended.
    #[error("media {0} is deleted")]
    MediaDeleted(Uuid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The SQLSTATE of the `events` trigger refusing a post event that would publish, schedule or start to
/// use a deleted image (migration 23); the message is the image's id.
const MEDIA_DELETED: &str = "PRM01";

/// Another stream that must still be at a version for an append to go ahead: the acting author's,
/// whose role and being active the caller decided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub stream_id: Uuid,
    pub version: i32,
}

/// What an append checks and claims in the statement that appends, besides the stream's version.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub guard: Option<Guard>,
    /// A post slug to reserve for the stream (kept if it already holds it).
    pub slug: Option<&'a str>,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append.
    pub version: i32,
    /// `global_position` of the last appended event: the write's consistency token.
    pub position: i64,
}

/// An event as stored, with its place in the log.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub global_position: i64,
    pub transaction_id: i64,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_type: String,
    pub version: i32,
    pub event_type: String,
    pub schema_version: i16,
    /// As stored, unparsed until [`RecordedEvent::decode`].
    pub payload: Json<Box<RawValue>>,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The event's domain form, upcast to the current schema.
    pub fn decode(&self) -> Result<DomainEvent, DecodeError> {
        DomainEvent::decode(&self.event_type, self.schema_version, &self.payload.0)
    }

    pub fn log_position(&self) -> LogPosition {
        LogPosition::new(self.transaction_id, self.global_position)
    }
}

/// Appends `events` to a stream if its version is `expected`, in the caller's transaction.
///
/// A version mismatch, including one caused by a concurrent writer (SQLSTATE 23505 on
/// `unique (stream_id, version)`), is [`EventStoreError::Conflict`]; nothing is overwritten.
pub async fn append(
    conn: &mut PgConnection,
    stream_id: Uuid,
    stream_type: StreamType,
    expected: ExpectedVersion,
    events: &[DomainEvent],
    metadata: &Metadata,
) -> Result<Appended, EventStoreError> {
    append_if(conn, stream_id, stream_type, expected, events, metadata, Conditions::default()).await
}

/// [`append`] that also checks a [`Guard`] and claims a slug, all in the one statement that appends (one
/// round trip, atomic without a transaction): the only writer of `events` besides [`append_new_streams`].
#[tracing::instrument(skip_all, fields(stream_id = %stream_id, events = events.len()))]
pub async fn append_if(
    conn: &mut PgConnection,
    stream_id: Uuid,
    stream_type: StreamType,
    expected: ExpectedVersion,
    events: &[DomainEvent],
    metadata: &Metadata,
    conditions: Conditions<'_>,
) -> Result<Appended, EventStoreError> {
    let expected_version = expected.as_version();
    if events.is_empty() {
        let actual = super::log::stream_version(&mut *conn, stream_id).await?;
        if actual != expected_version {
            return Err(EventStoreError::Conflict { stream_id, expected: expected_version, actual });
        }
        return Ok(Appended { version: actual, position: 0 });
    }
    let rows =
        EventRows::new(std::iter::repeat_n(stream_id, events.len()), stream_type, expected_version, events, metadata);
    let guard = conditions.guard;
    let positions =
        insert(&mut *conn, &rows, (stream_id, expected_version), conditions).await.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.constraint() == Some("events_stream_version_key") => {
                EventStoreError::Conflict { stream_id, expected: expected_version, actual: expected_version + 1 }
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some(MEDIA_DELETED) => {
                Uuid::parse_str(db.message()).map_or(EventStoreError::Database(e), EventStoreError::MediaDeleted)
            }
            _ => EventStoreError::Database(e),
        })?;
    if let Some(position) = positions.into_iter().max() {
        return Ok(Appended { version: expected_version + events.len() as i32, position });
    }
    // Nothing was appended: say which condition failed.
    let actual = super::log::stream_version(&mut *conn, stream_id).await?;
    if actual != expected_version {
        return Err(EventStoreError::Conflict { stream_id, expected: expected_version, actual });
    }
    if let Some(g) = guard {
        if super::log::stream_version(&mut *conn, g.stream_id).await? != g.version {
            return Err(EventStoreError::GuardMoved(g.stream_id));
        }
    }
    Err(EventStoreError::SlugTaken(conditions.slug.unwrap_or_default().to_string()))
}

/// A stream to start in [`append_new_streams`]: its id and type, its first events and their metadata, the
/// [`Guard`] its append depends on, and the post slug it claims.
pub struct NewStream<'a> {
    pub id: Uuid,
    pub stream_type: StreamType,
    pub events: &'a [DomainEvent],
    pub metadata: &'a Metadata,
    pub guard: Option<Guard>,
    pub slug: Option<&'a str>,
}

/// Starts many streams in one statement (concurrent drafts grouped by [`super::grouped`], a large seed):
/// each whose guard holds and whose slug was free (or that claims none) is appended whole, the others not
/// at all. Returns what was appended, by stream id. A stream that already exists fails the whole statement
/// (`unique (stream_id, version)`), as does the `events` trigger refusing one (a deleted image).
pub async fn append_new_streams(
    conn: &mut PgConnection,
    streams: &[NewStream<'_>],
) -> Result<std::collections::HashMap<Uuid, Appended>, sqlx::Error> {
    let mut rows = EventRows::default();
    let (mut guard_streams, mut guard_versions, mut slugs) = (Vec::new(), Vec::new(), Vec::new());
    for s in streams {
        let n = s.events.len();
        rows.extend(EventRows::new(std::iter::repeat_n(s.id, n), s.stream_type, 0, s.events, s.metadata));
        guard_streams.extend(std::iter::repeat_n(s.guard.map(|g| g.stream_id), n));
        guard_versions.extend(std::iter::repeat_n(s.guard.map(|g| g.version), n));
        slugs.extend(std::iter::repeat_n(s.slug.map(str::to_string), n));
    }
    let appended = sqlx::query!(
        r#"with input as (
               select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::int2[], $7::jsonb[],
                                    $8::jsonb[], $9::uuid[], $10::int[], $11::text[])
                   with ordinality as i(event_id, stream_id, stream_type, version, event_type, schema_version, payload,
                                        metadata, guard_stream, guard_version, slug, n)
           ), ok as (
               select * from input i
               where i.guard_stream is null
                  or (select coalesce(max(version), 0) from events e where e.stream_id = i.guard_stream) = i.guard_version
           ), claimed as (
               insert into slug_reservations (slug, post_id)
               select distinct slug, stream_id from ok where slug is not null
               on conflict (slug) do nothing returning post_id
           )
           insert into events (event_id, stream_id, stream_type, version, event_type, schema_version, payload, metadata)
           select event_id, stream_id, stream_type, version, event_type, schema_version, payload, metadata from ok
           where slug is null or stream_id in (select post_id from claimed)
           order by n
           returning stream_id, global_position"#,
        &rows.ids,
        &rows.streams,
        &rows.types,
        &rows.versions,
        &rows.event_types,
        &rows.schema_versions,
        &rows.payloads as _,
        &rows.metadatas as _,
        &guard_streams as &[Option<Uuid>],
        &guard_versions as &[Option<i32>],
        &slugs as &[Option<String>],
    )
    .fetch_all(conn)
    .await?;
    let mut by_stream = std::collections::HashMap::new();
    for r in appended {
        let entry = by_stream.entry(r.stream_id).or_insert(Appended { version: 0, position: 0 });
        entry.version += 1;
        entry.position = entry.position.max(r.global_position);
    }
    Ok(by_stream)
}

/// Inserts `rows` in one statement, only if the stream of `check` (id, expected version) is at that version,
/// the guard holds and the slug could be claimed for that stream (claimed only when the checks hold). A
/// stale expectation inserts nothing; a concurrent writer trips `unique (stream_id, version)`. Returns the
/// new positions.
async fn insert(
    conn: &mut PgConnection,
    rows: &EventRows<'_>,
    check: (Uuid, i32),
    conditions: Conditions<'_>,
) -> Result<Vec<i64>, sqlx::Error> {
    let guard = conditions.guard;
    sqlx::query_scalar!(
        r#"with ok as (
               select where (select coalesce(max(version), 0) from events where stream_id = $9) = $10::int
                 and ($11::uuid is null or (select coalesce(max(version), 0) from events where stream_id = $11) = $12::int)
           ), claimed as (
               insert into slug_reservations (slug, post_id)
               select $13::text, $9 from ok where $13::text is not null
               on conflict (slug) do update set slug = excluded.slug returning post_id
           )
           insert into events (event_id, stream_id, stream_type, version, event_type, schema_version, payload, metadata)
           select u.* from unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::int2[], $7::jsonb[], $8::jsonb[]) as u, ok
           where $13::text is null or (select post_id from claimed) = $9
           returning global_position"#,
        &rows.ids,
        &rows.streams,
        &rows.types,
        &rows.versions,
        &rows.event_types,
        &rows.schema_versions,
        &rows.payloads as _,
        &rows.metadatas as _,
        check.0,
        check.1,
        guard.map(|g| g.stream_id) as Option<Uuid>,
        guard.map(|g| g.version) as Option<i32>,
        conditions.slug,
    )
    .fetch_all(conn)
    .await
}

/// Events as the columns of `events`, for one `unnest` insert.
#[derive(Default)]
struct EventRows<'m> {
    ids: Vec<Uuid>,
    streams: Vec<Uuid>,
    types: Vec<String>,
    versions: Vec<i32>,
    event_types: Vec<String>,
    schema_versions: Vec<i16>,
    payloads: Vec<Json<Box<RawValue>>>,
    metadatas: Vec<Json<&'m Metadata>>,
}

impl<'m> EventRows<'m> {
    /// `events` of one stream (`streams` repeats its id), numbered from `after + 1`, with new v7 ids.
    fn new(
        streams: impl Iterator<Item = Uuid>,
        stream_type: StreamType,
        after: i32,
        events: &[DomainEvent],
        metadata: &'m Metadata,
    ) -> Self {
        let n = events.len();
        EventRows {
            ids: (0..n).map(|_| Uuid::now_v7()).collect(),
            streams: streams.collect(),
            types: vec![stream_type.as_str().to_string(); n],
            versions: (1..=n as i32).map(|i| after + i).collect(),
            event_types: events.iter().map(|e| e.event_type().to_string()).collect(),
            schema_versions: vec![CURRENT_SCHEMA_VERSION; n],
            payloads: events.iter().map(|e| Json(e.payload_json())).collect(),
            metadatas: vec![Json(metadata); n],
        }
    }

    fn extend(&mut self, other: EventRows<'m>) {
        self.ids.extend(other.ids);
        self.streams.extend(other.streams);
        self.types.extend(other.types);
        self.versions.extend(other.versions);
        self.event_types.extend(other.event_types);
        self.schema_versions.extend(other.schema_versions);
        self.payloads.extend(other.payloads);
        self.metadatas.extend(other.metadatas);
    }
}
