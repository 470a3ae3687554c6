//! reqwest-middleware 0.5 adapters (feature `reqwest`) with the same policies and telemetry
//! as the tower layers: [`RetryMiddleware`] and [`CircuitBreakerMiddleware`]. Put the retry
//! middleware before the breaker, and both before the tracing middleware, so that each
//! attempt is its own client span.
//!
//! `ResendCount` and `SpanAttributes` are set in the middleware `Extensions`, where the
//! tracing middleware below reads them. A request whose body cannot be cloned (a stream) is
//! sent once. The retry span is opened lazily, as with [`RetryLayer`]: a call whose first
//! attempt succeeds has none.
//!
//! ```
//! use otel_resilience::{CircuitBreakerMiddleware, RetryMiddleware};
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(RetryMiddleware::default())
//!     .with(CircuitBreakerMiddleware::default())
//!     // .with(otel_http::reqwest::TracingMiddleware::default())
//!     .build();
//! # let _ = client;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Extensions;
use otel_core::extensions::ResendCount;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};
use tracing::Instrument;

use crate::breaker_layer::{
    BreakerShared, DeferRejections, push_span_attributes, record_deferred_rejection, reject,
};
use crate::breaker_registry::CircuitBreakerRegistry;
use crate::circuit_breaker::CircuitBreaker;
use crate::retry_layer::{RetryBudgetExhausted, RetryLayer, RetryShared};
use crate::retry_policy::Failure;

/// Retries through reqwest-middleware with a [`RetryLayer`]'s policy, budget and metrics.
#[derive(Debug, Clone)]
pub struct RetryMiddleware {
    shared: Arc<RetryShared>,
}

/// Guards calls with per-authority circuit breakers.
#[derive(Debug, Clone)]
pub struct CircuitBreakerMiddleware {
    shared: Arc<BreakerShared>,
}

impl RetryMiddleware {
    /// The middleware of `layer` (build it with [`RetryLayer::builder`]).
    pub fn new(layer: RetryLayer) -> Self {
        RetryMiddleware {
            shared: layer.shared().clone(),
        }
    }
}

impl Default for RetryMiddleware {
    fn default() -> Self {
        Self::new(RetryLayer::new())
    }
}

impl From<RetryLayer> for RetryMiddleware {
    fn from(layer: RetryLayer) -> Self {
        Self::new(layer)
    }
}

impl CircuitBreakerMiddleware {
    /// Breakers from `registry`, one per authority.
    pub fn new(registry: Arc<CircuitBreakerRegistry>) -> Self {
        CircuitBreakerMiddleware {
            shared: Arc::new(BreakerShared {
                registry,
                fixed: None,
                classifier: Default::default(),
                // reqwest-middleware runs the chain as async code (a middleware may await before
                // it calls the next one), so the attributes travel in the extensions; their cost
                // is small next to a network call.
                attributes_in_extensions: true,
                cache: Default::default(),
            }),
        }
    }

    /// The same breakers as a tower [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
    pub fn from_layer(layer: &crate::CircuitBreakerLayer) -> Self {
        Self::new(layer.registry().clone())
    }
}

impl Default for CircuitBreakerMiddleware {
    fn default() -> Self {
        Self::new(CircuitBreakerRegistry::builder().build())
    }
}

#[async_trait::async_trait]
impl Middleware for RetryMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let shared = &self.shared;
        let mut call = shared.start(req.method());
        let mut current = req;
        // Each attempt starts from the caller's extensions: what the layers below pushed
        // for one attempt (breaker attributes) must not leak into the next.
        let base = extensions.clone();
        loop {
            let spare = current.try_clone();
            call.attempts += 1;
            shared.count_attempt(call.attempts);
            if call.attempts > 1 {
                *extensions = base.clone();
                extensions.insert(ResendCount(call.attempts - 1));
            }
            let attempt = RejectionsDeferred {
                inner: next.clone().run(current, extensions),
            };
            // The logical-call span exists once an attempt failed (see `RetryLayer`).
            let result = match call.span().cloned() {
                Some(span) => attempt.instrument(span).await,
                None => attempt.await,
            };
            let failure = match &result {
                Ok(resp) => {
                    shared
                        .policy
                        .classify_response_with(resp.status(), resp.headers(), || {
                            shared.clock.system_now()
                        })
                }
                Err(reqwest_middleware::Error::Reqwest(e)) => Some(Failure::from_error(e)),
                Err(reqwest_middleware::Error::Middleware(e)) => {
                    Some(Failure::from_error(e.as_ref()))
                }
            };
            let Some(failure) = failure else {
                shared.record_success();
                call.finish_ok();
                return result;
            };
            let delay = {
                let _entered = call.open_span(shared);
                if let Err(reqwest_middleware::Error::Middleware(e)) = &result {
                    record_deferred_rejection(e.as_ref());
                }
                shared.on_failure(&mut call, &failure, spare.is_some())
            };
            match delay {
                Some(delay) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    current = spare.expect("replayable checked by on_failure");
                }
                None => {
                    if !call.budget_exhausted() {
                        return result;
                    }
                    return result.map_err(|e| {
                        let attempts = call.attempts;
                        let source: tower::BoxError = match e {
                            reqwest_middleware::Error::Reqwest(e) => Box::new(e),
                            reqwest_middleware::Error::Middleware(e) => e.into(),
                        };
                        reqwest_middleware::Error::Middleware(
                            RetryBudgetExhausted { attempts, source }.into(),
                        )
                    });
                }
            }
        }
    }
}

/// One attempt through the rest of the chain, with the breakers below leaving their
/// rejection spans to the retry middleware (see `breaker_layer::DeferRejections`).
#[pin_project::pin_project]
struct RejectionsDeferred<F> {
    #[pin]
    inner: F,
}

impl<F: Future> Future for RejectionsDeferred<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        let _defer = DeferRejections::enter();
        inner.poll(cx)
    }
}

#[async_trait::async_trait]
impl Middleware for CircuitBreakerMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let breaker: Arc<CircuitBreaker> = match &self.shared.fixed {
            Some(b) => b.clone(),
            None => {
                let url = req.url();
                let key = match (url.host_str(), url.port_or_known_default()) {
                    (Some(host), Some(port)) => format!("{host}:{port}"),
                    (Some(host), None) => host.to_owned(),
                    _ => crate::breaker_registry::DEFAULT_BREAKER_KEY.to_owned(),
                };
                self.shared.registry.get(&key)
            }
        };
        let permit = match breaker.admit() {
            Ok(p) => p,
            Err(open) => return Err(reqwest_middleware::Error::Middleware(reject(open).into())),
        };
        push_span_attributes(&breaker, extensions);
        let result = next.run(req, extensions).await;
        let success = match &result {
            Ok(resp) => self
                .shared
                .classifier
                .get()
                .is_success(resp.status(), resp.headers()),
            Err(_) => false,
        };
        permit.record(success);
        result
    }
}
