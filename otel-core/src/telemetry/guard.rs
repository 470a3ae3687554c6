//! [`TelemetryGuard`]: keeps the tracer provider alive; flushes and shuts it down on drop, or
//! explicitly with a timeout.
//!
//! ```no_run
//! # fn main() -> Result<(), otel_core::SetupError> {
//! let guard = otel_core::Telemetry::builder().service_name("worker").install()?;
//! // ... run the service ...
//! if let Err(e) = guard.shutdown(std::time::Duration::from_secs(2)) {
//!     eprintln!("telemetry shutdown: {e}");
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::export_queue::DroppedSpans;

/// How long the implicit shutdown on drop waits for the last export.
pub const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Returned by [`Telemetry::install`](super::Telemetry::install): flushes pending spans and
/// shuts the SDK down when dropped (waiting at most [`DROP_SHUTDOWN_TIMEOUT`]), or when
/// [`shutdown`](Self::shutdown) is called with a timeout of your choice.
///
/// With OTLP/gRPC the last export runs on the tokio runtime: on a current-thread runtime,
/// shut down from `tokio::task::spawn_blocking` (or let the guard drop after the runtime's
/// work is done on a multi-thread runtime), else the export can only finish at the timeout.
#[derive(Debug)]
#[must_use = "dropping the guard shuts telemetry down at once"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    dropped: Option<DroppedSpans>,
}

impl TelemetryGuard {
    pub(crate) fn new(provider: Option<SdkTracerProvider>, dropped: Option<DroppedSpans>) -> Self {
        TelemetryGuard { provider, dropped }
    }

    /// Flushes pending spans and shuts the SDK down, waiting at most `timeout` (an exporter
    /// that is down cannot hold the process). A no-op when telemetry is disabled.
    pub fn shutdown(mut self, timeout: Duration) -> OTelSdkResult {
        match self.provider.take() {
            Some(provider) => provider.shutdown_with_timeout(timeout),
            None => Ok(()),
        }
    }

    /// Exports the spans finished so far, now.
    pub fn force_flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }

    /// Spans dropped so far because the export queue was full (0 without a queue).
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.as_ref().map_or(0, DroppedSpans::get)
    }

    /// The tracer provider (absent when telemetry is disabled).
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown_with_timeout(DROP_SHUTDOWN_TIMEOUT);
        }
    }
}
