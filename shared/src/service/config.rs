//! Typed configuration from `PRESSROOM_*` and the database/Redis URL variables, with local defaults.
//! Start-up fails fast with the variable's name when a value does not parse.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required")]
    Missing { name: &'static str },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
    /// A secret that does not qualify; its value is never printed.
    #[error("{name} is invalid: {reason}")]
    InvalidSecret { name: &'static str, reason: String },
}

/// The shortest `PRESSROOM_JWT_SECRET` accepted: HS256 wants a key as long as its output (RFC 7518 §3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The longest duration any setting takes (100 years): longer ones are a typo, and would overflow
/// the clocks they are added to.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Everything the services read from the environment. See README for the table.
#[derive(Debug, Clone)]
pub struct Config {
    /// The primary as the services write to it (through PgBouncer in the local topology).
    pub database_primary_url: String,
    /// The primary without PgBouncer: LISTEN and session advisory locks need a real session.
    pub database_primary_direct_url: String,
    pub database_replica_urls: Vec<String>,
    pub redis_url: String,
    /// `PRESSROOM_REDIS_PREFIX`: the start of every Redis key and channel of this deployment.
    pub redis_keys: crate::read::redis_keys::RedisKeys,
    pub jwt_secret: Option<SecretString>,
    pub command_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub projector_addr: SocketAddr,
    pub max_replica_lag: Duration,
    pub consistency_wait: Duration,
    pub public_url: String,
    pub db_pool_size: u32,
    pub projector_poll_interval: Duration,
    pub projector_batch_size: i64,
    pub request_timeout: Duration,
    /// Per-minute limits; 0 disables one.
    pub rate_limits: RateLimits,
    pub trusted_proxies: crate::http::client_ip::TrustedProxies,
    /// `PRESSROOM_WEBHOOK_ALLOW_PRIVATE=1` lets webhooks target loopback and private addresses.
    pub webhook_allow_private: bool,
    /// `PRESSROOM_TRENDING_CRON` (with seconds): when views are flushed and trending recomputed.
    pub trending_cron: String,
    /// `PRESSROOM_WEBHOOK_MAX_ATTEMPTS`: tries per event before it is dead-lettered.
    pub webhook_max_attempts: i32,
    /// `PRESSROOM_WEBHOOK_RETRY_BASE`: the first retry delay; each next one doubles.
    pub webhook_retry_base: Duration,
    /// `PRESSROOM_IDEMPOTENCY_TTL`: how long an `Idempotency-Key` replays its stored answer (then purged).
    pub idempotency_ttl: Duration,
    /// `PRESSROOM_WEBHOOK_LOG_RETENTION`: how long delivery-log rows are kept.
    pub webhook_log_retention: Duration,
    /// `PRESSROOM_SESSION_TTL`: how long a session token lives; tokens claiming a longer life are refused.
    pub session_ttl: Duration,
    /// `PRESSROOM_SHUTDOWN_GRACE`: after SIGTERM, how long in-flight requests may finish before the
    /// remaining connections are closed and the process exits.
    pub shutdown_grace: Duration,
    /// The public site's settings (`PRESSROOM_SITE_*`, `PRESSROOM_ROBOTS_AI`, `PRESSROOM_COMMAND_PUBLIC_URL`).
    pub site: SiteSettings,
    pub media: MediaSettings,
}

/// Media uploads, their store and their variants (`PRESSROOM_MEDIA_*`).
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// `PRESSROOM_MEDIA_STORE`: a directory (default `.pressroom/media`), `file:///path` or `s3://bucket/prefix`.
    pub store: String,
    /// `PRESSROOM_MEDIA_PUBLIC_URL`: where clients read media (a bucket or CDN); default the query API's `/media`.
    pub public_url: Option<String>,
    /// `PRESSROOM_MEDIA_MAX_BYTES`: the largest upload (default 10 MiB).
    pub max_bytes: usize,
    /// `PRESSROOM_MEDIA_MAX_PIXELS`: the most pixels an upload may decode to (default 50 million).
    pub max_pixels: u64,
    /// `PRESSROOM_MEDIA_WORKERS`: images the variant worker makes at once (default 2).
    pub workers: usize,
    /// `PRESSROOM_MEDIA_SWEEP_GRACE`: how old an object no event names must be before the sweep removes it.
    pub sweep_grace: Duration,
}

