//! The server layers: one SERVER span per sampled request, HTTP server metrics, request ids.
//!
//! Two layers share one configuration ([`HttpServerLayerBuilder`]) and one request logic:
//!
//! - [`AxumServerLayer`] (feature `axum`), for axum `Router`s: `router.layer(..)` runs it after
//!   routing, which gives it axum's `MatchedPath` for the span name `GET /users/{id}`. It
//!   answers axum's own `axum::response::Response`, so axum has no body to box again: a request
//!   that is not traced gets the inner response back untouched. The layer to use with axum.
//! - [`HttpServerLayer`], for hyper and any tower service over `http::Request` (give it a
//!   [`route_extractor`](HttpServerLayerBuilder::route_extractor)). It answers
//!   `Response<ResponseBody<B>>` for any inner body `B`. On an axum router it works too, but
//!   axum boxes its [`ResponseBody`] even around a request it does not trace: one allocation
//!   more than `AxumServerLayer` on that path.
//!
//! Per request they extract the parent context with the configured propagator, accept or
//! generate the request id, then ask [`otel_core::sampling::decide_for_request`] *before*
//! building anything:
//!
//! - sampled: a SERVER `tracing` span (target `otel_http`) with the stable HTTP attributes,
//!   parented to the extracted context; it ends when the response body has been sent to the end
//!   ([`ResponseBody`]), or records `http.response.body.incomplete = true` when the body is
//!   dropped early;
//! - unsampled: no span; the handler runs with the non-recording context attached, so client
//!   layers still forward `traceparent` (flag `00`) and the request id;
//! - telemetry disabled, or a path the [`filter`](HttpServerLayerBuilder::filter) skips: the
//!   request passes straight through.
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

#[cfg(feature = "axum")]
mod axum_layer;
mod body;
mod future;
pub(crate) mod request_info;
mod route_cache;
mod tracked;

#[cfg(feature = "axum")]
pub use axum_layer::{AxumResponseFuture, AxumServerLayer, AxumServerService};
pub use body::ResponseBody;
pub use future::ResponseFuture;

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::{HeaderName, Request, Response};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::SpanKind;
use otel_core::attributes::{self, semconv::attribute as sc};
use otel_core::repeated_shape::{self, Scope};
use otel_core::request_id::{Accepted, Outcome, RequestIdConfig};
use otel_core::sampling::{self, Decision};
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::ServerMetrics;
use crate::redact::{self, QueryRedactor};
use future::ServerFuture;
use route_cache::RouteCache;
use tracked::Tracked;

/// Maps a request to its route template (`/users/{id}`), for servers without axum's
/// `MatchedPath`. Returning `None` names the span by method only.
pub type RouteExtractor = dyn Fn(&http::Uri, &http::Extensions) -> Option<String> + Send + Sync;

/// Decides per request path whether the request is traced (`false` skips health checks).
pub type RequestFilter = dyn Fn(&str) -> bool + Send + Sync;

/// Tower layer that traces HTTP server requests, for hyper and any tower service over
/// `http::Request`. Cheap to clone.
///
/// Its service answers `Response<ResponseBody<B>>` for any inner body `B`. On an axum
/// `Router` use [`AxumServerLayer`] (built by the same builder with
/// [`build_axum`](HttpServerLayerBuilder::build_axum)): it traces the same way, and a request
/// it does not trace costs no allocation, where axum boxes this layer's [`ResponseBody`].
///
/// ```
/// use std::convert::Infallible;
///
/// use tower::Layer;
///
/// // A hyper/tower service: no `MatchedPath`, so the route template comes from an extractor.
/// let service = otel_http::HttpServerLayer::builder()
///     .route_extractor(|uri, _extensions| {
///         uri.path().starts_with("/items/").then(|| "/items/{id}".to_owned())
///     })
///     .build()
///     .layer(tower::service_fn(|_req: http::Request<String>| async {
///         Ok::<_, Infallible>(http::Response::new(String::from("ok")))
///     }));
/// # drop(service);
/// ```
#[derive(Clone)]
pub struct HttpServerLayer {
    config: Arc<ServerConfig>,
}

impl HttpServerLayer {
    /// A layer with the defaults: global propagator and meter provider, `x-request-id`,
    /// no header capture, no `url.query`.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to configure the layer.
    pub fn builder() -> HttpServerLayerBuilder {
        HttpServerLayerBuilder::default()
    }
}

