//! [`GrpcClientLayer`]: a CLIENT span per outgoing gRPC call, wrapped around a
//! `tonic::transport::Channel` (or any tower service over `http::Request`). It injects the
//! trace context and forwards the request id in metadata, reads the status from headers or
//! trailers, classifies transport failures (`connection_refused`, `timeout`, ...) and records
//! `rpc.client.call.duration`.
//!
//! It honours the request extensions of `otel_core::extensions`: [`NoPropagation`] (no
//! `traceparent`, no request id), [`ResendCount`] (`http.request.resend_count` when above 0)
//! and [`SpanAttributes`] (extra attributes set by a retry or breaker layer above).
//!
//! ```no_run
//! use otel_grpc::GrpcClientLayer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Endpoint::from_static("http://inventory:50051").connect().await?;
//! let channel = tower::ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new().server_address("inventory", 50051))
//!     .service(channel);
//! let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
//! health.check(tonic_health::pb::HealthCheckRequest::default()).await?;
//! # Ok(()) }
//! ```
//!
//! [`NoPropagation`]: otel_core::extensions::NoPropagation
//! [`ResendCount`]: otel_core::extensions::ResendCount
//! [`SpanAttributes`]: otel_core::extensions::SpanAttributes

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use otel_core::attributes::REQUEST_ID;
use otel_core::extensions::{NoPropagation, ResendCount, SpanAttributes};
use otel_core::request_id::RequestId;
use otel_core::sampling::{self, Decision};
use pin_project::{pin_project, pinned_drop};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::body::ResponseBody;
use crate::call::{BoxError, Call, Config, Outcome, Scope, classify};
use crate::conventions::{
    ERROR_TYPE, GRPC, LEGACY_RPC_GRPC_STATUS_CODE, LEGACY_RPC_SERVICE, LEGACY_RPC_SYSTEM,
    RESEND_COUNT, RPC_METHOD, RPC_METHOD_ORIGINAL, RPC_RESPONSE_STATUS_CODE, RPC_SYSTEM_NAME,
    SERVER_ADDRESS, SERVER_PORT, SemconvMode,
};
use crate::method::{MAX_HOST_LEN, RpcMethod, truncate};
use crate::status::{Side, code_from_headers, code_from_http_status};

/// Tower layer that records every gRPC call a client makes. See the [module docs](self).
#[derive(Clone)]
pub struct GrpcClientLayer {
    config: Config,
    server: Option<(Arc<str>, u16)>,
}

impl Default for GrpcClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GrpcClientLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClientLayer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl GrpcClientLayer {
    /// A layer with the global propagator and meter provider, `x-request-id`, and the
    /// attribute generation chosen by `OTEL_SEMCONV_STABILITY_OPT_IN`.
    pub fn new() -> Self {
        GrpcClientLayer {
            config: Config::new(),
            server: None,
        }
    }

    /// The `server.address` and `server.port` of the channel. A tonic `Channel` adds the
    /// origin below this layer, so the request URI seen here has no authority; when it has
    /// one, that wins.
    pub fn server_address(mut self, host: impl Into<String>, port: u16) -> Self {
        self.server = Some((Arc::from(host.into()), port));
        self
    }

    shared_builder_methods!(
        propagator: "Injects the context with `propagator` instead of the global one.",
        metric: "Records `rpc.client.call.duration` with `provider` instead of the global one.",
        request_id: "Under which header (the first configured) and with which prefix the request id is forwarded (default `x-request-id`, no prefix)."
    );
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClient {
            inner,
            config: self.config.clone(),
            server: self.server.clone(),
        }
    }
}

