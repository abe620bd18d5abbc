//! Per-minute rate limits shared by every instance through Redis (GCRA on Redis's clock). Two ways to
//! count: [`RateLimiter::check`] asks Redis on every request (exact across instances: logins, writes,
//! comments); [`RateLimiter::check_local`] decides in process and reconciles with Redis in the background
//! every [`SYNC_EVERY`] (reads, where a Redis round trip per request would cost more than the read). When
//! Redis is unreachable both decide in process and log it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// GCRA: KEYS[1] holds the theoretical arrival time (ms). ARGV[1] = emission interval (ms),
/// ARGV[2] = burst. Returns {allowed, retry_after_ms}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - (burst - 1) * interval
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, 0}
"#;

/// The background reconciliation: for each KEYS[i], ARGV[2i-1] = emission interval (ms) and ARGV[2i] =
/// requests admitted in process since the last sync. Adds them to the shared arrival time and returns,
/// per key, how far (ms) that time lies ahead of now.
const SYNC: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ahead = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local admitted = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tat = tat + interval * admitted
  redis.call('SET', key, tat, 'PX', math.ceil(tat - now) + 1000)
  ahead[i] = math.floor(tat - now)
end
return ahead
"#;

/// How often [`RateLimiter::check_local`] reconciles with Redis.
pub const SYNC_EVERY: Duration = Duration::from_millis(250);
/// Local entries beyond this many are pruned of the expired ones.
const MAX_LOCAL_KEYS: usize = 100_000;

/// A refused request: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// One key's in-process state: its theoretical arrival time (ms since `started`), the requests admitted
/// since the last sync, and its emission interval.
struct Local {
    tat: f64,
    unsynced: u32,
    interval_ms: f64,
}

/// The limiter; cheap to clone (one shared state).
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: crate::store::db::LazyRedis,
    keys: crate::read::redis_keys::RedisKeys,
    script: redis::Script,
    sync_script: redis::Script,
    local: Mutex<HashMap<String, Local>>,
    started: Instant,
    syncing: AtomicBool,
    last_sync: Mutex<Instant>,
}

impl RateLimiter {
    pub fn new(redis_url: &str, keys: crate::read::redis_keys::RedisKeys) -> Self {
        let started = Instant::now();
        RateLimiter {
            inner: Arc::new(Inner {
                redis: crate::store::db::LazyRedis::new(redis_url),
                keys,
                script: redis::Script::new(GCRA),
                sync_script: redis::Script::new(SYNC),
                local: Mutex::new(HashMap::new()),
                started,
                syncing: AtomicBool::new(false),
                last_sync: Mutex::new(started),
            }),
        }
    }

    /// Counts one request of `key` in `bucket` against `per_minute` (0 disables the limit), asking Redis:
    /// exact across instances, one round trip per request.
    pub async fn check(&self, bucket: &str, key: &str, per_minute: u32) -> Result<(), Limited> {
        if per_minute == 0 {
            return Ok(());
        }
        let inner = &self.inner;
        let interval_ms = 60_000.0 / f64::from(per_minute);
        let redis_key = inner.keys.rate_limit(bucket, key);
        if let Some(mut conn) = inner.redis.get().await {
            let r: redis::RedisResult<(i64, i64)> =
                inner.script.key(&redis_key).arg(interval_ms).arg(per_minute).invoke_async(&mut conn).await;
            match r {
                Ok((1, _)) => return Ok(()),
                Ok((_, wait_ms)) => return Err(refused(bucket, Duration::from_millis(wait_ms.max(0) as u64))),
                Err(e) => tracing::warn!(error = %e, "rate limiting in process: Redis failed"),
            }
        }
        inner.decide(&redis_key, interval_ms, per_minute, bucket)
    }

    /// Counts one request like [`check`](Self::check), decided in process without waiting for Redis; the
    /// counts reach Redis (and the other instances' counts come back) every [`SYNC_EVERY`]. Exact on one
    /// instance; across N instances a client can get up to what each instance admits within one sync
    /// interval beyond its limit before every instance has the others' counts.
    pub fn check_local(&self, bucket: &str, key: &str, per_minute: u32) -> Result<(), Limited> {
        if per_minute == 0 {
            return Ok(());
        }
        let interval_ms = 60_000.0 / f64::from(per_minute);
        let redis_key = self.inner.keys.rate_limit(bucket, key);
        let decided = self.inner.decide(&redis_key, interval_ms, per_minute, bucket);
        self.sync_if_due();
        decided
    }

