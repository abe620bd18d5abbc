//! Webhook delivery, a projection of the event log: each subscription walks the log with its own
//! checkpoint and receives the event types it asked for, in order, at least once, as a POST signed the
//! Standard Webhooks way (`webhook-id` = the event id, `webhook-timestamp`, `webhook-signature: v1,…`).
//! Subscriptions are served side by side (a slow receiver holds up only itself). Every attempt is
//! logged; failures back off exponentially; an event that exhausts its tries is dead-lettered and the
//! subscription moves on. Receivers dedupe on `webhook-id`/`event_id` (or `global_position`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runner::acquire_leadership;
use crate::status::StatusBoard;

pub const NAME: &str = "webhooks";
const EVENTS_PER_PASS: usize = 100;
/// Subscriptions delivered to at once; within one, events go one after another, in order.
const CONCURRENT_SUBSCRIPTIONS: usize = 8;
/// How long one delivery attempt may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub max_attempts: i32,
    pub retry_base: Duration,
    /// `PRESSROOM_WEBHOOK_ALLOW_PRIVATE`: deliveries may reach loopback and private addresses.
    pub allow_private: bool,
}

/// The body every receiver gets.
#[derive(Serialize)]
pub struct Delivery {
    pub event_id: Uuid,
    pub global_position: i64,
    pub event_type: String,
    pub stream_id: Uuid,
    pub version: i32,
    pub recorded_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// Runs until shutdown: one active deliverer (advisory lock), a pass every 200 ms while leading. Each
/// subscription's deliveries run on their own (at most [`CONCURRENT_SUBSCRIPTIONS`] at once): a pass starts
/// the due subscriptions that are not already under way, so a slow receiver holds up only itself. Leadership
/// is given up only after every delivery under way has ended.
pub async fn run(
    pool: PgPool,
    direct_url: String,
    config: DeliveryConfig,
    status: StatusBoard,
    shutdown: CancellationToken,
) {
    let client = match shared::http::outbound::delivery_client(ATTEMPT_TIMEOUT, config.allow_private) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook HTTP client not built; no deliveries");
            return;
        }
    };
    let deliverer = Deliverer {
        pool,
        client,
        config,
        under_way: Default::default(),
        permits: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_SUBSCRIPTIONS)),
    };
    while !shutdown.is_cancelled() {
        let Some(mut lock) = acquire_leadership(NAME, &direct_url, &status, &shutdown).await else { break };
        status.set_leader(NAME, true);
        let mut deliveries = tokio::task::JoinSet::new();
        loop {
            while deliveries.try_join_next().is_some() {}
            if let Err(e) = deliverer.pass(&mut deliveries).await {
                tracing::warn!(error = %e, "webhook pass failed; retrying");
                status.set_state(NAME, "retrying", Some(e.to_string()));
            } else {
                status.set_state(NAME, "running", None);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            if sqlx::Connection::ping(&mut lock).await.is_err() {
                break;
            }
        }
        while deliveries.join_next().await.is_some() {}
        status.set_leader(NAME, false);
    }
}

