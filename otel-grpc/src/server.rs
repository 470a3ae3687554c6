//! [`GrpcServerLayer`]: a SERVER span per gRPC call served by tonic (or any tower service
//! over `http::Request`), with the remote parent extracted from metadata, the request id,
//! the status read from headers or trailers, and `rpc.server.call.duration`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use otel_grpc::GrpcServerLayer;
//!
//! let (_reporter, health) = tonic_health::server::health_reporter();
//! tonic::transport::Server::builder()
//!     .layer(GrpcServerLayer::new())
//!     .add_service(health)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use opentelemetry::trace::SpanKind;
use otel_core::attributes::{REQUEST_ID, REQUEST_ID_REJECTED};
use otel_core::repeated_shape::{self, Scope as NPlusOneScope};
use otel_core::request_id::Outcome as IdOutcome;
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
    RPC_METHOD, RPC_METHOD_ORIGINAL, RPC_RESPONSE_STATUS_CODE, RPC_SYSTEM_NAME, SERVER_ADDRESS,
    SERVER_PORT, SemconvMode,
};
use crate::method::{MAX_HOST_LEN, RpcMethod, truncate};
use crate::status::{Side, code_from_headers, code_from_http_status};

/// Tower layer that records every gRPC call a server handles. See the [module docs](self).
#[derive(Clone)]
pub struct GrpcServerLayer {
    config: Config,
}

impl Default for GrpcServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GrpcServerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServerLayer").finish_non_exhaustive()
    }
}

impl GrpcServerLayer {
    /// A layer with the global propagator and meter provider, `x-request-id`, and the
    /// attribute generation chosen by `OTEL_SEMCONV_STABILITY_OPT_IN`.
    pub fn new() -> Self {
        GrpcServerLayer {
            config: Config::new(),
        }
    }

    shared_builder_methods!(
        propagator: "Extracts the parent context with `propagator` instead of the global one.",
        metric: "Records `rpc.server.call.duration` with `provider` instead of the global one.",
        request_id: "Which headers carry the request id (default `x-request-id`)."
    );
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServer {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`GrpcServerLayer`].
#[derive(Clone)]
pub struct GrpcServer<S> {
    inner: S,
    config: Config,
}

impl<S: std::fmt::Debug> std::fmt::Debug for GrpcServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcServer<S>
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
        let accepted = self.config.request_id.accept(req.headers());
        let parent = self.config.extract(req.headers());
        let mode = self.config.mode();

        let mut n_plus_one = None;
        // The request id goes into the context with the decision (for a sampled call, in the
        // same entry as the sampling marker).
        let scope = match sampling::decide_for_request(
            &parent,
            method.span_name(),
            SpanKind::Server,
            Some(accepted.id.clone()),
        ) {
            Decision::Disabled => return ResponseFuture::passthrough(self.inner.call(req)),
            Decision::Unsampled(cx) => {
                if repeated_shape::is_enabled() {
                    let scope = NPlusOneScope::new(tracing::Span::none())
                        .named(method.span_name().to_owned());
                    n_plus_one = Some(scope.clone());
                    Scope::Context(cx.with_value(scope))
                } else {
                    Scope::Context(cx)
                }
            }
            Decision::Sampled(cx) => {
                let span = tracing::info_span!(
                    target: "otel_grpc",
                    "grpc.server",
                    otel.name = method.span_name(),
                    otel.kind = "server",
                    otel.status_code = Empty,
                    { RPC_SYSTEM_NAME } = GRPC,
                    { RPC_METHOD } = method.full_name(),
                    { RPC_METHOD_ORIGINAL } = method.original(),
                    { SERVER_ADDRESS } = Empty,
                    { SERVER_PORT } = Empty,
                    { RPC_RESPONSE_STATUS_CODE } = Empty,
                    { ERROR_TYPE } = Empty,
                    { REQUEST_ID } = accepted.id.as_str(),
                    { REQUEST_ID_REJECTED } = Empty,
                    { LEGACY_RPC_SYSTEM } = Empty,
                    { LEGACY_RPC_SERVICE } = Empty,
                    { LEGACY_RPC_GRPC_STATUS_CODE } = Empty,
                );
                // Queries and calls made by the handler count in one N+1 scope, finished
                // (letting go of the span) when the call ends.
                let cx = if repeated_shape::is_enabled() {
                    let scope =
                        NPlusOneScope::new(span.clone()).named(method.span_name().to_owned());
                    n_plus_one = Some(scope.clone());
                    cx.with_value(scope)
                } else {
                    cx
                };
                if span.set_parent(cx.clone()).is_err() {
                    // The span is filtered out (or no OpenTelemetry layer is installed): go on as
                    // for an unsampled call, so the trace context and request id still flow.
                    Scope::Context(cx)
                } else {
                    if let Some(authority) = req.uri().authority() {
                        span.record(SERVER_ADDRESS, truncate(authority.host(), MAX_HOST_LEN));
                        if let Some(port) = authority.port_u16() {
                            span.record(SERVER_PORT, i64::from(port));
                        }
                    }
                    if accepted.outcome == IdOutcome::Rejected {
                        span.record(REQUEST_ID_REJECTED, true);
                    }
                    if mode == SemconvMode::Duplicate {
                        span.record(LEGACY_RPC_SYSTEM, GRPC);
                        if let Some(service) = method.service() {
                            span.record(LEGACY_RPC_SERVICE, service);
                        }
                    }
                    Scope::Span(span)
                }
            }
        };

        let call = Call {
            side: Side::Server,
            scope,
            method,
            start,
            timeout: crate::grpc_timeout::from_headers(req.headers()),
            mode,
            histogram: self.config.histogram(Side::Server),
            metric_attributes: Vec::new(),
            n_plus_one,
        };
        // Handlers read the accepted (or generated) id from the context; put it in the
        // request headers too, so code that reads metadata sees the same id.
        let id_header = self.config.request_id.primary_header().clone();
        // The incoming value when the id was accepted: its bytes are shared, not copied.
        let id_value = accepted.header_value();
        req.headers_mut()
            .insert(id_header.clone(), id_value.clone());
        let inner = {
            let _entered = call.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            call: Some(call),
            echo: Some((id_header, id_value)),
        }
    }
}

/// Response future of [`GrpcServer`].
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    call: Option<Call>,
    echo: Option<(HeaderName, HeaderValue)>,
}

impl<F> ResponseFuture<F> {
    fn passthrough(inner: F) -> Self {
        ResponseFuture {
            inner,
            call: None,
            echo: None,
        }
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
            Ok(mut response) => {
                if let Some((name, value)) = this.echo.take() {
                    response.headers_mut().entry(name).or_insert(value);
                }
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
                    let outcome = match classify(err.as_ref()) {
                        Outcome::Status(code) => Outcome::Status(code),
                        // tonic answers any other service error with a status derived from it;
                        // the handler never produced one.
                        _ => Outcome::Status(tonic::Code::Unknown),
                    };
                    call.finish(outcome);
                }
                Poll::Ready(Err(err))
            }
        }
    }
}

#[pinned_drop]
impl<F> PinnedDrop for ResponseFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        // Dropped before the handler answered: the client went away or the deadline fired.
        if let Some(call) = self.project().call.take() {
            call.finish(Outcome::Dropped);
        }
    }
}
