//! # otel-resilience
//!
//! Retry with backoff, jitter, `Retry-After` and a retry budget; circuit breakers per
//! downstream; both visible on every span. The policies are plain Rust state machines with an
//! injected [`clock`] and [`random`] source ([`retry_policy`], [`backoff`], [`budget`],
//! [`circuit_breaker`]); the tower layers ([`RetryLayer`], [`CircuitBreakerLayer`]) and the
//! reqwest-middleware middlewares (feature `reqwest`) are thin adapters over them.
//!
//! Recommended order, outermost first: **deadline → retry (with budget) → breaker →
//! per-attempt timeout → tracing client layer**, so that each attempt is its own client span,
//! the breaker sees every attempt, and a rejection is never retried.
//!
//! ```
//! use std::time::Duration;
//! use otel_resilience::{CircuitBreakerLayer, RetryLayer};
//!
//! let client = tower::ServiceBuilder::new()
//!     .timeout(Duration::from_secs(10))             // deadline of the logical call
//!     .layer(RetryLayer::new())                     // retry, budget on
//!     .layer(CircuitBreakerLayer::new())            // one breaker per authority
//!     .timeout(Duration::from_secs(2))              // per attempt
//!     // .layer(otel_http::client::ClientLayer::new()) // the client span of each attempt
//!     .service_fn(|_req: http::Request<http_body_util::Full<bytes::Bytes>>| async {
//!         Ok::<_, std::io::Error>(http::Response::new(()))
//!     });
//! # let _ = client;
//! ```
#![warn(missing_docs)]

pub mod backoff;
pub mod breaker_layer;
pub mod breaker_registry;
pub mod budget;
pub mod circuit_breaker;
pub mod clock;
pub mod config_error;
pub mod metrics;
pub mod random;
pub mod replay_body;
#[cfg(feature = "reqwest")]
pub mod reqwest_middleware;
pub mod retry_layer;
pub mod retry_policy;

pub use backoff::{Backoff, Jitter};
pub use breaker_layer::{CircuitBreakerLayer, CircuitBreakerService};
pub use breaker_registry::CircuitBreakerRegistry;
pub use budget::RetryBudget;
pub use circuit_breaker::{
    BreakerMode, BreakerState, CircuitBreaker, CircuitBreakerConfig, CircuitOpen,
};
pub use clock::{Clock, ManualClock, TokioClock};
pub use config_error::ConfigError;
#[cfg(feature = "reqwest")]
pub use reqwest_middleware::{CircuitBreakerMiddleware, RetryMiddleware};
pub use retry_layer::{RetryBudgetExhausted, RetryLayer, RetryService};
pub use retry_policy::RetryPolicy;

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
