//! HTTP plumbing shared by the services: the standard middleware stack, liveness, and a server that
//! drains in-flight requests on shutdown; problem+json, authentication, client addresses, rate limits,
//! the OpenAPI error documentation and the guard on outbound requests are its submodules.

pub mod api_doc;
pub mod auth;
pub mod client_ip;
pub mod etag;
pub mod mcp;
pub mod middleware;
pub mod outbound;
pub mod problem;
pub mod rate_limit;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::http::problem::Problem;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Where a service listens, and the variable that sets it (named when the address cannot be bound).
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub addr: SocketAddr,
    pub setting: &'static str,
}

/// Binds the address and serves `app` until `shutdown` is cancelled, then lets in-flight requests finish
/// for up to `grace` (`PRESSROOM_SHUTDOWN_GRACE`) before closing whatever connections remain.
pub async fn serve(listen: Listen, app: Router, shutdown: CancellationToken, grace: Duration) -> std::io::Result<()> {
    let Listen { addr, setting } = listen;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let why = format!("cannot listen on {addr} ({e}); free the port or set {setting}");
        tracing::error!(%addr, setting, error = %e, "{why}");
        std::io::Error::new(e.kind(), why)
    })?;
    serve_on(listener, app, shutdown, grace).await
}

/// [`serve`] for a service's `main`: a failure (a taken address, most often) is already one log line, so
/// the process exits with status 1 and prints nothing more.
pub async fn serve_or_exit(listen: Listen, app: Router, shutdown: CancellationToken, grace: Duration) {
    if let Err(e) = serve(listen, app, shutdown, grace).await {
        if e.kind() != std::io::ErrorKind::AddrInUse && e.kind() != std::io::ErrorKind::AddrNotAvailable {
            tracing::error!(error = %e, "the server failed");
        }
        crate::service::telemetry::shutdown();
        std::process::exit(1);
    }
}

/// Serves on an already bound listener (tests bind port 0 and read the address back).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    use std::future::IntoFuture;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let draining = shutdown.clone();
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { draining.cancelled().await })
        .into_future();
    // Connections are tasks of the runtime: the ones still open when the grace ends are dropped with it
    // once the caller returns from `main`.
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "connections still open after the shutdown grace; closing them");
            Ok(())
        }
    }
}

/// The middleware every service shares: request ids, a tracing span per request, a timeout, compression.
/// They go on as one layer: axum boxes (and clones, per request) every route once per `layer` call.
pub fn standard_layers(router: Router, timeout: Duration) -> Router {
    use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::TraceLayer;
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    crate::service::metrics::install();
    let stack = tower::ServiceBuilder::new()
        .map_request(bounded_request_id as fn(Request) -> Request)
        .layer(SetRequestIdLayer::new(header.clone(), FastRequestId))
        .layer(PropagateRequestIdLayer::new(header))
        .layer(TraceLayer::new_for_http().make_span_with(request_span as fn(&Request) -> tracing::Span))
        .layer(crate::http::middleware::LazyTimeoutLayer::new(timeout))
        .layer(crate::http::middleware::CompressWhenAcceptedLayer)
        .map_response(method_not_allowed as fn(Response) -> Response);
    router
        .route("/metrics", axum::routing::get(crate::service::metrics::render))
        .route_layer(axum::middleware::from_fn(crate::service::metrics::track_http))
        .layer(stack)
}

/// The longest client-supplied request id kept; longer ones (or any with other than visible ASCII) are
/// replaced by a generated one, so a client cannot make us echo, log and store kilobytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Drops the client's `X-Request-Id` unless it is one header of 1–128 visible ASCII characters; the
/// next layer then generates one.
fn bounded_request_id(mut req: Request) -> Request {
    let mut ids = req.headers().get_all(REQUEST_ID_HEADER).iter();
    let acceptable = match (ids.next(), ids.next()) {
        (None, _) => return req,
        (Some(id), None) => {
            let b = id.as_bytes();
            !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(u8::is_ascii_graphic)
        }
        (Some(_), Some(_)) => false,
    };
    if !acceptable {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    req
}

/// The span a request runs in (none when no subscriber takes info spans: the route would allocate).
fn request_span(req: &Request) -> tracing::Span {
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return tracing::Span::none();
    }
    let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let span = tracing::info_span!("request", method = %req.method(), route, request_id = id, trace_id = tracing::field::Empty);
    if let Some(trace_id) = crate::service::telemetry::trace_id(&span) {
        span.record("trace_id", trace_id);
    }
    span
}

/// Request ids as random UUIDs from the thread's userspace generator: `MakeRequestUuid` asks the kernel
/// (getrandom) on every request.
#[derive(Clone, Copy)]
struct FastRequestId;

impl tower_http::request_id::MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        HeaderValue::from_str(&id.to_string()).ok().map(tower_http::request_id::RequestId::new)
    }
}

/// `GET /health`: the process is alive.
pub async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// A JSON body extractor whose rejections are problem+json: 400 malformed, 415 wrong type,
/// 413 too large, 422 wrong shape (unknown field, wrong type of value).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(json_rejection_problem(JsonRejection::MissingJsonContentType(Default::default())));
        }
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rejection) => return Err(json_rejection_problem(JsonRejection::BytesRejection(rejection))),
        };
        if let Some(field) = field_with_nul(&bytes) {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                Some("the request body has invalid fields".into()),
            )
            .with_errors(vec![crate::domain::values::FieldError::new(
                field,
                "must not contain NUL (U+0000) characters",
            )]));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(json_rejection_problem(rejection)),
        }
    }
}

