//! [`SetupError`]: why [`Telemetry::install`](super::Telemetry::install) refused a setup, with
//! the setting to change and how.
//!
//! ```
//! use std::collections::HashMap;
//! use otel_core::Telemetry;
//!
//! let err = Telemetry::builder()
//!     .env(HashMap::from([("OTEL_TRACES_SAMPLER", "sometimes")]))
//!     .resolve()
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("OTEL_TRACES_SAMPLER: unknown sampler"));
//! ```

/// Telemetry setup failed. The message names the setting (environment variable or builder
/// method) and says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A setting holds a value we cannot use.
    #[error("{setting}: {problem}; {fix}")]
    InvalidSetting {
        /// The environment variable or builder method the value came from.
        setting: &'static str,
        /// What is wrong with it (never the value of a header, which may be a secret).
        problem: String,
        /// What to change.
        fix: String,
    },
    /// A global `tracing` subscriber is already installed (e.g. `install()` called twice).
    #[error(
        "a global tracing subscriber is already installed; call Telemetry::install() once per \
         process, or use Telemetry::build() and TelemetryParts::set_default() in tests"
    )]
    AlreadyInstalled,
    /// The OTLP exporter could not be built.
    #[error("building the OTLP span exporter failed: {0}; check OTEL_EXPORTER_OTLP_* settings")]
    Exporter(String),
}

impl SetupError {
    pub(crate) fn invalid(
        setting: &'static str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        SetupError::InvalidSetting {
            setting,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The environment variable or builder method at fault, for [`SetupError::InvalidSetting`].
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            SetupError::InvalidSetting { setting, .. } => Some(setting),
            _ => None,
        }
    }
}
