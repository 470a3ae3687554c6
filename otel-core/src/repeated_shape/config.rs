//! Detector configuration: [`Mode`], [`DetectorConfig`] and its builder, and the process-wide
//! configuration set with [`set_config`].
//!
//! ```
//! use otel_core::repeated_shape::{self, DetectorConfig, Mode};
//!
//! let config = DetectorConfig::builder()
//!     .mode(Mode::Warn)
//!     .n_plus_one_threshold(10)
//!     .allow("FROM feature_flags")
//!     .build()
//!     .expect("valid configuration");
//! assert_eq!(config.n_plus_one_threshold(), 10);
//! repeated_shape::set_config(config);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use opentelemetry::metrics::{Counter, MeterProvider};
use parking_lot::RwLock;

use super::finding::Finding;
use crate::attributes;

/// The environment variable that overrides the mode of
/// [`DetectorConfig::default_for_build`]: `off`, `warn` or `panic`.
pub const ENV_MODE: &str = "OTEL_N_PLUS_ONE";

/// What the detector does with a finding (the span event, attributes and metric are recorded
/// in every mode but `Off`).
#[derive(Clone)]
pub enum Mode {
    /// Count nothing; `observe` returns after one atomic load.
    Off,
    /// Log a `tracing` warning (target `otel_core::n_plus_one`).
    Warn,
    /// Panic when the threshold is crossed, with the shape, count, call site and fix in the
    /// message: a test that runs an N+1 fails.
    Panic,
    /// Call this function when the threshold is crossed.
    Callback(Arc<dyn Fn(&Finding) + Send + Sync>),
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Off => f.write_str("Off"),
            Mode::Warn => f.write_str("Warn"),
            Mode::Panic => f.write_str("Panic"),
            Mode::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

impl Mode {
    fn is_off(&self) -> bool {
        matches!(self, Mode::Off)
    }
}

/// A refused configuration; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A threshold below 2 would flag every single operation.
    #[error(
        "repeated_shape: {name} must be at least 2 (got {value}); use Mode::Off to disable detection"
    )]
    ThresholdTooLow {
        /// The builder method.
        name: &'static str,
        /// The value given.
        value: u64,
    },
    /// A cap of 0 would count nothing.
    #[error(
        "repeated_shape: {name} must be at least 1 (got 0); use Mode::Off to disable detection"
    )]
    ZeroCap {
        /// The builder method.
        name: &'static str,
    },
    /// `OTEL_N_PLUS_ONE` holds something else than `off`, `warn` or `panic`.
    #[error("repeated_shape: {ENV_MODE}={0:?} is not one of off, warn, panic")]
    InvalidEnvMode(String),
}

/// The detector's configuration. Build it with [`DetectorConfig::builder`]; defaults:
/// `Warn` in debug builds, `Off` in release builds (env `OTEL_N_PLUS_ONE` overrides, a mode
/// set in code wins over both), thresholds 5 (`n_plus_one`, `fan_out`), 3 (`duplicate`),
/// 5 (`unbatched_write`), 256 shapes per scope, 1024 fallback scopes, shapes truncated to
/// 1024 bytes, the global meter provider for the `n_plus_one.findings` counter.
#[derive(Clone)]
pub struct DetectorConfig {
    pub(crate) mode: Mode,
    pub(crate) n_plus_one_threshold: u64,
    pub(crate) duplicate_threshold: u64,
    pub(crate) unbatched_write_threshold: u64,
    pub(crate) allowlist: Vec<String>,
    pub(crate) max_shapes_per_scope: usize,
    pub(crate) max_scopes: usize,
    pub(crate) max_shape_len: usize,
    pub(crate) counter: Option<Counter<u64>>,
}