impl Default for HttpServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Builder of [`HttpServerLayer`].
#[derive(Default)]
pub struct HttpServerLayerBuilder {
    propagator: Option<Arc<dyn TextMapPropagator + Send + Sync>>,
    request_id: RequestIdConfig,
    metrics: Option<ServerMetrics>,
    request_headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
    capture_query: bool,
    query_redactor: QueryRedactor,
    route_extractor: Option<Arc<RouteExtractor>>,
    filter: Option<Arc<RequestFilter>>,
    trust_forwarded: bool,
    traceparent_in_response: bool,
}

impl HttpServerLayerBuilder {
    /// Extract the parent context with `propagator` instead of the global one.
    pub fn propagator(
        mut self,
        propagator: impl TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.propagator = Some(Arc::new(propagator));
        self
    }

    /// Request-id headers and generation (default: `x-request-id`, generated when missing).
    pub fn request_id(mut self, config: RequestIdConfig) -> Self {
        self.request_id = config;
        self
    }

    /// Record metrics with `provider` instead of the global meter provider.
    pub fn meter_provider<P: MeterProvider + ?Sized>(mut self, provider: &P) -> Self {
        self.metrics = Some(ServerMetrics::new(provider));
        self
    }

    /// Record these request headers as `http.request.header.<name>` (sensitive ones as
    /// `[REDACTED]`).
    pub fn capture_request_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.request_headers.extend(names);
        self
    }

    /// Record these response headers as `http.response.header.<name>` (sensitive ones as
    /// `[REDACTED]`).
    pub fn capture_response_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.response_headers.extend(names);
        self
    }

    /// Record `url.query` (redacted with the query redactor). Off by default.
    pub fn capture_query(mut self, enabled: bool) -> Self {
        self.capture_query = enabled;
        self
    }

    /// Which query keys are redacted (default [`QueryRedactor::default`]).
    pub fn query_redactor(mut self, redactor: QueryRedactor) -> Self {
        self.query_redactor = redactor;
        self
    }

    /// Route template for servers without axum's `MatchedPath` (hyper).
    pub fn route_extractor(
        mut self,
        extractor: impl Fn(&http::Uri, &http::Extensions) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.route_extractor = Some(Arc::new(extractor));
        self
    }

    /// Trace only requests whose path passes `filter` (e.g. skip `/health`).
    pub fn filter(mut self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Take `client.address` and `url.scheme` from `Forwarded` / `X-Forwarded-For` /
    /// `X-Forwarded-Proto`. Only when every request comes through a proxy you trust.
    pub fn trust_forwarded_headers(mut self, trusted: bool) -> Self {
        self.trust_forwarded = trusted;
        self
    }

    /// Inject the server span's context into the response headers (e.g. `traceparent`).
    pub fn traceparent_in_response(mut self, enabled: bool) -> Self {
        self.traceparent_in_response = enabled;
        self
    }

    /// Builds the layer.
    pub fn build(self) -> HttpServerLayer {
        HttpServerLayer {
            config: self.config(),
        }
    }

    /// Builds the axum layer: the same configuration and request logic, answering axum's own
    /// response type (see [`AxumServerLayer`]).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "alice" }))
    ///     .layer(
    ///         otel_http::HttpServerLayer::builder()
    ///             .filter(|path| path != "/health")
    ///             .build_axum(),
    ///     );
    /// # drop(app);
    /// ```
    #[cfg(feature = "axum")]
    pub fn build_axum(self) -> AxumServerLayer {
        AxumServerLayer::from_config(self.config())
    }

    fn config(self) -> Arc<ServerConfig> {
        let metrics = self
            .metrics
            .unwrap_or_else(|| ServerMetrics::new(&*opentelemetry::global::meter_provider()));
        Arc::new(ServerConfig {
            propagator: self.propagator,
            request_id: self.request_id,
            metrics,
            request_headers: self
                .request_headers
                .into_iter()
                .map(|n| (format!("http.request.header.{}", n.as_str()), n))
                .collect(),
            response_headers: self
                .response_headers
                .into_iter()
                .map(|n| (format!("http.response.header.{}", n.as_str()), n))
                .collect(),
            capture_query: self.capture_query,
            query_redactor: self.query_redactor,
            route_extractor: self.route_extractor,
            filter: self.filter,
            trust_forwarded: self.trust_forwarded,
            traceparent_in_response: self.traceparent_in_response,
            routes: RouteCache::default(),
        })
    }
}