/// `Content-Type: application/json` or `application/<anything>+json`, parameters allowed.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(mime) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The path (`title`, `tags[2]`) of the first string in a JSON body that holds a NUL character, which
/// PostgreSQL can store in neither text nor jsonb. Bodies without a `\u0000` escape are not parsed here.
fn field_with_nul(body: &[u8]) -> Option<String> {
    const ESCAPE: &[u8] = b"\\u0000";
    if !body.windows(ESCAPE.len()).any(|w| w == ESCAPE) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    fn walk(v: &serde_json::Value, path: &str) -> Option<String> {
        let here = |p: &str| if p.is_empty() { "body".to_string() } else { p.to_string() };
        match v {
            serde_json::Value::String(s) => s.contains('\0').then(|| here(path)),
            serde_json::Value::Array(items) => {
                items.iter().enumerate().find_map(|(i, item)| walk(item, &format!("{path}[{i}]")))
            }
            serde_json::Value::Object(fields) => fields.iter().find_map(|(k, item)| {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if k.contains('\0') {
                    Some(here(path))
                } else {
                    walk(item, &p)
                }
            }),
            _ => None,
        }
    }
    walk(&value, "")
}

fn json_rejection_problem(rejection: JsonRejection) -> Problem {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            let field = data_error_field(&detail);
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                Some("the request body has invalid fields".into()),
            )
            .with_errors(vec![crate::domain::values::FieldError::new(field, detail)])
        }
        JsonRejection::JsonSyntaxError(_) => Problem::new(StatusCode::BAD_REQUEST, "malformed-json", Some(detail)),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            Some("expected Content-Type: application/json".into()),
        ),
        JsonRejection::BytesRejection(_) if rejection_is_too_large(&detail) => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", Some("the body exceeds 1 MiB".into()))
        }
        other => Problem::new(other.status(), "bad-request", Some(detail)),
    }
}

/// The field a serde data error names: `unknown field `x``, or the path before the first `: `.
fn data_error_field(detail: &str) -> String {
    let rest = detail.split_once("target type: ").map_or(detail, |(_, r)| r);
    if let Some(name) = rest.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        return name.to_string();
    }
    if let Some(name) = rest.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
        return name.to_string();
    }
    match rest.split_once(": ") {
        Some((path, _)) if !path.is_empty() && !path.contains(' ') => path.to_string(),
        _ => "body".to_string(),
    }
}

fn rejection_is_too_large(detail: &str) -> bool {
    detail.contains("length limit") || detail.contains("too large")
}

/// Fallback for unknown routes: a problem+json 404.
pub async fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", Some("no such route".into())).into_response()
}

/// The router's bare 405 (a known path, another method) as problem+json, its `Allow` header kept.
fn method_not_allowed(res: Response) -> Response {
    if res.status() != StatusCode::METHOD_NOT_ALLOWED || res.headers().contains_key(axum::http::header::CONTENT_TYPE) {
        return res;
    }
    let allow = res.headers().get(axum::http::header::ALLOW).cloned();
    let detail = match allow.as_ref().and_then(|a| a.to_str().ok()) {
        Some(allowed) => format!("this route answers {allowed}"),
        None => "this route does not answer this method".to_string(),
    };
    let mut problem = Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", Some(detail)).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    problem
}

/// A `{id}` path segment that must be a UUID; anything else is a problem+json 404 (no such resource).
pub struct IdPath(pub uuid::Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(IdPath(id)),
            Err(_) => Err(Problem::new(StatusCode::NOT_FOUND, "not-found", Some("no resource has this id".into()))),
        }
    }
}

/// `GET /ready` body for a service whose one dependency is the primary: 200 when it answers, else 503.
pub async fn ready_primary(pool: &sqlx::PgPool) -> Response {
    match sqlx::query_scalar!("select 1 as one").fetch_one(pool).await {
        Ok(_) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: primary unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "unavailable"}))).into_response()
        }
    }
}

/// Redoc's standalone bundle (npm `redoc@2.1.5`, MIT; licence beside it in `shared/vendor/`), served by
/// the services themselves so `/docs` works offline and under a strict Content-Security-Policy.
const REDOC_JS: &[u8] = include_bytes!("../../vendor/redoc-2.1.5.standalone.js");
/// Where the bundle is served: versioned, so it can be cached for good.
const REDOC_PATH: &str = "/docs/redoc-2.1.5.standalone.js";

/// `GET /docs`: a Redoc page rendering the service's `/openapi.json`, with nothing loaded from elsewhere.
pub fn redoc_page(title: &str) -> axum::response::Html<String> {
    axum::response::Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><redoc spec-url="/openapi.json" hide-download-button></redoc>
<script src="{REDOC_PATH}"></script></body></html>"#
    ))
}

async fn redoc_js() -> Response {
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (axum::http::header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
    ];
    (headers, REDOC_JS).into_response()
}

/// `GET /openapi.json` (the document, built once) and `GET /docs` (Redoc) for a service.
pub fn openapi_routes<S: Clone + Send + Sync + 'static>(
    doc: utoipa::openapi::OpenApi,
    title: &'static str,
) -> Router<S> {
    let doc = std::sync::Arc::new(doc);
    Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .route("/docs", axum::routing::get(move || async move { redoc_page(title) }))
        .route(REDOC_PATH, axum::routing::get(redoc_js))
}
