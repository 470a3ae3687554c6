//! One circuit breaker per downstream (by default per authority, `host:port`), created on
//! first use with a shared configuration, bounded in number.
//!
//! ```
//! use otel_resilience::breaker_registry::CircuitBreakerRegistry;
//!
//! let registry = CircuitBreakerRegistry::builder().build();
//! let a = registry.get("payments:443");
//! let b = registry.get("payments:443");
//! assert!(std::sync::Arc::ptr_eq(&a, &b));
//! assert_ne!(registry.get("inventory:8080").name(), a.name());
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::metrics::MeterProvider;
use parking_lot::RwLock;

use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
use crate::clock::{SharedClock, TokioClock};
use crate::config_error::{ConfigError, Value, check, refuse};
use crate::metrics::ResilienceMetrics;
use crate::random::RandomSource;

/// The key of calls whose downstream has no authority (e.g. a tonic `Channel`'s relative
/// URIs) or that arrive after the registry is full.
pub const DEFAULT_BREAKER_KEY: &str = "default";

/// Breakers keyed by downstream. Lookups take a read lock (never across an await).
pub struct CircuitBreakerRegistry {
    config: CircuitBreakerConfig,
    clock: SharedClock,
    rng: Arc<RandomSource>,
    metrics: ResilienceMetrics,
    max_breakers: usize,
    breakers: RwLock<HashMap<Box<str>, Arc<CircuitBreaker>, foldhash::fast::RandomState>>,
}

/// Builds a [`CircuitBreakerRegistry`].
pub struct CircuitBreakerRegistryBuilder {
    config: CircuitBreakerConfig,
    clock: SharedClock,
    rng: Option<Arc<RandomSource>>,
    metrics: Option<ResilienceMetrics>,
    max_breakers: usize,
    invalid: Option<ConfigError>,
}

impl CircuitBreakerRegistry {
    /// A builder with the default configuration.
    pub fn builder() -> CircuitBreakerRegistryBuilder {
        CircuitBreakerRegistryBuilder {
            config: CircuitBreakerConfig::default(),
            clock: Arc::new(TokioClock),
            rng: None,
            metrics: None,
            max_breakers: 1024,
            invalid: None,
        }
    }

    /// The breaker for `key`, created on first use. Past the size limit, new keys share the
    /// [`DEFAULT_BREAKER_KEY`] breaker, so memory stays bounded.
    pub fn get(&self, key: &str) -> Arc<CircuitBreaker> {
        if let Some(b) = self.breakers.read().get(key) {
            return b.clone();
        }
        let mut map = self.breakers.write();
        if let Some(b) = map.get(key) {
            return b.clone();
        }
        let key = if map.len() >= self.max_breakers {
            DEFAULT_BREAKER_KEY
        } else {
            key
        };
        map.entry(Box::from(key))
            .or_insert_with(|| {
                CircuitBreaker::builder(key)
                    .config(self.config.clone())
                    .clock(self.clock.clone())
                    .random(self.rng.clone())
                    .metrics(self.metrics.clone())
                    .build()
            })
            .clone()
    }

    /// The breakers created so far.
    pub fn breakers(&self) -> Vec<Arc<CircuitBreaker>> {
        self.breakers.read().values().cloned().collect()
    }
}

impl std::fmt::Debug for CircuitBreakerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerRegistry")
            .field("config", &self.config)
            .field("breakers", &self.breakers.read().len())
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerRegistryBuilder {
    /// The configuration of every breaker.
    pub fn config(mut self, config: CircuitBreakerConfig) -> Self {
        self.config = config;
        self
    }
    /// The clock (default [`TokioClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
    /// A reproducible random source for open-duration jitter.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Some(Arc::new(RandomSource::seeded(seed)));
        self
    }
    /// The meter provider of the breaker metrics (default: the global one).
    pub fn meter_provider<P: MeterProvider + ?Sized>(mut self, provider: &P) -> Self {
        self.metrics = Some(ResilienceMetrics::new(provider));
        self
    }
    /// At most this many breakers (default 1024), plus the shared `default` one that
    /// further keys use.
    pub fn max_breakers(mut self, n: usize) -> Self {
        if n == 0 {
            refuse(
                &mut self.invalid,
                ConfigError::new(
                    "CircuitBreakerRegistry::max_breakers",
                    Value::Int(0),
                    "use at least 1 (default 1024; keys past the limit share one breaker)",
                ),
            );
        } else {
            self.max_breakers = n;
        }
        self
    }
    /// The registry.
    ///
    /// # Panics
    ///
    /// At setup, with the [`ConfigError`] message, when a setting or the breaker
    /// configuration holds a refused value; [`try_build`](Self::try_build) returns the error.
    pub fn build(self) -> Arc<CircuitBreakerRegistry> {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }
    /// The registry, or the first refused configuration value.
    pub fn try_build(self) -> Result<Arc<CircuitBreakerRegistry>, ConfigError> {
        check(&self.invalid)?;
        self.config.validate()?;
        Ok(Arc::new(CircuitBreakerRegistry {
            config: self.config,
            clock: self.clock,
            rng: self.rng.unwrap_or_default(),
            metrics: self.metrics.unwrap_or_else(ResilienceMetrics::global),
            max_breakers: self.max_breakers,
            breakers: RwLock::new(HashMap::default()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_of_breakers_is_bounded() {
        let registry = CircuitBreakerRegistry::builder().max_breakers(3).build();
        for i in 0..100 {
            registry.get(&format!("host-{i}:80"));
        }
        assert_eq!(
            registry.breakers().len(),
            4,
            "3 plus the shared overflow breaker"
        );
        assert_eq!(registry.get("host-99:80").name(), DEFAULT_BREAKER_KEY);
        assert_eq!(registry.get("host-1:80").name(), "host-1:80");
    }
}
