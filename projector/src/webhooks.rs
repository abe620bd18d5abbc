//! Webhook delivery, a projection of the event log: each subscription walks the log with its own
//! checkpoint and receives the event types it asked for, in order, at least once, as a signed POST
//! (`Pressroom-Signature: sha256=<hex HMAC of the body>`). Every attempt is logged; failures back off
//! exponentially; an event that exhausts its tries is dead-lettered and the subscription moves on.
//! Receivers dedupe on `event_id` (or `global_position`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runner::acquire_leadership;
use crate::status::StatusBoard;

pub const NAME: &str = "webhooks";
const EVENTS_PER_PASS: usize = 100;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub max_attempts: i32,
    pub retry_base: Duration,
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

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length; this cannot happen
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Runs until shutdown: one active deliverer (advisory lock), a pass every 200 ms while leading.
pub async fn run(
    pool: PgPool,
    direct_url: String,
    config: DeliveryConfig,
    status: StatusBoard,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook HTTP client not built; no deliveries");
            return;
        }
    };
    while !shutdown.is_cancelled() {
        let Some(mut lock) = acquire_leadership(NAME, &direct_url, &status, &shutdown).await else { break };
        status.set_leader(NAME, true);
        loop {
            if let Err(e) = deliver_pass(&pool, &client, &config).await {
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
        status.set_leader(NAME, false);
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

/// Every due subscription gets up to `EVENTS_PER_PASS` events.
pub async fn deliver_pass(pool: &PgPool, client: &reqwest::Client, config: &DeliveryConfig) -> Result<(), sqlx::Error> {
    let subs = sqlx::query_as!(
        Subscription,
        r#"select id, url, events, secret, checkpoint_tx::text::bigint as "checkpoint_tx!", checkpoint_position, attempts
           from webhook_subscriptions where deleted_at is null and next_attempt_at <= now()"#
    )
    .fetch_all(pool)
    .await?;
    for sub in subs {
        deliver_subscription(pool, client, config, sub).await?;
    }
    Ok(())
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
        let sent = client
            .post(&sub.url)
            .header("content-type", "application/json")
            .header("pressroom-signature", signature(&sub.secret, &body))
            .header("pressroom-event-id", delivery.event_id.to_string())
            .body(body)
            .send()
            .await;
        let (status_code, error) = match &sent {
            Ok(res) if res.status().is_success() => (Some(i32::from(res.status().as_u16())), None),
            Ok(res) => (Some(i32::from(res.status().as_u16())), Some(format!("receiver answered {}", res.status()))),
            Err(e) => (None, Some(e.to_string())),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
