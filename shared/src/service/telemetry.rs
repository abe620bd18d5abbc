//! One telemetry setup for every binary: JSON logs filtered by `PRESSROOM_LOG` (or `RUST_LOG`; the
//! operator CLI writes plain warnings to stderr instead, [`init_cli`]), and
//! OpenTelemetry traces exported over OTLP (HTTP/JSON) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. A command
//! stores its W3C `traceparent` in the event metadata; the projector continues that trace when it applies
//! the event, so one trace spans command → projector.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(service: &'static str) {
    let filter = std::env::var("PRESSROOM_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info,tokio_cron_scheduler=warn".into());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let mut otel_error = None;
    match otlp_provider(service) {
        Ok(Some(provider)) => {
            let tracer = provider.tracer(service);
            let _ = PROVIDER.set(provider);
            // The log filter applies to the logs only: traces keep every info span whatever PRESSROOM_LOG says.
            let otel = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            let _ = tracing_subscriber::registry().with(json_layer().with_filter(filter)).with(otel).try_init();
        }
        other => {
            otel_error = other.err();
            // Without export, one global filter: disabled spans then cost nothing on the hot path.
            let _ = tracing_subscriber::registry().with(filter).with(json_layer()).try_init();
        }
    }
    if let Some(e) = otel_error {
        tracing::warn!(error = %e, "OTLP trace export not set up; tracing locally only");
    }
    tracing::info!(service, version = env!("CARGO_PKG_VERSION"), otlp = PROVIDER.get().is_some(), "starting");
}

/// The operator CLI's logs: plain lines on stderr (stdout carries its reports, `--json` ones too), warnings
/// and errors unless `PRESSROOM_LOG` says otherwise (not sqlx's slow-statement warnings: an index build is
/// meant to be slow). Safe to call more than once.
pub fn init_cli() {
    let filter = std::env::var("PRESSROOM_LOG").unwrap_or_else(|_| "warn,sqlx=error".into());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr).with_target(false).without_time())
        .try_init();
}

/// JSON lines, one per event, with the current span's fields (request id, trace id).
fn json_layer<S>() -> fmt::Layer<S, fmt::format::JsonFields, fmt::format::Format<fmt::format::Json>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false)
}

fn otlp_provider(service: &'static str) -> Result<Option<SdkTracerProvider>, String> {
    let Some(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_headers(HashMap::new())
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    Ok(Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build()))
}

/// Flushes and stops trace export (call before the process exits).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// The current span's W3C `traceparent`, when traces are exported.
pub fn current_traceparent() -> Option<String> {
    PROVIDER.get()?;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// The trace id of `span` (hex), when traces are exported: for the JSON logs.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    PROVIDER.get()?;
    let cx = span.context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

/// Makes `span` a child of the remote span `traceparent` names (a command's, from event metadata).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if PROVIDER.get().is_none() {
        return;
    }
    let carrier: HashMap<String, String> = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    span.set_parent(cx);
}
