//! [`TelemetryParts`]: everything [`Telemetry::build`](super::Telemetry::build) made, not yet
//! installed. [`init`](TelemetryParts::init) installs it process-wide;
//! [`set_default`](TelemetryParts::set_default) sets only the `tracing` subscriber, for the
//! current thread (tests), and touches no global state.
//!
//! ```
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
//! use otel_core::Telemetry;
//!
//! let spans = InMemorySpanExporter::default();
//! let parts = Telemetry::builder()
//!     .env(std::collections::HashMap::<String, String>::new())
//!     .span_processor(SimpleSpanProcessor::new(spans.clone()))
//!     .log_writer(std::io::sink)
//!     .build()
//!     .unwrap();
//! let (guard, _default) = parts.set_default();
//! tracing::info_span!("GET /health").in_scope(|| tracing::info!("ok"));
//! guard.force_flush();
//! assert_eq!(spans.get_finished_spans().unwrap()[0].name, "GET /health");
//! ```

use std::sync::Once;

use opentelemetry::global;
use opentelemetry_sdk::Resource;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor, SpanProcessor};
use tracing::Dispatch;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::ConsoleExporter;
use super::bridge::otel_layer;
use super::builder::{
    ExporterSettings, MetricsSettings, OtlpMetricsSettings, OtlpSettings, Settings,
};
use super::config::{OtlpProtocol, Sourced};
use super::error::SetupError;
use super::export_queue::{BoundedBatchProcessor, DroppedSpans};
use super::filter::{dropped_span_targets, dropped_targets_warning, env_filter_from};
use super::guard::{Meters, TelemetryGuard};
use super::logs::{log_layer_inner, log_layer_with, stdout_wants_colour};
use crate::propagation::CompositePropagator;
use crate::sampling::{self, PreSampled};

/// The built, not yet installed, telemetry: subscriber, tracer and meter providers,
/// propagator, sampler.
pub struct TelemetryParts {
    dispatch: Dispatch,
    guard: TelemetryGuard,
    propagator: Option<CompositePropagator>,
    settings: Settings,
    filter_warning: Option<String>,
}

impl std::fmt::Debug for TelemetryParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryParts")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TelemetryParts {
    /// The settings these parts were built from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The warning printed by [`init`](Self::init) when the log filter drops the spans of
    /// this workspace's layers (see [`dropped_span_targets`]), if it does.
    pub fn filter_warning(&self) -> Option<&str> {
        self.filter_warning.as_deref()
    }

    /// The tracer provider (absent when telemetry is disabled).
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.guard.tracer_provider()
    }

    /// The meter provider (absent when metrics go nowhere, see
    /// [`Settings::metrics`]); [`init`](Self::init) makes it the global meter provider.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.guard.meter_provider()
    }

    /// The `tracing` dispatcher holding the subscriber (filter, OpenTelemetry bridge, logs).
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Installs everything process-wide: the global `tracing` subscriber (first, so that a
    /// second call fails with [`SetupError::AlreadyInstalled`] before changing anything),
    /// then the enabled flag and sampler of [`sampling`], the global text-map propagator,
    /// tracer provider and meter provider. Prints the filter warning once, on stderr.
    pub fn init(self) -> Result<TelemetryGuard, SetupError> {
        tracing::dispatcher::set_global_default(self.dispatch)
            .map_err(|_| SetupError::AlreadyInstalled)?;
        sampling::set_enabled(!self.settings.disabled);
        if !self.settings.disabled {
            sampling::set_sampler(PreSampled::new(self.settings.sampler.clone()));
            if let Some(propagator) = self.propagator {
                global::set_text_map_propagator(propagator);
            }
            if let Some(provider) = self.guard.tracer_provider() {
                global::set_tracer_provider(provider.clone());
            }
            if let Some(provider) = self.guard.meter_provider() {
                global::set_meter_provider(provider.clone());
            }
        }
        if let Some(warning) = &self.filter_warning {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| eprintln!("{warning}"));
        }
        Ok(self.guard)
    }

    /// Sets the subscriber for the current thread only, until the returned `DefaultGuard`
    /// drops. No global state changes (no propagator, no sampler, no enabled flag): for tests.
    pub fn set_default(self) -> (TelemetryGuard, tracing::subscriber::DefaultGuard) {
        let default = tracing::dispatcher::set_default(&self.dispatch);
        (self.guard, default)
    }
}

// ---- helpers --------------------------------------------------------------------------------

pub(crate) fn propagator(names: &Sourced<String>) -> Result<CompositePropagator, SetupError> {
    CompositePropagator::from_names(&names.value).map_err(|e| {
        let message = e.to_string();
        let problem = message
            .strip_prefix("OTEL_PROPAGATORS: ")
            .unwrap_or(&message)
            .to_owned();
        SetupError::invalid(
            names.from,
            problem,
            "use a comma-separated list of tracecontext, baggage, b3, b3multi, jaeger, xray, none",
        )
    })
}

