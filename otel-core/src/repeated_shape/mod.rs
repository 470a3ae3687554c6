//! Repeated-shape (N+1) detection on the span tree (work in progress: API only).
//!
//! ```
//! use otel_core::repeated_shape::{FindingKind};
//! assert_eq!(FindingKind::NPlusOne.as_str(), "n_plus_one");
//! ```

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What kind of operation a shape is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShapeKind {
    /// A read (SELECT).
    Read,
    /// A write (INSERT/UPDATE/DELETE).
    Write,
    /// An outgoing HTTP call.
    HttpCall,
    /// Never counted: pings, BEGIN/COMMIT, migrations.
    Ignored,
}

/// The kind of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// Same shape repeated.
    NPlusOne,
    /// Same shape and same values repeated.
    Duplicate,
    /// Repeats that ran concurrently.
    FanOut,
    /// Same write shape repeated.
    UnbatchedWrite,
}

impl FindingKind {
    /// The name used in attributes and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingKind::NPlusOne => "n_plus_one",
            FindingKind::Duplicate => "duplicate",
            FindingKind::FanOut => "fan_out",
            FindingKind::UnbatchedWrite => "unbatched_write",
        }
    }
}

/// One operation seen by the detector.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Sanitised SQL or `GET api.example.com/users/{id}`.
    pub shape: &'a str,
    /// Stable hash of the shape.
    pub fingerprint: u64,
    /// Kind of operation.
    pub kind: ShapeKind,
    /// Hash of the bound values.
    pub values_hash: Option<u64>,
    /// When the operation started.
    pub started: Instant,
    /// How long it took.
    pub duration: Duration,
    /// Where it was called from.
    pub call_site: Option<&'static Location<'static>>,
    /// A concrete fix.
    pub suggestion: Option<&'a str>,
}

/// A finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// Shape.
    pub shape: String,
    /// Count.
    pub count: u64,
    /// Total time.
    pub total_duration: Duration,
    /// Call site.
    pub call_site: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Suggestion.
    pub suggestion: Option<String>,
    /// Scope name.
    pub scope_name: Option<String>,
}

/// What to do with a finding.
#[derive(Clone)]
pub enum Mode {
    /// Nothing.
    Off,
    /// Warn.
    Warn,
    /// Panic.
    Panic,
    /// Call a function.
    Callback(Arc<dyn Fn(&Finding) + Send + Sync>),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Off => f.write_str("Off"),
            Mode::Warn => f.write_str("Warn"),
            Mode::Panic => f.write_str("Panic"),
            Mode::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// Detector configuration.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    mode: Mode,
}

impl DetectorConfig {
    /// Warn in debug, Off in release, env `OTEL_N_PLUS_ONE` overrides.
    pub fn default_for_build() -> Self {
        DetectorConfig {
            mode: if cfg!(debug_assertions) { Mode::Warn } else { Mode::Off },
        }
    }
}

/// Sets the global configuration.
pub fn set_config(config: DetectorConfig) {
    let _ = config.mode;
}

/// Records one observation.
pub fn observe(cx: &opentelemetry::Context, obs: &Observation<'_>) {
    let _ = (cx, obs);
}

/// A detection scope (one request).
#[derive(Clone, Debug)]
pub struct Scope {
    _span: tracing::Span,
}

impl Scope {
    /// A scope whose findings are reported on `scope_span`.
    pub fn new(scope_span: tracing::Span) -> Self {
        Scope { _span: scope_span }
    }
    /// A scope in which nothing is counted.
    pub fn ignore() -> Self {
        Scope {
            _span: tracing::Span::none(),
        }
    }
    /// The findings so far.
    pub fn findings(&self) -> Vec<Finding> {
        Vec::new()
    }
}

/// Runs `fut` in a fresh scope and returns its findings.
pub async fn capture<F: Future>(fut: F) -> (F::Output, Vec<Finding>) {
    (fut.await, Vec::new())
}