/// The service made by [`GrpcClientLayer`].
#[derive(Clone)]
pub struct GrpcClient<S> {
    inner: S,
    config: Config,
    server: Option<(Arc<str>, u16)>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for GrpcClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcClient<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if !sampling::is_enabled() {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let start = Instant::now();
        let method = RpcMethod::from_path(req.uri().path());
        let mode = self.config.mode();
        let parent = otel_core::context::current();
        let propagate = req.extensions().get::<NoPropagation>().is_none();
        let request_id = RequestId::from_context(&parent).cloned();

        let (host, port): (Option<Arc<str>>, Option<u16>) = match req.uri().authority() {
            Some(authority) => (
                Some(Arc::from(truncate(authority.host(), MAX_HOST_LEN))),
                authority.port_u16().or(match req.uri().scheme_str() {
                    Some("https") => Some(443),
                    Some("http") => Some(80),
                    _ => None,
                }),
            ),
            None => match &self.server {
                Some((host, port)) => (Some(host.clone()), Some(*port)),
                None => (None, None),
            },
        };

        let scope = match sampling::decide(&parent, method.span_name(), SpanKind::Client) {
            Decision::Disabled => return ResponseFuture::passthrough(self.inner.call(req)),
            Decision::Unsampled(cx) => {
                if propagate {
                    self.config.inject(&cx, req.headers_mut());
                }
                Scope::Context(cx)
            }
            Decision::Sampled(cx) => {
                let span = tracing::info_span!(
                    target: "otel_grpc",
                    "grpc.client",
                    otel.name = method.span_name(),
                    otel.kind = "client",
                    otel.status_code = Empty,
                    { RPC_SYSTEM_NAME } = GRPC,
                    { RPC_METHOD } = method.full_name(),
                    { RPC_METHOD_ORIGINAL } = method.original(),
                    { SERVER_ADDRESS } = host.as_deref(),
                    { SERVER_PORT } = port.map(i64::from),
                    { RPC_RESPONSE_STATUS_CODE } = Empty,
                    { ERROR_TYPE } = Empty,
                    { REQUEST_ID } = request_id.as_ref().map(RequestId::as_str),
                    { RESEND_COUNT } = Empty,
                    { LEGACY_RPC_SYSTEM } = Empty,
                    { LEGACY_RPC_SERVICE } = Empty,
                    { LEGACY_RPC_GRPC_STATUS_CODE } = Empty,
                );
                if span.set_parent(cx.clone()).is_err() {
                    // The span is filtered out (or no OpenTelemetry layer is installed): go on as
                    // for an unsampled call, so the trace context and request id still flow.
                    if propagate {
                        self.config.inject(&cx, req.headers_mut());
                    }
                    Scope::Context(cx)
                } else {
                    if let Some(ResendCount(n)) = req.extensions().get::<ResendCount>()
                        && *n > 0
                    {
                        span.record(RESEND_COUNT, i64::from(*n));
                    }
                    SpanAttributes::take(req.extensions(), |kv| {
                        span.set_attribute(kv.key, kv.value)
                    });
                    if mode == SemconvMode::Duplicate {
                        span.record(LEGACY_RPC_SYSTEM, GRPC);
                        if let Some(service) = method.service() {
                            span.record(LEGACY_RPC_SERVICE, service);
                        }
                    }
                    if propagate {
                        self.config.inject(&span.context(), req.headers_mut());
                    }
                    Scope::Span(span)
                }
            }
        };
        if propagate && let Some(id) = &request_id {
            self.config.request_id.forward(id, req.headers_mut());
        }

        let mut metric_attributes = Vec::with_capacity(2);
        if let Some(host) = host {
            metric_attributes.push(KeyValue::new(SERVER_ADDRESS, host.to_string()));
            if let Some(port) = port {
                metric_attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
            }
        }
        let call = Call {
            side: Side::Client,
            scope,
            method,
            start,
            timeout: crate::grpc_timeout::from_headers(req.headers()),
            mode,
            histogram: self.config.histogram(Side::Client),
            metric_attributes,
            n_plus_one: None,
        };
        let inner = {
            let _entered = call.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            call: Some(call),
        }
    }
}

/// Response future of [`GrpcClient`].
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    call: Option<Call>,
}

impl<F> ResponseFuture<F> {
    fn passthrough(inner: F) -> Self {
        ResponseFuture { inner, call: None }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.call.as_ref().map(Call::enter);
            ready!(this.inner.poll(cx))
        };
        match result {
            Ok(response) => {
                let mut call = this.call.take();
                // A trailers-only response carries the status in its headers, and a non-200
                // answer without one came from something else than a gRPC server (a proxy):
                // either way the call ends here.
                if let Some(code) = code_from_headers(response.headers())
                    .or_else(|| code_from_http_status(response.status()))
                    && let Some(call) = call.take()
                {
                    call.finish(Outcome::Status(code));
                }
                Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, call))))
            }
            Err(err) => {
                let err: BoxError = err.into();
                if let Some(call) = this.call.take() {
                    call.finish(classify(err.as_ref()));
                }
                Poll::Ready(Err(err))
            }
        }
    }
}

#[pinned_drop]
impl<F> PinnedDrop for ResponseFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        // The caller gave up before the response headers arrived.
        if let Some(call) = self.project().call.take() {
            call.finish(Outcome::Dropped);
        }
    }
}