pub(crate) fn build(
    settings: Settings,
    custom: Option<(Box<dyn SpanProcessor>, Option<DroppedSpans>)>,
    writer: Option<BoxMakeWriter>,
) -> Result<TelemetryParts, SetupError> {
    let filter_setting = "RUST_LOG / Telemetry::log_filter";
    let filter = env_filter_from(&settings.log_filter, filter_setting)?;
    let logs = match writer {
        Some(writer) => log_layer_with(settings.log_format, writer),
        None => log_layer_inner(settings.log_format, std::io::stdout, stdout_wants_colour()),
    };

    let (provider, dropped, propagator) = if settings.disabled {
        (None, None, None)
    } else {
        let propagator = propagator(&Sourced {
            value: settings.propagators.clone(),
            from: "OTEL_PROPAGATORS / Telemetry::propagators",
        })?;
        let mut builder = SdkTracerProvider::builder()
            .with_resource(settings.resource.clone())
            .with_sampler(PreSampled::new(settings.sampler.clone()));
        let mut dropped = None;
        match (&settings.exporter, custom) {
            (_, Some((processor, counter))) => {
                builder = builder.with_span_processor(DynProcessor(processor));
                dropped = counter;
            }
            (ExporterSettings::Otlp(otlp), None) => {
                let processor = otlp_processor(otlp)?;
                dropped = Some(processor.dropped_spans());
                builder = builder.with_span_processor(processor);
            }
            (ExporterSettings::Console, None) => {
                builder =
                    builder.with_span_processor(SimpleSpanProcessor::new(ConsoleExporter::new()));
            }
            (ExporterSettings::None | ExporterSettings::Custom, None) => {}
        }
        (Some(builder.build()), dropped, Some(propagator))
    };
    let meters = match &settings.metrics {
        MetricsSettings::Otlp(m) if !settings.disabled => Some(Meters {
            provider: meter_provider(m, settings.resource.clone())?,
            export_timeout: m.timeout,
        }),
        _ => None,
    };

    let otel = provider.as_ref().map(otel_layer);
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(logs);
    let dropped_targets = if settings.disabled {
        Vec::new()
    } else {
        dropped_span_targets(&settings.log_filter)
    };
    let filter_warning = (!dropped_targets.is_empty())
        .then(|| dropped_targets_warning(&settings.log_filter, &dropped_targets));
    Ok(TelemetryParts {
        dispatch: Dispatch::new(subscriber),
        guard: TelemetryGuard::new(provider, meters, dropped),
        propagator,
        settings,
        filter_warning,
    })
}

/// A meter provider whose periodic reader exports over OTLP, with the tracer's resource.
fn meter_provider(
    settings: &OtlpMetricsSettings,
    resource: Resource,
) -> Result<SdkMeterProvider, SetupError> {
    match settings.protocol {
        OtlpProtocol::Grpc => grpc_metric_exporter(settings, resource),
        OtlpProtocol::HttpProtobuf => http_metric_exporter(settings, resource),
    }
}