impl DetectorConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> DetectorConfigBuilder {
        DetectorConfigBuilder::default()
    }

    /// The defaults: `Warn` in debug builds, `Off` in release builds, overridden by
    /// `OTEL_N_PLUS_ONE=off|warn|panic` (an invalid value is ignored with a warning).
    pub fn default_for_build() -> Self {
        let mut builder = DetectorConfig::builder();
        match mode_from_env() {
            Ok(Some(mode)) => builder = builder.mode(mode),
            Ok(None) => {}
            Err(err) => tracing::warn!(target: "otel_core::n_plus_one", "{err}; using the default"),
        }
        builder.build().unwrap_or_else(|_| unreachable_defaults())
    }

    /// The mode.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The `n_plus_one` / `fan_out` threshold.
    pub fn n_plus_one_threshold(&self) -> u64 {
        self.n_plus_one_threshold
    }

    /// Whether `shape` contains one of the allowlisted substrings.
    pub fn is_allowlisted(&self, shape: &str) -> bool {
        self.allowlist
            .iter()
            .any(|allowed| shape.contains(allowed.as_str()))
    }
}

impl Default for DetectorConfig {
    /// Same as [`DetectorConfig::default_for_build`].
    fn default() -> Self {
        DetectorConfig::default_for_build()
    }
}

impl fmt::Debug for DetectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetectorConfig")
            .field("mode", &self.mode)
            .field("n_plus_one_threshold", &self.n_plus_one_threshold)
            .field("duplicate_threshold", &self.duplicate_threshold)
            .field("unbatched_write_threshold", &self.unbatched_write_threshold)
            .field("allowlist", &self.allowlist)
            .field("max_shapes_per_scope", &self.max_shapes_per_scope)
            .field("max_scopes", &self.max_scopes)
            .field("max_shape_len", &self.max_shape_len)
            .field("meter_provider", &self.counter.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Builder of [`DetectorConfig`]; [`build`](Self::build) refuses nonsensical values.
#[derive(Clone)]
pub struct DetectorConfigBuilder {
    mode: Option<Mode>,
    n_plus_one_threshold: u64,
    duplicate_threshold: u64,
    unbatched_write_threshold: u64,
    allowlist: Vec<String>,
    max_shapes_per_scope: usize,
    max_scopes: usize,
    max_shape_len: usize,
    counter: Option<Counter<u64>>,
}

impl Default for DetectorConfigBuilder {
    fn default() -> Self {
        DetectorConfigBuilder {
            mode: None,
            n_plus_one_threshold: 5,
            duplicate_threshold: 3,
            unbatched_write_threshold: 5,
            allowlist: Vec::new(),
            max_shapes_per_scope: 256,
            max_scopes: 1024,
            max_shape_len: 1024,
            counter: None,
        }
    }
}

impl fmt::Debug for DetectorConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetectorConfigBuilder")
            .field("mode", &self.mode)
            .field("n_plus_one_threshold", &self.n_plus_one_threshold)
            .finish_non_exhaustive()
    }
}

impl DetectorConfigBuilder {
    /// What to do with findings. Without it: `Warn` in debug builds, `Off` in release builds
    /// (the environment is read only by [`DetectorConfig::default_for_build`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// How many runs of one read / HTTP shape make an `n_plus_one` (or `fan_out`); default 5.
    pub fn n_plus_one_threshold(mut self, threshold: u64) -> Self {
        self.n_plus_one_threshold = threshold;
        self
    }

    /// How many runs of one shape with the same values make a `duplicate`; default 3.
    pub fn duplicate_threshold(mut self, threshold: u64) -> Self {
        self.duplicate_threshold = threshold;
        self
    }

    /// How many runs of one write shape make an `unbatched_write`; default 5.
    pub fn unbatched_write_threshold(mut self, threshold: u64) -> Self {
        self.unbatched_write_threshold = threshold;
        self
    }

    /// Never count a shape containing `substring` (e.g. `FROM feature_flags`).
    pub fn allow(mut self, substring: impl Into<String>) -> Self {
        self.allowlist.push(substring.into());
        self
    }