/// What the public site says about itself.
#[derive(Debug, Clone)]
pub struct SiteSettings {
    /// `PRESSROOM_SITE_TITLE`.
    pub title: String,
    /// `PRESSROOM_SITE_DESCRIPTION`: the home page's description.
    pub description: String,
    /// `PRESSROOM_SITE_LOGO_URL`: the publisher's logo in JSON-LD.
    pub logo_url: Option<String>,
    /// `PRESSROOM_SITE_LOCALE`, as Open Graph writes it (`en_US`).
    pub locale: String,
    /// `PRESSROOM_SITE_PUBLISHER`: the publisher's name in JSON-LD (the title when unset).
    pub publisher: String,
    /// `PRESSROOM_ROBOTS_AI=allow|deny`: whether `robots.txt` lets AI crawlers in.
    pub robots_ai: bool,
    /// `PRESSROOM_COMMAND_PUBLIC_URL`: the command API's origin as browsers reach it, for the comment form
    /// ("" — the default — when one origin serves both, as behind the nginx of `ops/deploy`).
    pub command_url: String,
}

/// `PRESSROOM_RATE_LIMIT_*`: requests per minute.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Comments per client IP.
    pub comments: u32,
    /// Commands per author.
    pub writes: u32,
    /// Login attempts per client IP.
    pub login: u32,
    /// Public reads per client IP.
    pub reads: u32,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Builds the config from any key lookup (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let s = |k: &'static str, d: &str| get(k).unwrap_or_else(|| d.to_string());
        let primary = s("DATABASE_PRIMARY_URL", "postgres://pressroom_app@127.0.0.1:16432/pressroom");
        let direct = get("DATABASE_PRIMARY_DIRECT_URL").unwrap_or_else(|| {
            if get("DATABASE_PRIMARY_URL").is_some() {
                primary.clone()
            } else {
                "postgres://pressroom_app@127.0.0.1:15432/pressroom".into()
            }
        });
        let replicas = s("DATABASE_REPLICA_URLS", "postgres://pressroom_app@127.0.0.1:15433/pressroom")
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        Ok(Config {
            database_primary_url: primary,
            database_primary_direct_url: direct,
            database_replica_urls: replicas,
            redis_url: s("REDIS_URL", "redis://127.0.0.1:16379"),
            redis_keys: {
                let prefix = s("PRESSROOM_REDIS_PREFIX", crate::read::redis_keys::DEFAULT_PREFIX);
                if prefix.is_empty()
                    || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    return Err(ConfigError::Invalid {
                        name: "PRESSROOM_REDIS_PREFIX",
                        value: prefix,
                        reason: "letters, digits, `_`, `-` and `.` only".into(),
                    });
                }
                crate::read::redis_keys::RedisKeys::new(&prefix)
            },
            jwt_secret: match get("PRESSROOM_JWT_SECRET") {
                Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => {
                    return Err(ConfigError::InvalidSecret {
                        name: "PRESSROOM_JWT_SECRET",
                        reason: format!(
                            "it is {} bytes; use at least {MIN_JWT_SECRET_BYTES} random bytes (e.g. `head -c 48 /dev/urandom | base64`)",
                            secret.len()
                        ),
                    })
                }
                secret => secret.map(SecretString::from),
            },
            command_addr: parse(&get, "PRESSROOM_COMMAND_ADDR", "127.0.0.1:8081")?,
            query_addr: parse(&get, "PRESSROOM_QUERY_ADDR", "127.0.0.1:8080")?,
            projector_addr: parse(&get, "PRESSROOM_PROJECTOR_ADDR", "127.0.0.1:8082")?,
            max_replica_lag: duration(&get, "PRESSROOM_MAX_REPLICA_LAG", "5s")?,
            consistency_wait: duration(&get, "PRESSROOM_CONSISTENCY_WAIT", "500ms")?,
            public_url: s("PRESSROOM_PUBLIC_URL", "http://127.0.0.1:8080").trim_end_matches('/').to_string(),
            db_pool_size: parse(&get, "PRESSROOM_DB_POOL_SIZE", "16")?,
            projector_poll_interval: duration(&get, "PRESSROOM_PROJECTOR_POLL_INTERVAL", "250ms")?,
            projector_batch_size: parse(&get, "PRESSROOM_PROJECTOR_BATCH_SIZE", "500")?,
            request_timeout: duration(&get, "PRESSROOM_REQUEST_TIMEOUT", "10s")?,
            rate_limits: RateLimits {
                comments: parse(&get, "PRESSROOM_RATE_LIMIT_COMMENTS", "5")?,
                writes: parse(&get, "PRESSROOM_RATE_LIMIT_WRITES", "120")?,
                login: parse(&get, "PRESSROOM_RATE_LIMIT_LOGIN", "10")?,
                reads: parse(&get, "PRESSROOM_RATE_LIMIT_READS", "1200")?,
            },
            trusted_proxies: {
                let raw = get("PRESSROOM_TRUSTED_PROXIES").unwrap_or_default();
                crate::http::client_ip::TrustedProxies::parse(&raw).map_err(|bad| ConfigError::Invalid {
                    name: "PRESSROOM_TRUSTED_PROXIES",
                    value: raw.clone(),
                    reason: format!("`{bad}` is not an IP address or CIDR range"),
                })?
            },
            webhook_max_attempts: parse(&get, "PRESSROOM_WEBHOOK_MAX_ATTEMPTS", "6")?,
            webhook_retry_base: duration(&get, "PRESSROOM_WEBHOOK_RETRY_BASE", "2s")?,
            trending_cron: s("PRESSROOM_TRENDING_CRON", "0 */15 * * * *"),
            idempotency_ttl: duration(&get, "PRESSROOM_IDEMPOTENCY_TTL", "24h")?,
            webhook_log_retention: duration(&get, "PRESSROOM_WEBHOOK_LOG_RETENTION", "30d")?,
            shutdown_grace: duration(&get, "PRESSROOM_SHUTDOWN_GRACE", "10s")?,
            session_ttl: duration(&get, "PRESSROOM_SESSION_TTL", "1h")?,
            site: {
                let title = s("PRESSROOM_SITE_TITLE", "Pressroom");
                let locale = s("PRESSROOM_SITE_LOCALE", "en_US");
                if !locale.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || locale.is_empty() {
                    return Err(ConfigError::Invalid {
                        name: "PRESSROOM_SITE_LOCALE",
                        value: locale,
                        reason: "expected a locale such as en_US".into(),
                    });
                }
                let robots = s("PRESSROOM_ROBOTS_AI", "allow");
                SiteSettings {
                    publisher: get("PRESSROOM_SITE_PUBLISHER").unwrap_or_else(|| title.clone()),
                    description: s("PRESSROOM_SITE_DESCRIPTION", "Writing on systems, published with Pressroom."),
                    logo_url: get("PRESSROOM_SITE_LOGO_URL").filter(|u| !u.is_empty()),
                    robots_ai: match robots.as_str() {
                        "allow" => true,
                        "deny" => false,
                        _ => {
                            return Err(ConfigError::Invalid {
                                name: "PRESSROOM_ROBOTS_AI",
                                value: robots,
                                reason: "expected allow or deny".into(),
                            })
                        }
                    },
                    command_url: s("PRESSROOM_COMMAND_PUBLIC_URL", "").trim_end_matches('/').to_string(),
                    title,
                    locale,
                }
            },
            media: MediaSettings {
                store: s("PRESSROOM_MEDIA_STORE", ".pressroom/media"),
                public_url: get("PRESSROOM_MEDIA_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string()),
                max_bytes: parse(&get, "PRESSROOM_MEDIA_MAX_BYTES", "10485760")?,
                max_pixels: parse(&get, "PRESSROOM_MEDIA_MAX_PIXELS", "50000000")?,
                workers: parse::<usize>(&get, "PRESSROOM_MEDIA_WORKERS", "2")?.max(1),
                sweep_grace: duration(&get, "PRESSROOM_MEDIA_SWEEP_GRACE", "1h")?,
            },
            webhook_allow_private: matches!(
                get("PRESSROOM_WEBHOOK_ALLOW_PRIVATE").as_deref(),
                Some("1" | "true" | "yes")
            ),
        })
    }

    /// The media base URL clients read images from.
    pub fn media_base(&self) -> String {
        crate::media::urls::base(&self.public_url, self.media.public_url.as_deref())
    }

    /// The JWT secret, required by the services that issue or check tokens.
    pub fn require_jwt_secret(&self) -> Result<&SecretString, ConfigError> {
        self.jwt_secret.as_ref().ok_or(ConfigError::Missing { name: "PRESSROOM_JWT_SECRET" })
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let value = get(name).unwrap_or_else(|| default.to_string());
    value.parse().map_err(|e: T::Err| ConfigError::Invalid { name, value: value.clone(), reason: e.to_string() })
}