    /// Starts a reconciliation with Redis when the last one is [`SYNC_EVERY`] old and none is running.
    fn sync_if_due(&self) {
        let due = self.inner.last_sync.lock().is_ok_and(|at| at.elapsed() >= SYNC_EVERY);
        if !due || self.inner.syncing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.syncing.store(false, Ordering::Release);
            return;
        };
        let inner = self.inner.clone();
        runtime.spawn(async move {
            if let Err(e) = inner.sync().await {
                tracing::warn!(error = %e, "rate limits: counts not reconciled with Redis; deciding in process");
            }
            if let Ok(mut at) = inner.last_sync.lock() {
                *at = Instant::now();
            }
            inner.syncing.store(false, Ordering::Release);
        });
    }
}

fn refused(bucket: &str, retry_after: Duration) -> Limited {
    metrics::counter!("pressroom_rate_limit_rejections_total", "bucket" => bucket.to_string()).increment(1);
    Limited { retry_after }
}

impl Inner {
    fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// GCRA in process for `key`.
    fn decide(&self, key: &str, interval_ms: f64, burst: u32, bucket: &str) -> Result<(), Limited> {
        let now = self.now_ms();
        let Ok(mut map) = self.local.lock() else {
            return Ok(());
        };
        if map.len() > MAX_LOCAL_KEYS {
            map.retain(|_, l| l.tat > now || l.unsynced > 0);
        }
        let tat = map.get(key).map_or(now, |l| l.tat).max(now);
        let allow_at = tat - f64::from(burst - 1) * interval_ms;
        if now < allow_at {
            drop(map);
            return Err(refused(bucket, Duration::from_millis((allow_at - now).ceil() as u64)));
        }
        match map.get_mut(key) {
            Some(l) => {
                l.tat = tat + interval_ms;
                l.unsynced = l.unsynced.saturating_add(1);
                l.interval_ms = interval_ms;
            }
            None => {
                map.insert(key.to_string(), Local { tat: tat + interval_ms, unsynced: 1, interval_ms });
            }
        }
        Ok(())
    }

    /// Sends the counts admitted since the last sync to Redis and takes back the shared arrival times.
    async fn sync(&self) -> redis::RedisResult<()> {
        let batch: Vec<(String, f64, u32)> = match self.local.lock() {
            Ok(mut map) => map
                .iter_mut()
                .filter(|(_, l)| l.unsynced > 0)
                .map(|(k, l)| (k.clone(), l.interval_ms, std::mem::take(&mut l.unsynced)))
                .collect(),
            Err(_) => return Ok(()),
        };
        if batch.is_empty() {
            return Ok(());
        }
        let ahead: redis::RedisResult<Vec<i64>> = match self.redis.get().await {
            Some(mut conn) => {
                let mut invocation = self.sync_script.prepare_invoke();
                for (key, interval_ms, admitted) in &batch {
                    invocation.key(key).arg(*interval_ms).arg(*admitted);
                }
                invocation.invoke_async(&mut conn).await
            }
            None => Ok(Vec::new()),
        };
        let ahead = match ahead {
            Ok(ahead) if ahead.len() == batch.len() => ahead,
            failed => {
                // Not counted in Redis: keep the counts for the next sync.
                if let Ok(mut map) = self.local.lock() {
                    for (key, _, admitted) in &batch {
                        if let Some(l) = map.get_mut(key) {
                            l.unsynced = l.unsynced.saturating_add(*admitted);
                        }
                    }
                }
                return failed.map(|_| ());
            }
        };
        let now = self.now_ms();
        if let Ok(mut map) = self.local.lock() {
            for ((key, ..), ahead_ms) in batch.iter().zip(ahead) {
                if let Some(l) = map.get_mut(key) {
                    l.tat = l.tat.max(now + ahead_ms as f64);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_process_count_allows_the_burst_then_refuses_with_a_retry_after() {
        let rl = RateLimiter::new("", Default::default());
        for _ in 0..5 {
            assert!(rl.check_local("reads", "k", 5).is_ok());
        }
        let refused = rl.check_local("reads", "k", 5);
        assert!(refused.is_err_and(|l| l.retry_after_secs() > 0 && l.retry_after_secs() <= 12));
        assert!(rl.check_local("reads", "other", 5).is_ok(), "another key has its own count");
    }
}
