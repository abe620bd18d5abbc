//! The progress of every consumer of the log as operators and dashboards see it: checkpoint, head, lag in
//! events and seconds, state, and which backend leads — for `pressroom-ops projections status` and the
//! projector's lag gauges. The projections with a checkpoint row, and `webhooks`: its slowest
//! subscription, with each subscription listed.

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
    /// `webhooks` only: each live subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<SubscriptionStatus>>,
}

/// One webhook subscription's progress: its lag counts only the event types it subscribed to.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionStatus {
    pub id: uuid::Uuid,
    pub url: String,
    pub position: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    /// Failed tries of the event it is on (0 when delivering normally).
    pub attempts: i32,
    pub last_error: Option<String>,
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
    let mut all: Vec<ProjectionStatus> = rows
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
            subscriptions: None,
        })
        .collect();
    all.push(webhooks(pool).await?);
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// The `webhooks` consumer: position and lag of its slowest subscription (the head and no lag when there
/// is none), "retrying" while any subscription is backing off.
async fn webhooks(pool: &PgPool) -> Result<ProjectionStatus, sqlx::Error> {
    let subscriptions: Vec<SubscriptionStatus> = sqlx::query_as!(
        SubscriptionStatus,
        r#"select s.id, s.url, s.checkpoint_position as position, s.attempts, s.last_error,
                  (select count(*) from events e
                    where (e.transaction_id, e.global_position) > (s.checkpoint_tx, s.checkpoint_position)
                      and e.event_type = any(s.events)) as "lag_events!",
                  coalesce(extract(epoch from now() - (select e.recorded_at from events e
                    where (e.transaction_id, e.global_position) > (s.checkpoint_tx, s.checkpoint_position)
                      and e.event_type = any(s.events)
                    order by e.transaction_id, e.global_position limit 1)), 0)::float8 as "lag_seconds!"
           from webhook_subscriptions s where s.deleted_at is null order by s.created_at, s.id"#
    )
    .fetch_all(pool)
    .await?;
    let head = sqlx::query!(
        r#"select (select coalesce(max(global_position), 0) from events) as "head!",
                  (select 'pid ' || l.pid from pg_locks l
                    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
                      and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('pressroom:projection:webhooks', 0)
                    limit 1) as leader"#
    )
    .fetch_one(pool)
    .await?;
    let slowest = subscriptions.iter().max_by(|a, b| a.lag_events.cmp(&b.lag_events).then(b.position.cmp(&a.position)));
    let failing = subscriptions.iter().find(|s| s.attempts > 0);
    Ok(ProjectionStatus {
        name: "webhooks".into(),
        position: slowest.map_or(head.head, |s| s.position),
        head: head.head,
        lag_events: slowest.map_or(0, |s| s.lag_events),
        lag_seconds: subscriptions.iter().map(|s| s.lag_seconds).fold(0.0, f64::max),
        state: if failing.is_some() { "retrying" } else { "running" }.into(),
        error: failing.and_then(|s| s.last_error.clone()),
        leader: head.leader,
        subscriptions: Some(subscriptions),
    })
}
