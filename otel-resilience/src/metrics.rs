//! The metric instruments of the retry and breaker adapters. Names are ours (no semantic
//! convention covers them), attributes come from `otel_core::attributes`:
//!
//! | metric | kind | attributes |
//! |---|---|---|
//! | `retry.attempts` | counter `{attempt}` | `retry.attempt` (1-based attempt number) |
//! | `retry.budget.rejections` | counter `{retry}` | — |
//! | `circuit_breaker.state` | gauge (0 closed, 1 open, 2 half_open) | `circuit_breaker.name` |
//! | `circuit_breaker.transitions` | counter `{transition}` | `circuit_breaker.name`, `circuit_breaker.state` (new state) |
//! | `circuit_breaker.rejections` | counter `{call}` | `circuit_breaker.name` |
//!
//! ```
//! let metrics = otel_resilience::metrics::ResilienceMetrics::global();
//! # let _ = metrics;
//! ```

use opentelemetry::metrics::{Counter, Gauge, MeterProvider};

/// The metric names, chosen once in `otel_core::attributes::metrics`.
pub use otel_core::attributes::metrics::{
    CIRCUIT_BREAKER_REJECTIONS as CIRCUIT_BREAKER_REJECTIONS_METRIC,
    CIRCUIT_BREAKER_STATE as CIRCUIT_BREAKER_STATE_METRIC,
    CIRCUIT_BREAKER_TRANSITIONS as CIRCUIT_BREAKER_TRANSITIONS_METRIC,
    RETRY_ATTEMPTS as RETRY_ATTEMPTS_METRIC,
    RETRY_BUDGET_REJECTIONS as RETRY_BUDGET_REJECTIONS_METRIC,
};

/// The instruments, created once per layer or registry.
#[derive(Debug, Clone)]
pub struct ResilienceMetrics {
    pub(crate) attempts: Counter<u64>,
    pub(crate) budget_rejections: Counter<u64>,
    pub(crate) breaker_state: Gauge<u64>,
    pub(crate) transitions: Counter<u64>,
    pub(crate) rejections: Counter<u64>,
}

impl ResilienceMetrics {
    /// Instruments from the global meter provider.
    pub fn global() -> Self {
        Self::new(&*opentelemetry::global::meter_provider())
    }

    /// Instruments from `provider`.
    pub fn new<P: MeterProvider + ?Sized>(provider: &P) -> Self {
        let meter = provider.meter("otel-resilience");
        ResilienceMetrics {
            attempts: meter
                .u64_counter(RETRY_ATTEMPTS_METRIC)
                .with_unit("{attempt}")
                .with_description("Attempts sent by the retry layer, first attempts included")
                .build(),
            budget_rejections: meter
                .u64_counter(RETRY_BUDGET_REJECTIONS_METRIC)
                .with_unit("{retry}")
                .with_description("Retries refused by the retry budget")
                .build(),
            breaker_state: meter
                .u64_gauge(CIRCUIT_BREAKER_STATE_METRIC)
                .with_description("Circuit breaker state: 0 closed, 1 open, 2 half_open")
                .build(),
            transitions: meter
                .u64_counter(CIRCUIT_BREAKER_TRANSITIONS_METRIC)
                .with_unit("{transition}")
                .with_description("Circuit breaker state transitions, by new state")
                .build(),
            rejections: meter
                .u64_counter(CIRCUIT_BREAKER_REJECTIONS_METRIC)
                .with_unit("{call}")
                .with_description("Calls rejected by an open or half-open circuit breaker")
                .build(),
        }
    }
}