/// What the delivery tasks share.
#[derive(Clone)]
struct Deliverer {
    pool: PgPool,
    client: reqwest::Client,
    config: DeliveryConfig,
    /// Subscriptions with a delivery task running: a pass leaves them to it.
    under_way: Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Deliverer {
    /// Starts a delivery task for every due subscription that has none under way; each gets up to
    /// `EVENTS_PER_PASS` events.
    async fn pass(&self, deliveries: &mut tokio::task::JoinSet<()>) -> Result<(), sqlx::Error> {
        let subs = sqlx::query_as!(
            Subscription,
            r#"select id, url, events, secret, checkpoint_tx::text::bigint as "checkpoint_tx!", checkpoint_position, attempts
           from webhook_subscriptions where deleted_at is null and next_attempt_at <= now() order by next_attempt_at"#
        )
        .fetch_all(&self.pool)
        .await?;
        for sub in subs {
            let fresh = self.under_way.lock().is_ok_and(|mut ids| ids.insert(sub.id));
            if !fresh {
                continue;
            }
            let this = self.clone();
            deliveries.spawn(async move {
                let id = sub.id;
                if let Ok(_permit) = this.permits.clone().acquire_owned().await {
                    if let Err(e) = deliver_subscription(&this.pool, &this.client, &this.config, sub).await {
                        tracing::warn!(error = %e, subscription = %id, "webhook delivery failed; retrying");
                    }
                }
                if let Ok(mut ids) = this.under_way.lock() {
                    ids.remove(&id);
                }
            });
        }
        Ok(())
    }
}

struct Subscription {
    id: Uuid,
    url: String,
    events: Vec<String>,
    secret: String,
    checkpoint_tx: i64,
    checkpoint_position: i64,
    attempts: i32,
}

/// One signed attempt: the receiver's status code, or why there is none.
async fn attempt(
    client: &reqwest::Client,
    sub: &Subscription,
    msg_id: &str,
    body: Vec<u8>,
    allow_private: bool,
) -> (Option<i32>, Option<String>) {
    if !shared::http::outbound::literal_target_allowed(&sub.url, allow_private) {
        return (None, Some("the URL names a loopback, private or reserved address".into()));
    }
    let timestamp = Utc::now().timestamp();
    let Some(signature) = shared::http::outbound::sign(&sub.secret, msg_id, timestamp, &body) else {
        return (None, Some("the subscription's secret is not a whsec_ secret".into()));
    };
    let sent = client
        .post(&sub.url)
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => (Some(i32::from(res.status().as_u16())), None),
        Ok(res) => (Some(i32::from(res.status().as_u16())), Some(format!("receiver answered {}", res.status()))),
        // The chain says why (e.g. the guarded resolver refused every address).
        Err(e) => (None, Some(error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn deliver_subscription(
    pool: &PgPool,
    client: &reqwest::Client,
    config: &DeliveryConfig,
    mut sub: Subscription,
) -> Result<(), sqlx::Error> {
    for _ in 0..EVENTS_PER_PASS {
        let next = sqlx::query!(
            r#"select global_position, transaction_id::text::bigint as "tx!", event_id, event_type, stream_id, version,
                      recorded_at, payload
               from events
               where transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                 and (transaction_id, global_position) > ($1::bigint::text::xid8, $2)
                 and event_type = any($3)
               order by transaction_id, global_position limit 1"#,
            sub.checkpoint_tx,
            sub.checkpoint_position,
            &sub.events
        )
        .fetch_optional(pool)
        .await?;
        let Some(event) = next else { return Ok(()) };
        let delivery = Delivery {
            event_id: event.event_id,
            global_position: event.global_position,
            event_type: event.event_type,
            stream_id: event.stream_id,
            version: event.version,
            recorded_at: event.recorded_at,
            payload: event.payload,
        };
        let body = serde_json::to_vec(&delivery).unwrap_or_default();
        let attempt = sub.attempts + 1;
        let msg_id = delivery.event_id.to_string();
        let (status_code, error) = self::attempt(client, &sub, &msg_id, body, config.allow_private).await;
        let ok = error.is_none();
        sqlx::query!(
            "insert into webhook_deliveries (subscription_id, event_id, global_position, attempt, status_code, error, succeeded)
             values ($1, $2, $3, $4, $5, $6, $7)",
            sub.id,
            delivery.event_id,
            delivery.global_position,
            attempt,
            status_code,
            error,
            ok
        )
        .execute(pool)
        .await?;
        metrics::counter!("pressroom_webhook_deliveries_total", "result" => if ok { "delivered" } else { "failed" })
            .increment(1);
        let dead = !ok && attempt >= config.max_attempts;
        if ok || dead {
            if let (true, Some(error)) = (dead, &error) {
                sqlx::query!(
                    "insert into webhook_dead_letters (subscription_id, event_id, global_position, attempts, last_error)
                     values ($1, $2, $3, $4, $5)",
                    sub.id,
                    delivery.event_id,
                    delivery.global_position,
                    attempt,
                    error
                )
                .execute(pool)
                .await?;
                tracing::warn!(subscription = %sub.id, position = delivery.global_position, "webhook event dead-lettered");
            }
            sqlx::query!(
                "update webhook_subscriptions set checkpoint_tx = $2::bigint::text::xid8, checkpoint_position = $3,
                        attempts = 0, last_error = null, next_attempt_at = now()
                 where id = $1",
                sub.id,
                event.tx,
                delivery.global_position
            )
            .execute(pool)
            .await?;
            sub.checkpoint_tx = event.tx;
            sub.checkpoint_position = delivery.global_position;
            sub.attempts = 0;
            continue;
        }
        let backoff = config.retry_base.saturating_mul(1u32 << (attempt - 1).clamp(0, 16) as u32);
        sqlx::query!(
            "update webhook_subscriptions set attempts = $2, last_error = $3,
                    next_attempt_at = now() + make_interval(secs => $4)
             where id = $1",
            sub.id,
            attempt,
            error,
            backoff.as_secs_f64()
        )
        .execute(pool)
        .await?;
        return Ok(());
    }
    Ok(())
}