impl fmt::Debug for HttpServerLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayerBuilder")
            .finish_non_exhaustive()
    }
}

/// The service produced by [`HttpServerLayer`].
#[derive(Clone)]
pub struct HttpServerService<S> {
    inner: S,
    config: Arc<ServerConfig>,
}

impl<S> fmt::Debug for HttpServerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerService").finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpServerService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        traced_call(&self.config, &mut self.inner, req)
    }
}

/// The request logic of every server service: decides whether and how `req` is traced, calls
/// `inner` (under the request's context) and returns the service's future `Fut` around the
/// inner one, with the request's state when it is traced. The services differ only in `Fut`,
/// that is in how the response body is handed on.
///
/// Inlined: each instance has a single caller, one service's `call`.
#[inline(always)]
fn traced_call<S, ReqB, Fut>(
    config: &Arc<ServerConfig>,
    inner: &mut S,
    mut req: Request<ReqB>,
) -> Fut
where
    S: Service<Request<ReqB>>,
    Fut: ServerFuture<S::Future>,
{
    if !sampling::is_enabled() || !config.filter.as_ref().is_none_or(|f| f(req.uri().path())) {
        return Fut::passthrough(inner.call(req));
    }
    let start = Instant::now();
    let parent = match &config.propagator {
        Some(p) => otel_core::propagation::extract_with(&**p, req.headers()),
        None => otel_core::propagation::extract(req.headers()),
    };
    let method_index = request_info::method_index(req.method());
    let method = request_info::METHODS[method_index];
    let (route, name) = config.route_and_name(&req, method_index);
    let accepted = config.request_id.accept_optional(req.headers());
    let scheme = request_info::scheme(&req, config.trust_forwarded);
    let version = request_info::protocol_version(req.version());

    // The request id goes into the context with the decision (for a sampled request, in
    // the same entry as the sampling marker).
    let id = accepted.as_ref().map(|a| a.id.clone());
    let (sampled, mut cx) =
        match sampling::decide_for_request(&parent, name.as_str(), SpanKind::Server, id) {
            Decision::Disabled => return Fut::passthrough(inner.call(req)),
            Decision::Sampled(cx) => (true, cx),
            Decision::Unsampled(cx) => (false, cx),
        };
    if let Some(a) = &accepted {
        req.extensions_mut().insert(a.id.clone());
    }
    let echo = accepted.as_ref().map(Accepted::header_value);
    let span = sampled.then(|| {
            // Everything known now goes into the span macro: each later `record` costs a
            // subscriber round trip.
            let server = request_info::server_address(&req);
            let client = request_info::client_address(&req, config.trust_forwarded);
            let user_agent = req
                .headers()
                .get(http::header::USER_AGENT)
                .map(|v| redact::header_value(&http::header::USER_AGENT, v));
            let query = config
                .capture_query
                .then(|| req.uri().query().map(|q| config.query_redactor.redact(q)))
                .flatten();
            tracing::info_span!(
                target: "otel_http",
                "HTTP request",
                otel.name = name.as_str(),
                otel.kind = "server",
                otel.status_code = Empty,
                { sc::HTTP_REQUEST_METHOD } = method,
                { sc::HTTP_REQUEST_METHOD_ORIGINAL } = request_info::method_original(method, req.method()),
                { sc::URL_PATH } = req.uri().path(),
                { sc::URL_SCHEME } = scheme,
                { sc::URL_QUERY } = query.as_deref(),
                { sc::HTTP_ROUTE } = route.as_deref(),
                { sc::SERVER_ADDRESS } = server.as_ref().map(|(host, _)| host.as_str()),
                { sc::SERVER_PORT } = server.as_ref().and_then(|(_, port)| port.map(i64::from)),
                { sc::CLIENT_ADDRESS } = client.as_deref(),
                { sc::USER_AGENT_ORIGINAL } = user_agent.as_deref(),
                { sc::NETWORK_PROTOCOL_VERSION } = version,
                { sc::HTTP_RESPONSE_STATUS_CODE } = Empty,
                { sc::ERROR_TYPE } = Empty,
                { attributes::REQUEST_ID } = accepted.as_ref().map(|a| a.id.as_str()),
                { attributes::REQUEST_ID_REJECTED } = accepted
                    .as_ref()
                    .and_then(|a| (a.outcome == Outcome::Rejected).then_some(true)),
                { attributes::HTTP_RESPONSE_BODY_INCOMPLETE } = Empty,
            )
    });
    let mut tracked = Box::new(Tracked::new(
        config.clone(),
        start,
        method_index,
        route,
        scheme,
        version,
        echo,
    ));
    if repeated_shape::is_enabled() {
        // Queries and calls made below this request count in one N+1 scope; the scope is
        // finished (and lets go of the span) when the request ends.
        let scope_span = span.clone().unwrap_or_else(tracing::Span::none);
        let scope = Scope::new(scope_span).named(name.to_owned_name());
        cx = cx.with_value(scope.clone());
        tracked.scope = Some(scope);
    }
    if let Some(span) = &span {
        record_headers(span, &config.request_headers, req.headers());
    }
    // An unsampled request has no span to carry its context; neither has a sampled one
    // whose span is filtered out or has no OpenTelemetry layer: the context is attached
    // instead, so the request id and the trace still reach downstream calls.
    if span
        .as_ref()
        .is_none_or(|span| span.is_disabled() || span.set_parent(cx.clone()).is_err())
    {
        tracked.cx = Some(cx);
    }
    // The span is entered while the response future is polled (where handlers run), not
    // around `call`, which for axum and hyper only builds the future.
    let future = match &tracked.cx {
        Some(cx) => {
            let _attached = cx.clone().attach();
            inner.call(req)
        }
        None => inner.call(req),
    };
    tracked.span = span;
    tracked.start_active();
    Fut::tracked(future, tracked)
}