fn duration(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
    let value = get(name).unwrap_or_else(|| default.to_string());
    parse_duration(&value).ok_or_else(|| ConfigError::Invalid {
        name,
        value: value.clone(),
        reason: "expected a duration such as 500ms, 5s, 2m, 24h or 30d, at most 100 years".into(),
    })
}

/// `500ms`, `5s`, `2m`, `24h`, `30d`, or a bare number of seconds; at most [`MAX_DURATION`].
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, unit) = v.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((v, "s"), |i| v.split_at(i));
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok().filter(|d| *d <= MAX_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_match_the_local_topology() {
        let c = Config::from_lookup(|_| None).ok();
        let c = c.as_ref();
        assert_eq!(c.map(|c| c.query_addr.port()), Some(8080));
        assert_eq!(c.map(|c| c.max_replica_lag), Some(Duration::from_secs(5)));
        assert_eq!(c.map(|c| c.consistency_wait), Some(Duration::from_millis(500)));
        assert_eq!(c.map(|c| c.database_replica_urls.len()), Some(1));
    }

    #[test]
    fn a_duration_too_large_to_represent_is_an_error_naming_the_variable_not_a_panic() {
        for huge in ["1e30s", "99999999999999999999999d", "101y", "36500000d"] {
            let env: HashMap<&str, &str> = HashMap::from([("PRESSROOM_SHUTDOWN_GRACE", huge)]);
            let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains("PRESSROOM_SHUTDOWN_GRACE")), "{huge}");
        }
    }

    #[test]
    fn a_jwt_secret_under_32_bytes_stops_start_up_without_printing_it() {
        let env: HashMap<&str, &str> = HashMap::from([("PRESSROOM_JWT_SECRET", "short-secret-31-bytes-long-abcd")]);
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("PRESSROOM_JWT_SECRET") && !e.contains("short-secret")));
        let env: HashMap<&str, &str> = HashMap::from([("PRESSROOM_JWT_SECRET", "a-secret-of-exactly-32-bytes-ok!")]);
        assert!(Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).is_ok());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env: HashMap<&str, &str> = HashMap::from([("PRESSROOM_MAX_REPLICA_LAG", "soon")]);
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("PRESSROOM_MAX_REPLICA_LAG")));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("-1s"), None);
    }
}
