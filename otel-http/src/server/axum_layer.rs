//! The server layer for axum routers: [`HttpServerLayer`](super::HttpServerLayer)'s
//! configuration and request logic, answering axum's own response type.
//!
//! ```
//! use axum::{Router, routing::get};
//! use otel_http::AxumServerLayer;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "alice" }))
//!     .layer(AxumServerLayer::new());
//! # drop(app);
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use axum::response::Response;
use http::Request;
use pin_project::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{ResponseBody, WrapBody};
use super::future::{ServerFuture, Traced};
use super::tracked::Tracked;
use super::{HttpServerLayerBuilder, ServerConfig, traced_call};

/// Tower layer that traces the requests of an axum [`Router`](axum::Router), answering axum's
/// own `axum::response::Response`. Cheap to clone.
///
/// The layer to use on an axum router. It traces exactly as
/// [`HttpServerLayer`](super::HttpServerLayer) does (same configuration, same request logic,
/// same spans, metrics and request ids) and costs less when it does not trace: `Router::layer`
/// turns whatever a layer answers into `axum::response::Response`, boxing every body that is
/// not already an `axum::body::Body`, so the generic layer's [`ResponseBody`] is boxed even
/// around a request it passes through (SDK disabled, path skipped by the
/// [`filter`](HttpServerLayerBuilder::filter)). This layer hands such a request's response on
/// untouched, and wraps a traced one's body once, in the box axum would have made anyway.
///
/// Configure it with the same builder,
/// [`HttpServerLayer::builder()`](super::HttpServerLayer::builder) then
/// [`build_axum()`](HttpServerLayerBuilder::build_axum). Its service needs an inner service
/// that answers `axum::response::Response`, as axum's routes and `Router` itself do; for other
/// services (hyper, tower) use `HttpServerLayer`.
///
/// ```
/// use axum::{Router, routing::get};
/// use otel_http::{AxumServerLayer, HttpServerLayer};
///
/// let traced: Router = Router::new()
///     .route("/users/{id}", get(|| async { "alice" }))
///     // After routing: the span is named `GET /users/{id}`.
///     .layer(AxumServerLayer::new());
///
/// let configured: Router = Router::new()
///     .route("/users/{id}", get(|| async { "alice" }))
///     .route("/health", get(|| async { "ok" }))
///     .layer(
///         HttpServerLayer::builder()
///             .filter(|path| path != "/health")
///             .traceparent_in_response(true)
///             .build_axum(),
///     );
/// # drop((traced, configured));
/// ```
#[derive(Clone)]
pub struct AxumServerLayer {
    config: Arc<ServerConfig>,
}

impl AxumServerLayer {
    /// A layer with the defaults of [`HttpServerLayer::new`](super::HttpServerLayer::new):
    /// global propagator and meter provider, `x-request-id`, no header capture, no
    /// `url.query`.
    pub fn new() -> Self {
        HttpServerLayerBuilder::default().build_axum()
    }

    pub(super) fn from_config(config: Arc<ServerConfig>) -> Self {
        AxumServerLayer { config }
    }
}

impl Default for AxumServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AxumServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AxumServerLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AxumServerLayer {
    type Service = AxumServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AxumServerService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service produced by [`AxumServerLayer`]: traces the requests of an inner service that
/// answers `axum::response::Response`, and answers the same type.
#[derive(Clone)]
pub struct AxumServerService<S> {
    inner: S,
    config: Arc<ServerConfig>,
}

impl<S> fmt::Debug for AxumServerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AxumServerService").finish_non_exhaustive()
    }
}

impl<S, ReqB> Service<Request<ReqB>> for AxumServerService<S>
where
    S: Service<Request<ReqB>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AxumResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        traced_call(&self.config, &mut self.inner, req)
    }
}

/// Response future of [`AxumServerService`]: the same as
/// [`ResponseFuture`](super::ResponseFuture) (the handler runs inside the server span or with
/// the request's context attached; a panic is recorded and re-raised), answering
/// `axum::response::Response`. A traced request's body is wrapped in
/// [`ResponseBody`] inside `axum::body::Body`; any other response is the inner one, untouched.
#[pin_project]
pub struct AxumResponseFuture<F> {
    #[pin]
    inner: Traced<F, InAxumBody>,
}

impl<F> ServerFuture<F> for AxumResponseFuture<F> {
    #[inline(always)]
    fn passthrough(inner: F) -> Self {
        AxumResponseFuture {
            inner: Traced::passthrough(inner),
        }
    }

    #[inline(always)]
    fn tracked(inner: F, tracked: Box<Tracked>) -> Self {
        AxumResponseFuture {
            inner: Traced::tracked(inner, tracked),
        }
    }
}

impl<F> fmt::Debug for AxumResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AxumResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for AxumResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

/// axum's own body on every path: untouched when the request is not traced, the one box
/// `Body::new` makes around [`ResponseBody`] when it is.
pub(crate) enum InAxumBody {}

impl WrapBody<Body> for InAxumBody {
    type Body = Body;

    fn passthrough(response: Response) -> Response {
        response
    }

    fn tracked(response: Response, tracked: Box<Tracked>) -> Response {
        response.map(|body| Body::new(ResponseBody::tracked(body, tracked)))
    }
}
