//! Reading the event log: a stream in version order, the global log in projection order (never skipping a
//! transaction that commits late) and the bounds to read it in chunks at once, a stream's version and last
//! position, and the head.

use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::event_store::RecordedEvent;
use super::position::LogPosition;

/// The stream's last version, 0 when it does not exist.
pub async fn stream_version(conn: &mut PgConnection, stream_id: Uuid) -> Result<i32, sqlx::Error> {
    let v =
        sqlx::query_scalar!(r#"select coalesce(max(version), 0) as "v!" from events where stream_id = $1"#, stream_id)
            .fetch_one(conn)
            .await?;
    Ok(v)
}

/// `global_position` of the stream's last event, 0 when it does not exist.
pub async fn stream_last_position(conn: &mut PgConnection, stream_id: Uuid) -> Result<i64, sqlx::Error> {
    let p = sqlx::query_scalar!(
        r#"select coalesce(max(global_position), 0) as "p!" from events where stream_id = $1"#,
        stream_id
    )
    .fetch_one(conn)
    .await?;
    Ok(p)
}

/// Every event of a stream in version order, up to `max_version` when given.
pub async fn read_stream(
    conn: &mut PgConnection,
    stream_id: Uuid,
    max_version: Option<i32>,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    sqlx::query_as!(
        RecordedEvent,
        r#"select global_position, transaction_id::text::bigint as "transaction_id!", event_id, stream_id, stream_type,
                  version, event_type, schema_version, payload as "payload: Json<Box<RawValue>>", metadata, recorded_at
           from events where stream_id = $1 and version <= coalesce($2, 2147483647)
           order by version"#,
        stream_id,
        max_version,
    )
    .fetch_all(conn)
    .await
}

/// Up to `limit` events after `after` in projection order, only from transactions that can no longer
/// commit late: `transaction_id` below the current snapshot's xmin. Resuming by the pair
/// (transaction_id, global_position), never by position alone, is what keeps late commits from being skipped.
///
/// With `payloads_of` (SQL `LIKE` patterns of event types), the other events come back with a `null` payload
/// and empty metadata: a reader that only passes them by (to move its checkpoint) is spared their text.
pub async fn read_after(
    conn: &mut PgConnection,
    after: LogPosition,
    limit: i64,
    payloads_of: Option<&[&str]>,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    sqlx::query_as!(
        RecordedEvent,
        r#"select global_position, transaction_id::text::bigint as "transaction_id!", event_id, stream_id, stream_type,
                  version, event_type, schema_version,
                  case when $4::text[] is null or event_type like any($4) then payload else 'null' end
                      as "payload!: Json<Box<RawValue>>",
                  case when $4::text[] is null or event_type like any($4) then metadata else '{}' end as "metadata!",
                  recorded_at
           from events
           where transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             and (transaction_id, global_position) > ($1::bigint::text::xid8, $2)
           order by transaction_id, global_position
           limit $3"#,
        after.transaction_id,
        after.global_position,
        limit,
        payloads_of as Option<&[&str]>,
    )
    .fetch_all(conn)
    .await
}

/// The transaction id below which the log is safely ordered now: every transaction before it has ended, so
/// no event will ever appear among those recorded below it.
pub async fn safe_horizon(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"select pg_snapshot_xmin(pg_current_snapshot())::text::bigint as "horizon!""#)
        .fetch_one(conn)
        .await
}

/// The position of the `n`-th event after `after` in projection order among those recorded below `horizon`
/// ([`safe_horizon`]), or None when fewer are. Read from the position index alone: a reader splits the log
/// into chunks of `n` with it and reads them ([`read_after`] with `limit` n) at the same time.
pub async fn nth_after(
    conn: &mut PgConnection,
    after: LogPosition,
    n: i64,
    horizon: i64,
) -> Result<Option<LogPosition>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select transaction_id::text::bigint as "transaction_id!", global_position from events
           where transaction_id < $3::bigint::text::xid8
             and (transaction_id, global_position) > ($1::bigint::text::xid8, $2)
           order by transaction_id, global_position
           offset $4 limit 1"#,
        after.transaction_id,
        after.global_position,
        horizon,
        n - 1,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| LogPosition::new(r.transaction_id, r.global_position)))
}

/// The projection-order position of the event at `global_position`, if such an event exists.
pub async fn log_position_of(
    conn: &mut PgConnection,
    global_position: i64,
) -> Result<Option<LogPosition>, sqlx::Error> {
    let tx = sqlx::query_scalar!(
        r#"select transaction_id::text::bigint as "tx!" from events where global_position = $1"#,
        global_position
    )
    .fetch_optional(conn)
    .await?;
    Ok(tx.map(|t| LogPosition::new(t, global_position)))
}

/// The newest position in the log (committed), 0 when empty.
pub async fn head(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let h =
        sqlx::query_scalar!(r#"select coalesce(max(global_position), 0) as "h!" from events"#).fetch_one(conn).await?;
    Ok(h)
}
