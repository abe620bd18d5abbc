//! Per-minute rate limits shared by every instance through Redis (GCRA on Redis's clock). Two ways to
//! count: [`RateLimiter::check`] asks Redis on every request (exact across instances: logins, writes,
//! comments); [`RateLimiter::check_local`] decides in process and reconciles with Redis in the background
//! every [`SYNC_EVERY`] (reads, where a Redis round trip per request would cost more than the read). When
//! Redis is unreachable both decide in process and log it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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

/// One key's in-process state, updated without a lock (many requests of one client race on it): its
/// theoretical arrival time (ns since `started`), the requests admitted since the last sync, and its
/// emission interval (ns).
struct Local {
    tat: AtomicU64,
    unsynced: AtomicU32,
    interval_ns: AtomicU64,
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
    /// Read-locked on every request (a new key takes the write lock once).
    local: RwLock<HashMap<String, Local>>,
    started: Instant,
    syncing: AtomicBool,
    /// When the last sync ended (ns since `started`).
    last_sync: AtomicU64,
}

impl RateLimiter {
    pub fn new(redis_url: &str, keys: crate::read::redis_keys::RedisKeys) -> Self {
        RateLimiter {
            inner: Arc::new(Inner {
                redis: crate::store::db::LazyRedis::new(redis_url),
                keys,
                script: redis::Script::new(GCRA),
                sync_script: redis::Script::new(SYNC),
                local: RwLock::new(HashMap::new()),
                started: Instant::now(),
                syncing: AtomicBool::new(false),
                last_sync: AtomicU64::new(0),
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
        inner.decide(&redis_key, per_minute, bucket)
    }

    /// Counts one request like [`check`](Self::check), decided in process without waiting for Redis; the
    /// counts reach Redis (and the other instances' counts come back) every [`SYNC_EVERY`]. Exact on one
    /// instance; across N instances a client can get up to what each instance admits within one sync
    /// interval beyond its limit before every instance has the others' counts.
    pub fn check_local(&self, bucket: &str, key: &str, per_minute: u32) -> Result<(), Limited> {
        if per_minute == 0 {
            return Ok(());
        }
        let redis_key = self.inner.keys.rate_limit(bucket, key);
        let decided = self.inner.decide(&redis_key, per_minute, bucket);
        self.sync_if_due();
        decided
    }

    /// Starts a reconciliation with Redis when the last one is [`SYNC_EVERY`] old and none is running.
    fn sync_if_due(&self) {
        let inner = &self.inner;
        let due =
            inner.now_ns().saturating_sub(inner.last_sync.load(Ordering::Acquire)) >= SYNC_EVERY.as_nanos() as u64;
        if !due || inner.syncing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            inner.syncing.store(false, Ordering::Release);
            return;
        };
        let inner = inner.clone();
        runtime.spawn(async move {
            if let Err(e) = inner.sync().await {
                tracing::warn!(error = %e, "rate limits: counts not reconciled with Redis; deciding in process");
            }
            inner.last_sync.store(inner.now_ns(), Ordering::Release);
            inner.syncing.store(false, Ordering::Release);
        });
    }
}

fn refused(bucket: &str, retry_after: Duration) -> Limited {
    metrics::counter!("pressroom_rate_limit_rejections_total", "bucket" => bucket.to_string()).increment(1);
    Limited { retry_after }
}

impl Inner {
    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// GCRA in process for `key`: a compare-and-swap on its arrival time.
    fn decide(&self, key: &str, per_minute: u32, bucket: &str) -> Result<(), Limited> {
        let interval_ns = 60_000_000_000 / u64::from(per_minute);
        let tolerance = u64::from(per_minute - 1) * interval_ns;
        let now = self.now_ns();
        if !self.local.read().is_ok_and(|map| map.contains_key(key)) {
            let Ok(mut map) = self.local.write() else { return Ok(()) };
            if map.len() > MAX_LOCAL_KEYS {
                map.retain(|_, l| l.tat.load(Ordering::Relaxed) > now || l.unsynced.load(Ordering::Relaxed) > 0);
            }
            map.entry(key.to_string()).or_insert_with(|| Local {
                tat: AtomicU64::new(0),
                unsynced: AtomicU32::new(0),
                interval_ns: AtomicU64::new(interval_ns),
            });
        }
        let Ok(map) = self.local.read() else { return Ok(()) };
        let Some(local) = map.get(key) else { return Ok(()) };
        local.interval_ns.store(interval_ns, Ordering::Relaxed);
        let mut current = local.tat.load(Ordering::Acquire);
        loop {
            let tat = current.max(now);
            let allow_at = tat.saturating_sub(tolerance);
            if now < allow_at {
                drop(map);
                return Err(refused(bucket, Duration::from_nanos(allow_at - now)));
            }
            match local.tat.compare_exchange_weak(current, tat + interval_ns, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    local.unsynced.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Sends the counts admitted since the last sync to Redis and takes back the shared arrival times.
    async fn sync(&self) -> redis::RedisResult<()> {
        let batch: Vec<(String, f64, u32)> = match self.local.read() {
            Ok(map) => map
                .iter()
                .filter(|(_, l)| l.unsynced.load(Ordering::Relaxed) > 0)
                .map(|(k, l)| {
                    let interval_ms = l.interval_ns.load(Ordering::Relaxed) as f64 / 1_000_000.0;
                    (k.clone(), interval_ms, l.unsynced.swap(0, Ordering::AcqRel))
                })
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
        let map = match self.local.read() {
            Ok(map) => map,
            Err(_) => return Ok(()),
        };
        let ahead = match ahead {
            Ok(ahead) if ahead.len() == batch.len() => ahead,
            failed => {
                // Not counted in Redis: keep the counts for the next sync.
                for (key, _, admitted) in &batch {
                    if let Some(l) = map.get(key) {
                        l.unsynced.fetch_add(*admitted, Ordering::Relaxed);
                    }
                }
                return failed.map(|_| ());
            }
        };
        let now = self.now_ns();
        for ((key, ..), ahead_ms) in batch.iter().zip(ahead) {
            if let Some(l) = map.get(key) {
                l.tat.fetch_max(now + ahead_ms.max(0) as u64 * 1_000_000, Ordering::AcqRel);
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
