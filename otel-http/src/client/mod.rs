//! Client side: [`HttpClientLayer`] for tower HTTP clients (hyper-util's legacy `Client`),
//! and the configuration shared with [`reqwest::TracingMiddleware`](crate::reqwest).
//!
//! Each call gets a CLIENT span `{method}` (or `{method} {url.template}` when the request
//! carries a [`UrlTemplate`](otel_core::extensions::UrlTemplate)), with `url.full` redacted,
//! is timed in `http.client.request.duration`, and carries the current context (injected with
//! the configured propagator) and request id, unless the request has
//! [`NoPropagation`](otel_core::extensions::NoPropagation). Under an unsampled parent no span
//! is built; the parent context is forwarded as is (flag `00`).
//!
//! ```
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use otel_http::HttpClientLayer;
//! use tower::ServiceBuilder;
//!
//! let client = Client::builder(TokioExecutor::new())
//!     .build_http::<http_body_util::Empty<bytes::Bytes>>();
//! let client = ServiceBuilder::new().layer(HttpClientLayer::new()).service(client);
//! # drop(client);
//! ```

pub(crate) mod call;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::propagation::TextMapPropagator;
use otel_core::request_id::RequestIdConfig;
use pin_project::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::curl::DEFAULT_BODY_LIMIT;
use crate::metrics::ClientMetrics;
use crate::redact::QueryRedactor;
use call::{ClientCall, ClientConfig, RequestHead};

/// Builder shared by [`HttpClientLayer`] and the reqwest `TracingMiddleware`; `T` is what
/// [`build`](ClientBuilder::build) returns.
pub struct ClientBuilder<T> {
    propagator: Option<Arc<dyn TextMapPropagator + Send + Sync>>,
    request_id: RequestIdConfig,
    metrics: Option<ClientMetrics>,
    query_redactor: QueryRedactor,
    curl: bool,
    curl_body_limit: usize,
    _target: PhantomData<fn() -> T>,
}

impl<T> Default for ClientBuilder<T> {
    fn default() -> Self {
        ClientBuilder {
            propagator: None,
            request_id: RequestIdConfig::default(),
            metrics: None,
            query_redactor: QueryRedactor::default(),
            curl: cfg!(debug_assertions),
            curl_body_limit: DEFAULT_BODY_LIMIT,
            _target: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ClientBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder").finish_non_exhaustive()
    }
}

impl<T> ClientBuilder<T> {
    /// Inject the context with `propagator` instead of the global one.
    pub fn propagator(
        mut self,
        propagator: impl TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.propagator = Some(Arc::new(propagator));
        self
    }

    /// Header name and prefix under which the request id is forwarded.
    pub fn request_id(mut self, config: RequestIdConfig) -> Self {
        self.request_id = config;
        self
    }

    /// Record `http.client.request.duration` with `provider` instead of the global one.
    pub fn meter_provider<P: MeterProvider + ?Sized>(mut self, provider: &P) -> Self {
        self.metrics = Some(ClientMetrics::new(provider));
        self
    }

    /// Which query keys are redacted in `url.full` and the curl event.
    pub fn query_redactor(mut self, redactor: QueryRedactor) -> Self {
        self.query_redactor = redactor;
        self
    }

    /// Add the `http.request.curl` span event (default: on in debug builds, off in release).
    pub fn curl_event(mut self, enabled: bool) -> Self {
        self.curl = enabled;
        self
    }

    /// Largest request body shown in the curl event, in bytes (default 1024).
    pub fn curl_body_limit(mut self, bytes: usize) -> Self {
        self.curl_body_limit = bytes;
        self
    }

    pub(crate) fn into_config(self) -> Arc<ClientConfig> {
        Arc::new(ClientConfig {
            propagator: self.propagator,
            request_id: self.request_id,
            metrics: self
                .metrics
                .unwrap_or_else(|| ClientMetrics::new(&*opentelemetry::global::meter_provider())),
            query_redactor: self.query_redactor,
            curl: self.curl,
            curl_body_limit: self.curl_body_limit,
        })
    }
}

impl ClientBuilder<HttpClientLayer> {
    /// Builds the layer.
    pub fn build(self) -> HttpClientLayer {
        HttpClientLayer {
            config: self.into_config(),
        }
    }
}

/// Tower layer that traces outgoing HTTP requests. Cheap to clone.
#[derive(Clone)]
pub struct HttpClientLayer {
    config: Arc<ClientConfig>,
}

impl HttpClientLayer {
    /// A layer with the defaults (global propagator and meter provider, `x-request-id`).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to configure the layer.
    pub fn builder() -> ClientBuilder<HttpClientLayer> {
        ClientBuilder::default()
    }
}

impl Default for HttpClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for HttpClientLayer {
    type Service = HttpClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClientService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service produced by [`HttpClientLayer`].
#[derive(Clone)]
pub struct HttpClientService<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S> fmt::Debug for HttpClientService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientService").finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpClientService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: std::error::Error + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let head = RequestHead {
            method: &parts.method,
            scheme: parts.uri.scheme_str(),
            host: parts.uri.host(),
            port: parts.uri.port_u16(),
            path: parts.uri.path(),
            query: parts.uri.query(),
        };
        // The body type is generic here: the curl event shows no body for tower clients.
        let call = ClientCall::start(
            &self.config,
            head,
            &mut parts.headers,
            &parts.extensions,
            None,
        );
        let req = Request::from_parts(parts, body);
        let inner = match call.span() {
            Some(span) => {
                let _entered = span.enter();
                self.inner.call(req)
            }
            None => self.inner.call(req),
        };
        ClientResponseFuture {
            inner,
            call: Some(call),
        }
    }
}

/// Future of a traced outgoing call; ends the CLIENT span at the response head.
#[pin_project]
pub struct ClientResponseFuture<F> {
    #[pin]
    inner: F,
    call: Option<ClientCall>,
}

impl<F> fmt::Debug for ClientResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: std::error::Error + 'static,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _entered = this
                .call
                .as_ref()
                .and_then(ClientCall::span)
                .map(tracing::Span::enter);
            this.inner.poll(cx)
        };
        if let Poll::Ready(result) = &polled
            && let Some(call) = this.call.take()
        {
            match result {
                Ok(response) => call.finish_response(response.status().as_u16()),
                Err(error) => call.finish_error(crate::error_class::classify(error)),
            }
        }
        polled
    }
}
