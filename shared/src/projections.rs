//! The projections' progress as operators and dashboards see it: checkpoint, head, lag in events and
//! seconds, state, and which backend leads — one query for `pressroom-ops projections status` and the
//! projector's lag gauges.

use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: i64,
    pub head: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub state: String,
    pub error: Option<String>,
    /// The backend holding the projection's advisory lock (`pid <n>`), null when no instance leads.
    pub leader: Option<String>,
}

/// Every projection with a checkpoint, by name. The lag in seconds is the age of the next event to apply
/// (the first after the checkpoint in projection order, found through the position index: a `min()` over
/// the events after it was a sequential scan of the whole log for each projection, every 5 s).
pub async fn status(pool: &PgPool) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select c.name, c.global_position, c.state, c.error,
                  (select coalesce(max(global_position), 0) from events) as "head!",
                  (select count(*) from events e
                    where (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)) as "lag_events!",
                  coalesce(extract(epoch from now() - (select e.recorded_at from events e
                    where (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)
                    order by e.transaction_id, e.global_position limit 1)), 0)::float8 as "lag_seconds!",
                  (select 'pid ' || l.pid from pg_locks l
                    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
                      and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('pressroom:projection:' || c.name, 0)
                    limit 1) as leader
           from read.checkpoints c order by c.name"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ProjectionStatus {
            name: r.name,
            position: r.global_position,
            head: r.head,
            lag_events: r.lag_events,
            lag_seconds: r.lag_seconds,
            state: r.state,
            error: r.error,
            leader: r.leader,
        })
        .collect())
}
