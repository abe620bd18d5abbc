//! Prometheus metrics: one recorder per process, `/metrics` in the text format, and the HTTP
//! middleware counting requests and timing them by route template and status.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets from 1 ms to 2.5 s.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Installs the process-wide recorder (later calls reuse it).
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder =
            PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS);
        match builder.and_then(|b| b.install_recorder()) {
            Ok(handle) => {
                // Histograms keep raw samples until upkeep folds them in: without it they grow without bound.
                let upkeep = handle.clone();
                std::thread::spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        }
    });
}

/// `GET /metrics`.
pub async fn render() -> impl IntoResponse {
    let body = HANDLE.get().and_then(Option::as_ref).map(PrometheusHandle::render).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Counts and times each request by method, route template and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| intern(p.as_str()));
    let method = intern(req.method().as_str());
    let started = Instant::now();
    let _in_flight = InFlight::enter();
    let res = next.run(req).await;
    let status = intern(res.status().as_str());
    let (requests, latency) = handles(method, route, status);
    latency.record(started.elapsed().as_secs_f64());
    requests.increment(1);
    res
}

type Handles = (metrics::Counter, metrics::Histogram);

/// `pressroom_http_requests_in_flight`: up while a request is handled, down when it ends or is dropped.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter() -> Self {
        static GAUGE: std::sync::OnceLock<metrics::Gauge> = std::sync::OnceLock::new();
        let gauge = GAUGE.get_or_init(|| metrics::gauge!("pressroom_http_requests_in_flight")).clone();
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Metric handles registered once per key of `'static` label values, compared by address and length:
/// looking a metric up in the recorder hashes its whole key, which on the hottest reads costs more than
/// the handler. Bounded (4,096 keys); past that, lookups go to the recorder.
struct HandleCache<const N: usize, H> {
    entries: std::sync::RwLock<Vec<(LabelKey<N>, H)>>,
}

/// Each label value's address and length.
type LabelKey<const N: usize> = [(usize, usize); N];

impl<const N: usize, H: Clone> HandleCache<N, H> {
    const fn new() -> Self {
        HandleCache { entries: std::sync::RwLock::new(Vec::new()) }
    }

    fn get(&self, labels: [&'static str; N], make: impl FnOnce() -> H) -> H {
        let key = labels.map(|l| (l.as_ptr() as usize, l.len()));
        if let Some(found) =
            self.entries.read().ok().and_then(|c| c.iter().find(|(k, _)| *k == key).map(|e| e.1.clone()))
        {
            return found;
        }
        let made = make();
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() < 4096 {
                entries.push((key, made.clone()));
            }
        }
        made
    }
}

/// The counter and histogram of one (method, route, status); the labels are interned.
fn handles(method: &'static str, route: &'static str, status: &'static str) -> Handles {
    static CACHE: HandleCache<3, Handles> = HandleCache::new();
    CACHE.get([method, route, status], || {
        (
            metrics::counter!("pressroom_http_requests_total", "method" => method, "route" => route, "status" => status),
            metrics::histogram!("pressroom_http_request_duration_seconds", "method" => method, "route" => route),
        )
    })
}

/// Route templates, methods and statuses are few: keep one `'static` copy of each so that labelling a
/// request allocates nothing.
fn intern(s: &str) -> &'static str {
    static SEEN: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    if let Some(found) = SEEN.read().ok().and_then(|seen| seen.iter().find(|x| **x == s).copied()) {
        return found;
    }
    let Ok(mut seen) = SEEN.write() else { return "unknown" };
    if let Some(found) = seen.iter().find(|x| **x == s) {
        return found;
    }
    if seen.len() >= 512 {
        return "other"; // never expected: route templates are a fixed set
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    seen.push(leaked);
    leaked
}

/// Times one database operation (`operation` names the read or write, `route` is where it ran:
/// `replica`, `primary`…) into `pressroom_db_query_duration_seconds`.
pub async fn timed_query<T>(
    operation: &'static str,
    route: &'static str,
    query: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    let out = query.await;
    static CACHE: HandleCache<2, metrics::Histogram> = HandleCache::new();
    let histogram = CACHE.get(
        [operation, route],
        || metrics::histogram!("pressroom_db_query_duration_seconds", "operation" => operation, "route" => route),
    );
    histogram.record(started.elapsed().as_secs_f64());
    out
}

/// Samples a pool's connections into `pressroom_db_pool_connections{pool, state}` (in_use, idle) and
/// `pressroom_db_pool_max{pool}` every two seconds until shutdown: saturation is in_use / max.
pub async fn watch_pool(name: String, pool: sqlx::PgPool, shutdown: tokio_util::sync::CancellationToken) {
    let in_use = metrics::gauge!("pressroom_db_pool_connections", "pool" => name.clone(), "state" => "in_use");
    let idle = metrics::gauge!("pressroom_db_pool_connections", "pool" => name.clone(), "state" => "idle");
    let max = metrics::gauge!("pressroom_db_pool_max", "pool" => name);
    loop {
        let (size, free) = (pool.size(), pool.num_idle() as u32);
        in_use.set(f64::from(size.saturating_sub(free)));
        idle.set(f64::from(free));
        max.set(f64::from(pool.options().get_max_connections()));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}

/// Registers counters at 0 for every known label value, so that dashboards and alerts find the series
/// before the first event: (metric, label, values).
pub fn zero_counters(counters: &[(&'static str, &'static str, &[&'static str])]) {
    for (name, label, values) in counters {
        for value in *values {
            metrics::counter!(*name, *label => *value).increment(0);
        }
    }
}
