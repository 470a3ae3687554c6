//! One-call setup of the OpenTelemetry SDK and the `tracing` subscriber.
//!
//! [`Telemetry::builder`] … [`install`](Telemetry::install) sets up, from code and the
//! standard `OTEL_*` environment variables (code wins):
//! - the tracer provider: resource (`service.*`, `deployment.environment.name`,
//!   `OTEL_RESOURCE_ATTRIBUTES`), sampler (`OTEL_TRACES_SAMPLER`, wrapped in
//!   [`PreSampled`](crate::sampling::PreSampled) and shared with
//!   [`sampling::decide`](crate::sampling::decide)), exporter (OTLP over gRPC or
//!   HTTP/protobuf behind a bounded queue, the console trace tree, or none);
//! - the global meter provider, when traces go to OTLP (or `OTEL_METRICS_EXPORTER=otlp`): a
//!   periodic reader (`OTEL_METRIC_EXPORT_INTERVAL`) exporting over OTLP to the same
//!   collector, with the same resource, so the metrics the layers of this workspace record
//!   on the global meter provider are not lost;
//! - the global text-map propagator (`OTEL_PROPAGATORS`);
//! - the `tracing` subscriber: a `RUST_LOG` filter, the OpenTelemetry bridge and log lines
//!   that carry `trace_id`, `span_id` and `request_id` inside a request.
//!
//! With no exporter configured, a debug build prints each finished trace as a tree on stderr;
//! a release build exports nothing. `OTEL_SDK_DISABLED=true` installs no OpenTelemetry layer
//! at all and switches the layers of this workspace off.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), otel_core::SetupError> {
//! let _guard = otel_core::Telemetry::builder()
//!     .service_name("checkout")
//!     .log_format(otel_core::telemetry::LogFormat::Json)
//!     .install()?;
//! tracing::info!("started");
//! # Ok(()) }
//! ```
//!
//! The pieces are public for a user who builds their own subscriber: [`env_filter`],
//! [`otel_layer`], [`log_layer`] / [`log_layer_with`], [`BoundedBatchProcessor`].

mod bridge;
mod builder;
mod config;
mod console;
mod error;
mod export_queue;
mod filter;
mod guard;
mod logs;
mod parts;

pub use bridge::{TRACER_NAME, otel_layer};
pub use builder::{
    DEFAULT_LOG_FILTER, DEFAULT_MAX_QUEUE_SIZE, DEFAULT_METRIC_EXPORT_INTERVAL,
    DEFAULT_OTLP_TIMEOUT, DEFAULT_PROPAGATORS, ExporterSettings, MetricsSettings,
    OtlpMetricsSettings, OtlpSettings, Settings, Telemetry,
};
pub use config::{
    EnvSource, LogFormat, MetricsExporter, OtlpProtocol, ProcessEnv, TracesExporter, vars,
};
pub use console::{ConsoleExporter, ConsoleExporterBuilder};
pub use error::SetupError;
pub use export_queue::{BoundedBatchProcessor, DroppedSpans};
pub use filter::{SPAN_TARGETS, dropped_span_targets, env_filter};
pub use guard::{DROP_SHUTDOWN_TIMEOUT, TelemetryGuard};
pub use logs::{BoxedLayer, log_layer, log_layer_with};
pub use parts::TelemetryParts;