    /// Replaces the allowlist.
    pub fn allowlist<I, S>(mut self, substrings: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowlist = substrings.into_iter().map(Into::into).collect();
        self
    }

    /// Distinct (parent, shape) pairs tracked per scope; later new shapes are not counted.
    /// Default 256.
    pub fn max_shapes_per_scope(mut self, max: usize) -> Self {
        self.max_shapes_per_scope = max;
        self
    }

    /// Fallback scopes (keyed by trace id, for operations outside any [`Scope`](super::Scope))
    /// kept at once; the oldest is evicted first. Default 1024.
    pub fn max_scopes(mut self, max: usize) -> Self {
        self.max_scopes = max;
        self
    }

    /// Shapes longer than this many bytes are truncated (at a character boundary) before they
    /// are stored. Default 1024.
    pub fn max_shape_len(mut self, max: usize) -> Self {
        self.max_shape_len = max;
        self
    }

    /// Record the `n_plus_one.findings` counter through `provider` instead of the global
    /// meter provider.
    pub fn meter_provider(mut self, provider: &impl MeterProvider) -> Self {
        self.counter = Some(findings_counter(provider.meter("otel-core")));
        self
    }

    /// The configuration, or what to change.
    pub fn build(self) -> Result<DetectorConfig, ConfigError> {
        for (name, value) in [
            ("n_plus_one_threshold", self.n_plus_one_threshold),
            ("duplicate_threshold", self.duplicate_threshold),
            ("unbatched_write_threshold", self.unbatched_write_threshold),
        ] {
            if value < 2 {
                return Err(ConfigError::ThresholdTooLow { name, value });
            }
        }
        for (name, value) in [
            ("max_shapes_per_scope", self.max_shapes_per_scope),
            ("max_scopes", self.max_scopes),
            ("max_shape_len", self.max_shape_len),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroCap { name });
            }
        }
        Ok(DetectorConfig {
            mode: self.mode.unwrap_or_else(build_default_mode),
            n_plus_one_threshold: self.n_plus_one_threshold,
            duplicate_threshold: self.duplicate_threshold,
            unbatched_write_threshold: self.unbatched_write_threshold,
            allowlist: self.allowlist,
            max_shapes_per_scope: self.max_shapes_per_scope,
            max_scopes: self.max_scopes,
            max_shape_len: self.max_shape_len,
            counter: self.counter,
        })
    }
}

/// Replaces the process-wide configuration (used by scopes without their own and by the
/// fallback scopes). Until it is called, [`DetectorConfig::default_for_build`] applies.
pub fn set_config(config: DetectorConfig) {
    let enabled = !config.mode.is_off();
    let mut slot = GLOBAL.config.write();
    *slot = Arc::new(config);
    // Under the lock, so that concurrent calls leave the bit matching the last config.
    set_global_enabled(enabled);
}

/// Parses `OTEL_N_PLUS_ONE`: `Ok(None)` when unset or empty.
pub fn mode_from_env() -> Result<Option<Mode>, ConfigError> {
    match std::env::var(ENV_MODE) {
        Ok(value) => parse_mode(&value),
        Err(_) => Ok(None),
    }
}

// ---- process-wide state ---------------------------------------------------------------------

/// Bit 0 of [`STATE`]: the global mode is (or, before [`GLOBAL`] is initialised, may be) not
/// `Off`.
const GLOBAL_ENABLED: usize = 1;
/// Each live scope with its own enabled configuration adds this to [`STATE`].
const OVERRIDE_UNIT: usize = 2;

/// Zero when nothing can count: the one atomic load `observe` does in `Off` mode. Starts as
/// "maybe enabled" so that the first `observe` initialises [`GLOBAL`], which corrects it.
pub(crate) static STATE: AtomicUsize = AtomicUsize::new(GLOBAL_ENABLED);

pub(crate) struct Global {
    pub(crate) config: RwLock<Arc<DetectorConfig>>,
}