/// Where and how an OTLP exporter sends (spans and metrics resolve their own).
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
trait ExportTarget {
    /// The endpoint, the export timeout and the headers.
    fn target(&self) -> (&str, std::time::Duration, &[(String, String)]);
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
impl ExportTarget for OtlpSettings {
    fn target(&self) -> (&str, std::time::Duration, &[(String, String)]) {
        (&self.endpoint, self.timeout, &self.headers)
    }
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
impl ExportTarget for OtlpMetricsSettings {
    fn target(&self) -> (&str, std::time::Duration, &[(String, String)]) {
        (&self.endpoint, self.timeout, &self.headers)
    }
}

/// An exporter that could not be built, as the setup reports it.
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
fn exporter_error(error: impl std::fmt::Display) -> SetupError {
    SetupError::Exporter(error.to_string())
}

/// The meter provider over `exporter`, read every `settings.interval`.
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
fn periodic<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>(
    exporter: E,
    settings: &OtlpMetricsSettings,
    resource: Resource,
) -> SdkMeterProvider {
    let reader = PeriodicReader::builder(exporter)
        .with_interval(settings.interval)
        .build();
    SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build()
}

fn otlp_processor(otlp: &OtlpSettings) -> Result<BoundedBatchProcessor, SetupError> {
    match otlp.protocol {
        OtlpProtocol::Grpc => grpc_processor(otlp),
        OtlpProtocol::HttpProtobuf => http_processor(otlp),
    }
}

#[cfg(feature = "otlp-grpc")]
fn grpc_processor(otlp: &OtlpSettings) -> Result<BoundedBatchProcessor, SetupError> {
    check_tokio_runtime()?;
    let exporter = grpc_config(
        opentelemetry_otlp::SpanExporter::builder().with_tonic(),
        otlp,
    )
    .build()
    .map_err(exporter_error)?;
    Ok(BoundedBatchProcessor::new(exporter, otlp.max_queue_size))
}

#[cfg(feature = "otlp-grpc")]
fn grpc_metric_exporter(
    m: &OtlpMetricsSettings,
    resource: Resource,
) -> Result<SdkMeterProvider, SetupError> {
    check_tokio_runtime()?;
    let exporter = grpc_config(
        opentelemetry_otlp::MetricExporter::builder().with_tonic(),
        m,
    )
    .build()
    .map_err(exporter_error)?;
    Ok(periodic(exporter, m, resource))
}

/// The settings every OTLP/gRPC exporter (spans, metrics) is built with.
#[cfg(feature = "otlp-grpc")]
fn grpc_config<B>(builder: B, settings: &impl ExportTarget) -> B
where
    B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithTonicConfig,
{
    let (endpoint, timeout, headers) = settings.target();
    builder
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_metadata(grpc_metadata(headers))
}

#[cfg(feature = "otlp-grpc")]
fn check_tokio_runtime() -> Result<(), SetupError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SetupError::invalid(
            "OTEL_EXPORTER_OTLP_PROTOCOL / Telemetry::otlp_protocol",
            "OTLP grpc needs a tokio runtime and install() was called outside one",
            "call install() inside the runtime (e.g. in `#[tokio::main] async fn main`), \
             or use http/protobuf",
        ));
    }
    Ok(())
}

#[cfg(feature = "otlp-grpc")]
fn grpc_metadata(headers: &[(String, String)]) -> tonic::metadata::MetadataMap {
    use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

    let mut metadata = MetadataMap::new();
    for (name, value) in headers {
        // Names and values were validated as HTTP headers when resolved.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(name.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            metadata.insert(key, value);
        }
    }
    metadata
}

#[cfg(not(feature = "otlp-grpc"))]
fn grpc_processor(_: &OtlpSettings) -> Result<BoundedBatchProcessor, SetupError> {
    Err(not_compiled("otlp-grpc"))
}

#[cfg(not(feature = "otlp-grpc"))]
fn grpc_metric_exporter(
    _: &OtlpMetricsSettings,
    _: Resource,
) -> Result<SdkMeterProvider, SetupError> {
    Err(not_compiled("otlp-grpc"))
}

#[cfg(feature = "otlp-http")]
fn http_processor(otlp: &OtlpSettings) -> Result<BoundedBatchProcessor, SetupError> {
    let exporter = http_config(
        opentelemetry_otlp::SpanExporter::builder().with_http(),
        otlp,
    )
    .build()
    .map_err(exporter_error)?;
    Ok(BoundedBatchProcessor::new(exporter, otlp.max_queue_size))
}

#[cfg(feature = "otlp-http")]
fn http_metric_exporter(
    m: &OtlpMetricsSettings,
    resource: Resource,
) -> Result<SdkMeterProvider, SetupError> {
    let exporter = http_config(opentelemetry_otlp::MetricExporter::builder().with_http(), m)
        .build()
        .map_err(exporter_error)?;
    Ok(periodic(exporter, m, resource))
}

/// The settings every OTLP/HTTP exporter (spans, metrics) is built with: binary protobuf.
#[cfg(feature = "otlp-http")]
fn http_config<B>(builder: B, settings: &impl ExportTarget) -> B
where
    B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithHttpConfig,
{
    let (endpoint, timeout, headers) = settings.target();
    builder
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_headers(headers.iter().cloned().collect())
}

#[cfg(not(feature = "otlp-http"))]
fn http_processor(_: &OtlpSettings) -> Result<BoundedBatchProcessor, SetupError> {
    Err(not_compiled("otlp-http"))
}

#[cfg(not(feature = "otlp-http"))]
fn http_metric_exporter(
    _: &OtlpMetricsSettings,
    _: Resource,
) -> Result<SdkMeterProvider, SetupError> {
    Err(not_compiled("otlp-http"))
}

#[cfg(not(all(feature = "otlp-http", feature = "otlp-grpc")))]
fn not_compiled(feature: &str) -> SetupError {
    SetupError::invalid(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "this OTLP protocol was not compiled in",
        format!("enable the `{feature}` feature of otel-core"),
    )
}

/// A boxed processor given in code (the SDK builder wants a sized type).
#[derive(Debug)]
struct DynProcessor(Box<dyn SpanProcessor>);

impl SpanProcessor for DynProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx)
    }
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        self.0.on_end(span)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource)
    }
}