/// Configuration shared by every request of one layer.
pub(crate) struct ServerConfig {
    pub(crate) propagator: Option<Arc<dyn TextMapPropagator + Send + Sync>>,
    pub(crate) request_id: RequestIdConfig,
    pub(crate) metrics: ServerMetrics,
    pub(crate) request_headers: Vec<(String, HeaderName)>,
    pub(crate) response_headers: Vec<(String, HeaderName)>,
    pub(crate) capture_query: bool,
    pub(crate) query_redactor: QueryRedactor,
    pub(crate) route_extractor: Option<Arc<RouteExtractor>>,
    pub(crate) filter: Option<Arc<RequestFilter>>,
    pub(crate) trust_forwarded: bool,
    pub(crate) traceparent_in_response: bool,
    /// Route templates and span names, shared by the requests.
    pub(crate) routes: RouteCache,
}

impl ServerConfig {
    /// The request's route template and span name, shared from the route cache when possible.
    fn route_and_name<B>(
        &self,
        req: &Request<B>,
        method: usize,
    ) -> (Option<Arc<str>>, request_info::SpanName) {
        #[cfg(feature = "axum")]
        if let Some(path) = req.extensions().get::<axum::extract::MatchedPath>() {
            return self.named(method, path.as_str());
        }
        match self
            .route_extractor
            .as_ref()
            .and_then(|f| f(req.uri(), req.extensions()))
        {
            Some(route) => self.named(method, &route),
            None => (
                None,
                request_info::span_name(request_info::METHODS[method], None),
            ),
        }
    }

    fn named(&self, method: usize, route: &str) -> (Option<Arc<str>>, request_info::SpanName) {
        match self.routes.get(method, route) {
            Some((route, name)) => (Some(route), request_info::SpanName::Shared(name)),
            // The cache is full: build both for this request.
            None => (
                Some(Arc::from(route)),
                request_info::span_name(request_info::METHODS[method], Some(route)),
            ),
        }
    }
}

/// Records captured headers as string-array attributes, sensitive ones redacted.
pub(crate) fn record_headers(
    span: &tracing::Span,
    captured: &[(String, HeaderName)],
    headers: &http::HeaderMap,
) {
    for (key, name) in captured {
        let values: Vec<opentelemetry::StringValue> = headers
            .get_all(name)
            .iter()
            .take(16)
            .map(|v| redact::header_value(name, v).into())
            .collect();
        if !values.is_empty() {
            span.set_attribute(
                key.clone(),
                opentelemetry::Value::Array(opentelemetry::Array::String(values)),
            );
        }
    }
}
