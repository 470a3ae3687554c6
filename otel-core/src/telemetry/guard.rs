//! [`TelemetryGuard`]: keeps the tracer and meter providers alive; flushes and shuts them down
//! on drop, or explicitly with a timeout.
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

use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::export_queue::DroppedSpans;

/// How long the implicit shutdown on drop waits for the last export.
pub const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Returned by [`Telemetry::install`](super::Telemetry::install): flushes pending spans and
/// metrics and shuts the SDK down when dropped (waiting at most [`DROP_SHUTDOWN_TIMEOUT`]),
/// or when [`shutdown`](Self::shutdown) is called with a timeout of your choice.
///
/// With OTLP/gRPC the last export runs on the tokio runtime: on a current-thread runtime,
/// shut down from `tokio::task::spawn_blocking` (or let the guard drop after the runtime's
/// work is done on a multi-thread runtime), else the export can only finish at the timeout.
#[derive(Debug)]
#[must_use = "dropping the guard shuts telemetry down at once"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<Meters>,
    dropped: Option<DroppedSpans>,
}

/// The meter provider and how long one of its exports may take.
#[derive(Debug)]
pub(crate) struct Meters {
    pub(crate) provider: SdkMeterProvider,
    pub(crate) export_timeout: Duration,
}

impl TelemetryGuard {
    pub(crate) fn new(
        provider: Option<SdkTracerProvider>,
        meters: Option<Meters>,
        dropped: Option<DroppedSpans>,
    ) -> Self {
        TelemetryGuard {
            provider,
            meters,
            dropped,
        }
    }

    /// Flushes pending spans and metrics and shuts the SDK down, waiting at most `timeout`
    /// in all (an exporter that is down cannot hold the process). A no-op when telemetry is
    /// disabled. An error means the timeout passed; a failed last export is not one (the SDK
    /// reports none for spans, and this reports none for metrics, e.g. from a traces-only
    /// backend that refuses `/v1/metrics`).
    pub fn shutdown(mut self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_within(timeout)
    }

    /// Exports the spans finished and the metrics recorded so far, now (the metrics wait at
    /// most their export timeout).
    pub fn force_flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
        if let Some(meters) = &self.meters {
            let provider = meters.provider.clone();
            let _ = within(Instant::now() + meters.export_timeout, move || {
                provider.force_flush()
            });
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

    /// The meter provider that [`install`](super::Telemetry::install) made global (absent
    /// when metrics go nowhere: telemetry disabled, `OTEL_METRICS_EXPORTER=none`, or traces
    /// not going to OTLP). Pass it to a layer's `.meter_provider(..)` to skip the global.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meters.as_ref().map(|m| &m.provider)
    }

    /// Shuts both providers down at once, within `timeout` in all. The SDK's meter provider
    /// ignores its timeout (it waits up to 5 s for the reader), so it shuts down on a thread
    /// of its own that is waited for until the deadline only.
    fn shutdown_within(&mut self, timeout: Duration) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let metrics = self.meters.take().map(|meters| {
            let provider = meters.provider;
            start(move || provider.shutdown())
        });
        let traces = match self.provider.take() {
            Some(provider) => provider.shutdown_with_timeout(timeout),
            None => Ok(()),
        };
        let metrics = match metrics.map(|pending| wait(pending, deadline, timeout)) {
            // The SDK's span processor reports only its timeout, never a failed export: the
            // same for metrics (the reader answers "failed" when its last export did).
            Some(Err(OTelSdkError::Timeout(t))) => Err(OTelSdkError::Timeout(t)),
            _ => Ok(()),
        };
        traces.and(metrics)
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.shutdown_within(DROP_SHUTDOWN_TIMEOUT);
    }
}

// ---- helpers --------------------------------------------------------------------------------

/// A call running on a thread of its own (or done already, if no thread could be started).
enum Pending {
    Running(mpsc::Receiver<OTelSdkResult>),
    Done(OTelSdkResult),
}

/// Starts `f` on a thread; the caller waits for it with [`wait`] until its deadline only.
fn start(f: impl FnOnce() -> OTelSdkResult + Send + 'static) -> Pending {
    let (tx, rx) = mpsc::channel();
    let f = std::sync::Arc::new(parking_lot::Mutex::new(Some(f)));
    let on_thread = f.clone();
    let spawned = std::thread::Builder::new()
        .name("otel-metrics-flush".into())
        .spawn(move || {
            if let Some(f) = on_thread.lock().take() {
                let _ = tx.send(f());
            }
        });
    match spawned {
        Ok(_) => Pending::Running(rx),
        // No thread: run it here (bounded by the exporter's own timeout).
        Err(_) => Pending::Done(f.lock().take().map_or(Ok(()), |f| f())),
    }
}

fn wait(pending: Pending, deadline: Instant, timeout: Duration) -> OTelSdkResult {
    match pending {
        Pending::Done(result) => result,
        Pending::Running(rx) => {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(result) => result,
                Err(mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(OTelSdkError::InternalFailure(
                    "the metrics shutdown thread ended without an answer".into(),
                )),
            }
        }
    }
}

/// Runs `f` on a thread of its own and waits for it until `deadline` at most.
fn within(deadline: Instant, f: impl FnOnce() -> OTelSdkResult + Send + 'static) -> OTelSdkResult {
    let timeout = deadline.saturating_duration_since(Instant::now());
    wait(start(f), deadline, timeout)
}
