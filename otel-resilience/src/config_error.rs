//! A configuration value refused at setup: which setting, the value given, and what to use
//! instead.
//!
//! The builder methods of this crate stay chainable; a refused value is remembered (the
//! setting keeps its default) and reported by the fallible finisher (`try_build`,
//! `validate`, `RetryBudget::try_ratio`, ...). The infallible finishers (`build`) panic with
//! the same message at setup, like `tokio::runtime::Builder::worker_threads(0)` does.
//!
//! ```
//! use otel_resilience::{CircuitBreaker, CircuitBreakerConfig};
//!
//! let err = CircuitBreaker::builder("db")
//!     .config(CircuitBreakerConfig::default().half_open_probes(0))
//!     .try_build()
//!     .unwrap_err();
//! assert_eq!(err.setting(), "CircuitBreakerConfig::half_open_probes");
//! assert_eq!(
//!     err.to_string(),
//!     "CircuitBreakerConfig::half_open_probes = 0 is refused: use at least 1 probe (default 1)"
//! );
//! ```

use std::fmt;
use std::time::Duration;

/// A refused configuration value (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigError {
    setting: &'static str,
    value: Value,
    fix: &'static str,
}

impl ConfigError {
    /// The setting, as `Type::method` (for example `RetryPolicy::max_attempts`).
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// What to do instead.
    pub fn fix(&self) -> &'static str {
        self.fix
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is refused: {}",
            self.setting, self.value, self.fix
        )
    }
}

impl std::error::Error for ConfigError {}

// ---- crate helpers ------------------------------------------------------------------------

/// The value given, kept `Copy` so that `Copy` configurations can carry a refusal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
    Duration(Duration),
    Durations(Duration, Duration),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Duration(v) => write!(f, "{v:?}"),
            Value::Durations(a, b) => write!(f, "({a:?}, {b:?})"),
        }
    }
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, value: Value, fix: &'static str) -> Self {
        ConfigError {
            setting,
            value,
            fix,
        }
    }
}

/// Remembers `err` unless an earlier refusal is already remembered (the first one is
/// reported: it is the one the user wrote first).
pub(crate) fn refuse(slot: &mut Option<ConfigError>, err: ConfigError) {
    if slot.is_none() {
        *slot = Some(err);
    }
}

/// `Ok` when nothing was refused.
pub(crate) fn check(slot: &Option<ConfigError>) -> Result<(), ConfigError> {
    match slot {
        Some(err) => Err(*err),
        None => Ok(()),
    }
}