pub(crate) static GLOBAL: LazyLock<Global> = LazyLock::new(|| {
    let config = DetectorConfig::default_for_build();
    set_global_enabled(!config.mode.is_off());
    Global {
        config: RwLock::new(Arc::new(config)),
    }
});

impl Global {
    pub(crate) fn config(&self) -> Arc<DetectorConfig> {
        self.config.read().clone()
    }
}

/// Registers a live scope with its own configuration (so `observe` does not stop at the
/// global `Off`); returns whether it was registered.
pub(crate) fn register_override(config: &DetectorConfig) -> bool {
    if config.mode.is_off() {
        return false;
    }
    STATE.fetch_add(OVERRIDE_UNIT, Ordering::Relaxed);
    true
}

/// Undoes [`register_override`].
pub(crate) fn unregister_override() {
    STATE.fetch_sub(OVERRIDE_UNIT, Ordering::Relaxed);
}

fn set_global_enabled(enabled: bool) {
    if enabled {
        STATE.fetch_or(GLOBAL_ENABLED, Ordering::Relaxed);
    } else {
        STATE.fetch_and(!GLOBAL_ENABLED, Ordering::Relaxed);
    }
}

/// The counter every finding increments (attribute `n_plus_one.kind`).
pub(crate) fn findings_counter(meter: opentelemetry::metrics::Meter) -> Counter<u64> {
    meter
        .u64_counter(attributes::metrics::N_PLUS_ONE_FINDINGS)
        .with_description("Repeated-shape (N+1) findings, by kind")
        .build()
}

fn build_default_mode() -> Mode {
    if cfg!(debug_assertions) {
        Mode::Warn
    } else {
        Mode::Off
    }
}

fn parse_mode(value: &str) -> Result<Option<Mode>, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "off" => Ok(Some(Mode::Off)),
        "warn" => Ok(Some(Mode::Warn)),
        "panic" => Ok(Some(Mode::Panic)),
        _ => Err(ConfigError::InvalidEnvMode(
            value.chars().take(64).collect(),
        )),
    }
}

/// The defaults always pass validation; kept as a function so no `expect` hides in the code.
fn unreachable_defaults() -> DetectorConfig {
    DetectorConfig {
        mode: build_default_mode(),
        n_plus_one_threshold: 5,
        duplicate_threshold: 3,
        unbatched_write_threshold: 5,
        allowlist: Vec::new(),
        max_shapes_per_scope: 256,
        max_scopes: 1024,
        max_shape_len: 1024,
        counter: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_threshold_below_two() {
        let err = DetectorConfig::builder()
            .n_plus_one_threshold(1)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::ThresholdTooLow {
                name: "n_plus_one_threshold",
                value: 1
            }
        );
        assert!(err.to_string().contains("at least 2"));
    }

    #[test]
    fn refuses_zero_caps() {
        let err = DetectorConfig::builder()
            .max_shapes_per_scope(0)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::ZeroCap {
                name: "max_shapes_per_scope"
            }
        );
    }

    #[test]
    fn parses_env_modes() {
        assert!(matches!(parse_mode("off"), Ok(Some(Mode::Off))));
        assert!(matches!(parse_mode(" Warn "), Ok(Some(Mode::Warn))));
        assert!(matches!(parse_mode("PANIC"), Ok(Some(Mode::Panic))));
        assert!(matches!(parse_mode(""), Ok(None)));
        assert!(matches!(
            parse_mode("loud"),
            Err(ConfigError::InvalidEnvMode(v)) if v == "loud"
        ));
    }

    #[test]
    fn build_default_follows_debug_assertions() {
        let config = DetectorConfig::builder().build().unwrap();
        assert_eq!(config.mode.is_off(), !cfg!(debug_assertions));
        assert_eq!(config.n_plus_one_threshold, 5);
        assert_eq!(config.duplicate_threshold, 3);
        assert_eq!(config.unbatched_write_threshold, 5);
    }
}
