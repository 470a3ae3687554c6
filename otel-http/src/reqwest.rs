//! [`TracingMiddleware`] for reqwest-middleware (feature `reqwest`).
//!
//! The same CLIENT span, propagation, request-id forwarding, curl event and
//! `http.client.request.duration` as [`HttpClientLayer`](crate::HttpClientLayer). The request
//! extensions it reads ([`UrlTemplate`](otel_core::extensions::UrlTemplate),
//! [`ResendCount`](otel_core::extensions::ResendCount),
//! [`NoPropagation`](otel_core::extensions::NoPropagation),
//! [`SpanAttributes`](otel_core::extensions::SpanAttributes)) are reqwest-middleware's
//! per-request extensions (`RequestBuilder::with_extension`).
//!
//! ```
//! use otel_http::reqwest::TracingMiddleware;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(TracingMiddleware::new())
//!     .build();
//! # drop(client);
//! ```

use std::fmt;
use std::sync::Arc;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};
use tracing::Instrument;

use crate::client::ClientBuilder;
use crate::client::call::{ClientCall, ClientConfig, RequestHead};
use crate::error_class;
use otel_core::attributes::error_type;

/// reqwest-middleware middleware that traces each request. Cheap to clone.
#[derive(Clone)]
pub struct TracingMiddleware {
    config: Arc<ClientConfig>,
}

impl TracingMiddleware {
    /// The middleware with defaults (global propagator and meter provider, `x-request-id`).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to configure the middleware.
    pub fn builder() -> ClientBuilder<TracingMiddleware> {
        ClientBuilder::default()
    }
}

impl Default for TracingMiddleware {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TracingMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingMiddleware").finish_non_exhaustive()
    }
}

impl ClientBuilder<TracingMiddleware> {
    /// Builds the middleware.
    pub fn build(self) -> TracingMiddleware {
        TracingMiddleware {
            config: self.into_config(),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let url = req.url().clone();
        let method = req.method().clone();
        let mut headers = std::mem::take(req.headers_mut());
        let call = ClientCall::start(
            &self.config,
            RequestHead {
                method: &method,
                scheme: Some(url.scheme()),
                host: url.host_str(),
                port: url.port(),
                path: url.path(),
                query: url.query(),
            },
            &mut headers,
            extensions,
            req.body().and_then(reqwest::Body::as_bytes),
        );
        *req.headers_mut() = headers;
        let span = call.span().cloned().unwrap_or_else(tracing::Span::none);
        let result = next.run(req, extensions).instrument(span).await;
        match &result {
            Ok(response) => call.finish_response(response.status().as_u16()),
            Err(error) => call.finish_error(classify(error)),
        }
        result
    }
}

/// reqwest's own predicates first, then the generic source-chain walk.
fn classify(error: &reqwest_middleware::Error) -> &'static str {
    if let reqwest_middleware::Error::Reqwest(e) = error {
        if e.is_timeout() {
            return error_type::TIMEOUT;
        }
        if e.is_dns() {
            return error_type::DNS;
        }
        let class = error_class::classify(e);
        if class == error_type::OTHER && e.is_connect() {
            return error_type::CONNECTION_REFUSED;
        }
        return class;
    }
    error_class::classify(error)
}
