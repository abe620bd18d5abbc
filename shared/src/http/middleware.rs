//! Two layers of the standard stack, made cheap for the requests that do not need them: compression only
//! when the client accepts an encoding, and a request timeout without a timer per request.
//!
//! Why: on the query API's cached post read (`bench/`, 2 cores) tower-http's compression wrapper cost
//! ~6 µs a request even when the client accepts no encoding, and its timeout ~5 µs (a timer registered
//! and cancelled per request) — together a quarter of the read.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::{Either, FutureExt, Map};
use tower::{Layer, Service};
use tower_http::compression::{Compression, CompressionBody};

/// tower-http's compression for requests that accept an encoding; the others skip it.
#[derive(Clone, Copy, Default)]
pub struct CompressWhenAcceptedLayer;

impl<S> Layer<S> for CompressWhenAcceptedLayer {
    type Service = CompressWhenAccepted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CompressWhenAccepted { compressing: Compression::new(inner) }
    }
}

/// One inner service (axum clones the whole stack per request): called through the compression
/// wrapper, or directly past it.
#[derive(Clone)]
pub struct CompressWhenAccepted<S> {
    compressing: Compression<S>,
}

type Compressed = Result<Response<CompressionBody<Body>>, Infallible>;
type Boxing = fn(Compressed) -> Result<Response, Infallible>;

fn boxed(res: Compressed) -> Result<Response, Infallible> {
    res.map(|r| r.map(Body::new))
}

impl<S> Service<Request> for CompressWhenAccepted<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Map<<Compression<S> as Service<Request>>::Future, Boxing>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.compressing.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.headers().contains_key(header::ACCEPT_ENCODING) {
            Either::Right(self.compressing.call(req).map(boxed as Boxing))
        } else {
            Either::Left(self.compressing.get_mut().call(req))
        }
    }
}

/// Answers 503 when a request takes longer than the limit. The timer is armed only when the request
/// first has to wait (a cache hit answers on its first poll and never touches the timer wheel); the
/// limit counts from then, microseconds after the request arrived.
#[derive(Clone, Copy)]
pub struct LazyTimeoutLayer {
    limit: Duration,
}

impl LazyTimeoutLayer {
    pub fn new(limit: Duration) -> Self {
        LazyTimeoutLayer { limit }
    }
}

impl<S> Layer<S> for LazyTimeoutLayer {
    type Service = LazyTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LazyTimeout { inner, limit: self.limit }
    }
}

#[derive(Clone)]
pub struct LazyTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for LazyTimeout<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = LazyTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        LazyTimeoutFuture { inner: self.inner.call(req), sleep: None, limit: self.limit }
    }
}

pin_project_lite::pin_project! {
    pub struct LazyTimeoutFuture<F> {
        #[pin]
        inner: F,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        limit: Duration,
    }
}

impl<F> Future for LazyTimeoutFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res);
        }
        let limit = *this.limit;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(StatusCode::SERVICE_UNAVAILABLE.into_response())),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> axum::Router {
        axum::Router::new()
            .route("/fast", get(|| async { "x".repeat(4096) }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "late"
                }),
            )
            .layer(
                tower::ServiceBuilder::new()
                    .layer(LazyTimeoutLayer::new(Duration::from_millis(50)))
                    .layer(CompressWhenAcceptedLayer),
            )
    }

    async fn get_path(path: &str, encoding: Option<&str>) -> Response {
        let mut req = axum::http::Request::get(path);
        if let Some(e) = encoding {
            req = req.header(header::ACCEPT_ENCODING, e);
        }
        app().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn a_request_that_outlives_the_limit_is_answered_503_and_a_quick_one_normally() {
        let slow = get_path("/slow", None).await;
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        let fast = get_path("/fast", None).await;
        assert_eq!(fast.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn responses_are_gzipped_only_for_clients_that_accept_it() {
        let plain = get_path("/fast", None).await;
        assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
        let body = axum::body::to_bytes(plain.into_body(), usize::MAX).await.unwrap();
        assert_eq!(body.len(), 4096);
        let gzipped = get_path("/fast", Some("gzip")).await;
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
        let body = axum::body::to_bytes(gzipped.into_body(), usize::MAX).await.unwrap();
        assert!(body.len() < 4096, "compressed: {} bytes", body.len());
    }
}
