//! Per-minute rate limits shared by every instance through Redis (GCRA in a Lua script, on Redis's
//! clock). When Redis is unreachable each instance falls back to its own in-process GCRA and logs it.

use std::collections::HashMap;
use std::sync::Mutex;
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

pub struct RateLimiter {
    redis: crate::store::db::LazyRedis,
    keys: crate::read::redis_keys::RedisKeys,
    script: redis::Script,
    local: Mutex<HashMap<String, f64>>,
    started: Instant,
}

impl RateLimiter {
    pub fn new(redis_url: &str, keys: crate::read::redis_keys::RedisKeys) -> Self {
        RateLimiter {
            redis: crate::store::db::LazyRedis::new(redis_url),
            keys,
            script: redis::Script::new(GCRA),
            local: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    /// Counts one request of `key` in `bucket` against `per_minute` (0 disables the limit).
    pub async fn check(&self, bucket: &str, key: &str, per_minute: u32) -> Result<(), Limited> {
        if per_minute == 0 {
            return Ok(());
        }
        let interval_ms = 60_000.0 / f64::from(per_minute);
        let redis_key = self.keys.rate_limit(bucket, key);
        if let Some(mut conn) = self.redis.get().await {
            let r: redis::RedisResult<(i64, i64)> =
                self.script.key(&redis_key).arg(interval_ms).arg(per_minute).invoke_async(&mut conn).await;
            match r {
                Ok((1, _)) => return Ok(()),
                Ok((_, wait_ms)) => {
                    metrics::counter!("pressroom_rate_limit_rejections_total", "bucket" => bucket.to_string())
                        .increment(1);
                    return Err(Limited { retry_after: Duration::from_millis(wait_ms.max(0) as u64) });
                }
                Err(e) => tracing::warn!(error = %e, "rate limiting in process: Redis failed"),
            }
        }
        self.check_local(&redis_key, interval_ms, per_minute)
    }

    fn check_local(&self, key: &str, interval_ms: f64, burst: u32) -> Result<(), Limited> {
        let now = self.started.elapsed().as_secs_f64() * 1000.0;
        let Ok(mut map) = self.local.lock() else {
            return Ok(());
        };
        if map.len() > 100_000 {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let allow_at = tat - f64::from(burst - 1) * interval_ms;
        if now < allow_at {
            metrics::counter!("pressroom_rate_limit_rejections_total", "bucket" => "local").increment(1);
            return Err(Limited { retry_after: Duration::from_millis((allow_at - now).ceil() as u64) });
        }
        map.insert(key.to_string(), tat + interval_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_fallback_allows_the_burst_then_refuses_with_a_retry_after() {
        let rl = RateLimiter::new("", Default::default());
        for _ in 0..5 {
            assert!(rl.check_local("k", 12_000.0, 5).is_ok());
        }
        let refused = rl.check_local("k", 12_000.0, 5);
        assert!(refused.is_err_and(|l| l.retry_after_secs() > 0 && l.retry_after_secs() <= 12));
    }
}
