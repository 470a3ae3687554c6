//! [`Telemetry`]: the builder of the one-call setup, and [`Settings`], what it resolved from
//! code and environment (code wins).
//!
//! ```
//! use std::collections::HashMap;
//! use otel_core::telemetry::{ExporterSettings, OtlpProtocol, Telemetry};
//!
//! let settings = Telemetry::builder()
//!     .service_name("checkout")
//!     .env(HashMap::from([
//!         ("OTEL_SERVICE_NAME", "ignored: code wins"),
//!         ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
//!     ]))
//!     .resolve()
//!     .unwrap();
//! assert_eq!(settings.service_name, "checkout");
//! let ExporterSettings::Otlp(otlp) = settings.exporter else { panic!() };
//! assert_eq!(otlp.endpoint, "http://collector:4318/v1/traces");
//! assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
//! ```

use std::fmt;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SpanExporter, SpanProcessor};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use super::config::{
    self, EnvSource, LogFormat, MetricsExporter, OtlpProtocol, ProcessEnv, Sourced, TracesExporter,
    vars,
};
use super::error::SetupError;
use super::export_queue::{BoundedBatchProcessor, DroppedSpans};
use super::guard::TelemetryGuard;
use super::parts::{self, TelemetryParts};
use crate::attributes::semconv;

/// The default propagators (`OTEL_PROPAGATORS` unset).
pub const DEFAULT_PROPAGATORS: &str = "tracecontext,baggage";
/// The default log filter (`RUST_LOG` unset).
pub const DEFAULT_LOG_FILTER: &str = "info";
/// The default export queue size (`OTEL_BSP_MAX_QUEUE_SIZE` unset).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;
/// The default OTLP export timeout (`OTEL_EXPORTER_OTLP_TIMEOUT` unset).
pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time between two metric exports (`OTEL_METRIC_EXPORT_INTERVAL` unset).
pub const DEFAULT_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// One-call setup of the OpenTelemetry SDK and the `tracing` subscriber.
///
/// Every setting can come from code (a builder method) or from the standard environment
/// variable; code wins. [`install`](Self::install) refuses bad values with a [`SetupError`]
/// that names the setting and the fix.
///
/// ```no_run
/// # fn main() -> Result<(), otel_core::SetupError> {
/// let _guard = otel_core::Telemetry::builder()
///     .service_name("checkout")
///     .service_version(env!("CARGO_PKG_VERSION"))
///     .environment("production")
///     .install()?; // flushes and shuts down when dropped
/// # Ok(()) }
/// ```
pub struct Telemetry {
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
    resource_attributes: Vec<KeyValue>,
    sampler: Option<Sampler>,
    traces_exporter: Option<TracesExporter>,
    metrics_exporter: Option<MetricsExporter>,
    metric_export_interval: Option<Duration>,
    custom: Option<(Box<dyn SpanProcessor>, Option<DroppedSpans>)>,
    otlp_endpoint: Option<String>,
    otlp_protocol: Option<OtlpProtocol>,
    otlp_headers: Vec<(String, String)>,
    otlp_timeout: Option<Duration>,
    max_queue_size: Option<usize>,
    propagators: Option<String>,
    disabled: Option<bool>,
    log_filter: Option<String>,
    log_format: Option<LogFormat>,
    log_writer: Option<BoxMakeWriter>,
    env: Box<dyn EnvSource>,
    /// The first value a builder method refused: (method, problem, fix), reported by
    /// [`resolve`](Telemetry::resolve) so that bad configuration never installs silently.
    refused: Option<(&'static str, String, &'static str)>,
}

/// What [`Telemetry`] resolved from code and environment: returned by
/// [`Telemetry::resolve`] (handy to print the effective configuration at startup).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// `OTEL_SDK_DISABLED=true` or [`Telemetry::disabled`]: no spans, no propagation.
    pub disabled: bool,
    /// `service.name`.
    pub service_name: String,
    /// The full resource: `service.*`, `deployment.environment.name`, `telemetry.sdk.*` and
    /// every extra attribute.
    pub resource: Resource,
    /// The sampler (the SDK gets it wrapped in [`PreSampled`](crate::sampling::PreSampled)).
    pub sampler: Sampler,
    /// Where spans go.
    pub exporter: ExporterSettings,
    /// Where metrics go (the global meter provider's exporter).
    pub metrics: MetricsSettings,
    /// The propagator names, comma-separated.
    pub propagators: String,
    /// The log filter directives.
    pub log_filter: String,
    /// The log line format.
    pub log_format: LogFormat,
}

/// Where spans go, as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExporterSettings {
    /// Nowhere.
    None,
    /// Finished local traces printed as a tree on stderr.
    Console,
    /// OTLP.
    Otlp(OtlpSettings),
    /// A span exporter or processor given in code.
    Custom,
}

/// Where metrics go, as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsSettings {
    /// Nowhere: no meter provider (the default unless traces go to OTLP).
    None,
    /// OTLP, read by a periodic reader.
    Otlp(OtlpMetricsSettings),
}

/// The resolved OTLP metric exporter settings. `Debug` shows header names, never their
/// values.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpMetricsSettings {
    /// The URL metrics are sent to (for `http/protobuf`, including `/v1/metrics`).
    pub endpoint: String,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// The time between two exports (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub interval: Duration,
    /// The export timeout (`OTEL_METRIC_EXPORT_TIMEOUT`, else the OTLP timeout).
    pub timeout: Duration,
    pub(crate) headers: Vec<(String, String)>,
}

impl OtlpMetricsSettings {
    /// The names of the headers sent with every export (values are kept private).
    pub fn header_names(&self) -> Vec<&str> {
        names(&self.headers)
    }
}

impl fmt::Debug for OtlpMetricsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpMetricsSettings")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("header_names", &self.header_names())
            .finish()
    }
}

/// The resolved OTLP exporter settings. `Debug` shows header names, never their values.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpSettings {
    /// The URL spans are sent to (for `http/protobuf`, including `/v1/traces`).
    pub endpoint: String,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// The export timeout.
    pub timeout: Duration,
    /// Spans that may wait for export; more are dropped and counted.
    pub max_queue_size: usize,
    pub(crate) headers: Vec<(String, String)>,
}

impl OtlpSettings {
    /// The names of the headers sent with every export (values are kept private: they are
    /// often API keys).
    pub fn header_names(&self) -> Vec<&str> {
        names(&self.headers)
    }
}

/// The names of exporter headers, for `Debug` and `header_names` (never the values).
fn names(headers: &[(String, String)]) -> Vec<&str> {
    headers.iter().map(|(k, _)| k.as_str()).collect()
}

impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("timeout", &self.timeout)
            .field("max_queue_size", &self.max_queue_size)
            .field("header_names", &self.header_names())
            .finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::builder()
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.service_name)
            .field("traces_exporter", &self.traces_exporter)
            .field("metrics_exporter", &self.metrics_exporter)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Starts a builder that reads the process environment.
    pub fn builder() -> Self {
        Telemetry {
            service_name: None,
            service_version: None,
            environment: None,
            resource_attributes: Vec::new(),
            sampler: None,
            traces_exporter: None,
            metrics_exporter: None,
            metric_export_interval: None,
            custom: None,
            otlp_endpoint: None,
            otlp_protocol: None,
            otlp_headers: Vec::new(),
            otlp_timeout: None,
            max_queue_size: None,
            propagators: None,
            disabled: None,
            log_filter: None,
            log_format: None,
            log_writer: None,
            env: Box::new(ProcessEnv),
            refused: None,
        }
    }

    /// Reads environment variables from `env` instead of the process environment (tests:
    /// pass a `HashMap`).
    pub fn env(mut self, env: impl EnvSource + 'static) -> Self {
        self.env = Box::new(env);
        self
    }

    /// `service.name` (wins over `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// `service.version`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// `deployment.environment.name` (`production`, `staging`, ...).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// An extra resource attribute (wins over the same key in `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn resource_attribute(mut self, kv: KeyValue) -> Self {
        self.resource_attributes.push(kv);
        self
    }

    /// The sampler (wins over `OTEL_TRACES_SAMPLER`).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Shorthand for a parent-based sampler that samples `ratio` of new traces.
    /// A ratio outside `0..=1` (or NaN) is refused by [`install`](Self::install).
    pub fn sampling_ratio(self, ratio: f64) -> Self {
        if !(0.0..=1.0).contains(&ratio) {
            return self.refuse(
                "Telemetry::sampling_ratio",
                format!("{ratio} is not a ratio between 0 and 1"),
                "set a number such as `0.25` (0 samples nothing, 1 everything)",
            );
        }
        self.sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
    }

    /// Where spans go (wins over `OTEL_TRACES_EXPORTER`).
    pub fn traces_exporter(mut self, exporter: TracesExporter) -> Self {
        self.traces_exporter = Some(exporter);
        self
    }

    /// Where metrics go (wins over `OTEL_METRICS_EXPORTER`). By default metrics go to OTLP
    /// when traces do, and nowhere otherwise.
    pub fn metrics_exporter(mut self, exporter: MetricsExporter) -> Self {
        self.metrics_exporter = Some(exporter);
        self
    }

    /// The time between two metric exports (wins over `OTEL_METRIC_EXPORT_INTERVAL`; default
    /// 60 s). Shutdown exports what is left whatever the interval.
    pub fn metric_export_interval(mut self, interval: Duration) -> Self {
        if interval.is_zero() {
            return self.refuse(
                "Telemetry::metric_export_interval",
                "a zero interval exports without pause".to_owned(),
                "set an interval such as `Duration::from_secs(60)` (the default)",
            );
        }
        self.metric_export_interval = Some(interval);
        self
    }

    /// Sends spans to `exporter` through the bounded batch processor (wins over every
    /// exporter setting).
    pub fn span_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        let queue = self.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE);
        let processor = BoundedBatchProcessor::new(exporter, queue);
        let dropped = processor.dropped_spans();
        self.custom = Some((Box::new(processor), Some(dropped)));
        self
    }

    /// Gives finished spans to `processor` (e.g. a `SimpleSpanProcessor` in tests; wins over
    /// every exporter setting).
    pub fn span_processor<P: SpanProcessor + 'static>(mut self, processor: P) -> Self {
        self.custom = Some((Box::new(processor), None));
        self
    }

    /// The OTLP base endpoint, like `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is appended
    /// for `http/protobuf`). Setting it selects the OTLP exporter unless one is chosen.
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// The OTLP transport (wins over `OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.otlp_protocol = Some(protocol);
        self
    }

    /// A header sent with every OTLP export (wins over `OTEL_EXPORTER_OTLP_HEADERS`).
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp_headers.push((name.into(), value.into()));
        self
    }

    /// The OTLP export timeout (wins over `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub fn otlp_timeout(mut self, timeout: Duration) -> Self {
        if timeout.is_zero() {
            return self.refuse(
                "Telemetry::otlp_timeout",
                "a zero timeout fails every export".to_owned(),
                "set a timeout such as `Duration::from_secs(10)`",
            );
        }
        self.otlp_timeout = Some(timeout);
        self
    }

    /// How many finished spans may wait for export (wins over `OTEL_BSP_MAX_QUEUE_SIZE`);
    /// more are dropped and counted. Call before [`span_exporter`](Self::span_exporter).
    pub fn max_queue_size(mut self, spans: usize) -> Self {
        if spans == 0 {
            return self.refuse(
                "Telemetry::max_queue_size",
                "a queue of 0 spans drops every span".to_owned(),
                "set a size such as 2048 (the default)",
            );
        }
        self.max_queue_size = Some(spans);
        self
    }

    /// Remembers the first refused value; [`resolve`](Self::resolve) reports it.
    fn refuse(mut self, setting: &'static str, problem: String, fix: &'static str) -> Self {
        self.refused.get_or_insert((setting, problem, fix));
        self
    }

    /// Propagator names, comma-separated (`tracecontext,baggage,b3`; wins over
    /// `OTEL_PROPAGATORS`).
    pub fn propagators(mut self, names: impl Into<String>) -> Self {
        self.propagators = Some(names.into());
        self
    }

    /// Switches telemetry off (`true`) or on (wins over `OTEL_SDK_DISABLED`).
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }

    /// The log filter, `RUST_LOG` syntax (wins over `RUST_LOG`; default `info`).
    pub fn log_filter(mut self, directives: impl Into<String>) -> Self {
        self.log_filter = Some(directives.into());
        self
    }

    /// The log line format (wins over `OTEL_LOG_FORMAT`; default text).
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = Some(format);
        self
    }

    /// Where log lines go (default stdout).
    pub fn log_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.log_writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Resolves every setting from code and environment without installing anything.
    pub fn resolve(&self) -> Result<Settings, SetupError> {
        if let Some((setting, problem, fix)) = &self.refused {
            return Err(SetupError::invalid(setting, problem.clone(), *fix));
        }
        let env = &*self.env;
        let disabled = match self.disabled {
            Some(d) => d,
            None => match config::read(env, vars::OTEL_SDK_DISABLED) {
                Some(v) => config::parse_bool(&v)?,
                None => false,
            },
        };
        let log_filter = self
            .log_filter
            .clone()
            .or_else(|| config::read(env, vars::RUST_LOG).map(|s| s.value))
            .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        let log_filter_setting = if self.log_filter.is_some() {
            "Telemetry::log_filter"
        } else {
            vars::RUST_LOG
        };
        super::filter::env_filter_from(&log_filter, log_filter_setting)?;
        let log_format = match self.log_format {
            Some(f) => f,
            None => match config::read(env, vars::OTEL_LOG_FORMAT) {
                Some(v) => config::parse_log_format(&v)?,
                None => LogFormat::Text,
            },
        };

        let (service_name, resource) = self.resource()?;
        let sampler = match &self.sampler {
            Some(s) => s.clone(),
            None => match config::read(env, vars::OTEL_TRACES_SAMPLER) {
                Some(name) if !disabled => config::parse_sampler(
                    &name,
                    config::read(env, vars::OTEL_TRACES_SAMPLER_ARG).as_ref(),
                )?,
                _ => config::default_sampler(),
            },
        };
        let propagators = match &self.propagators {
            Some(p) => Sourced {
                value: p.clone(),
                from: "Telemetry::propagators",
            },
            None => config::read(env, vars::OTEL_PROPAGATORS).unwrap_or(Sourced {
                value: DEFAULT_PROPAGATORS.to_owned(),
                from: vars::OTEL_PROPAGATORS,
            }),
        };
        if !disabled {
            parts::propagator(&propagators)?;
        }
        let (exporter, metrics) = if disabled {
            (ExporterSettings::None, MetricsSettings::None)
        } else {
            let exporter = self.exporter_settings()?;
            let metrics = self.metrics_settings(&exporter)?;
            (exporter, metrics)
        };
        Ok(Settings {
            disabled,
            service_name,
            resource,
            sampler,
            exporter,
            metrics,
            propagators: propagators.value,
            log_filter,
            log_format,
        })
    }

    /// Builds the tracer provider, propagator and subscriber without touching any global
    /// state; [`TelemetryParts::init`] installs them, [`TelemetryParts::set_default`] sets the
    /// subscriber for the current thread only (tests).
    pub fn build(mut self) -> Result<TelemetryParts, SetupError> {
        let settings = self.resolve()?;
        let custom = self.custom.take();
        let writer = self.log_writer.take();
        parts::build(settings, custom, writer)
    }

    /// Builds and installs: the global `tracing` subscriber, the text-map propagator, the
    /// sampler of [`sampling::decide`](crate::sampling::decide), the global tracer provider.
    /// A second call returns [`SetupError::AlreadyInstalled`].
    pub fn install(self) -> Result<TelemetryGuard, SetupError> {
        self.build()?.init()
    }

    // ---- helpers ----------------------------------------------------------------------------

    fn resource(&self) -> Result<(String, Resource), SetupError> {
        let env = &*self.env;
        let mut attributes = match config::read(env, vars::OTEL_RESOURCE_ATTRIBUTES) {
            Some(v) => config::to_key_values(config::parse_key_values(&v, true)?),
            None => Vec::new(),
        };
        let from_attributes = attributes
            .iter()
            .find(|kv| kv.key.as_str() == semconv::attribute::SERVICE_NAME)
            .map(|kv| kv.value.to_string());
        let service_name = self
            .service_name
            .clone()
            .or_else(|| config::read(env, vars::OTEL_SERVICE_NAME).map(|s| s.value))
            .or(from_attributes)
            .unwrap_or_else(default_service_name);
        if let Some(v) = &self.service_version {
            attributes.push(KeyValue::new(
                semconv::attribute::SERVICE_VERSION,
                v.clone(),
            ));
        }
        if let Some(e) = &self.environment {
            attributes.push(KeyValue::new(
                semconv::attribute::DEPLOYMENT_ENVIRONMENT_NAME,
                e.clone(),
            ));
        }
        attributes.extend(self.resource_attributes.iter().cloned());
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(attributes)
            .with_service_name(service_name.clone())
            .build();
        Ok((service_name, resource))
    }

    fn exporter_settings(&self) -> Result<ExporterSettings, SetupError> {
        if self.custom.is_some() {
            return Ok(ExporterSettings::Custom);
        }
        let env = &*self.env;
        let traces_endpoint = config::read(env, vars::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
        let base_endpoint = match &self.otlp_endpoint {
            Some(e) => Some(Sourced {
                value: e.clone(),
                from: "Telemetry::otlp_endpoint",
            }),
            None => config::read(env, vars::OTEL_EXPORTER_OTLP_ENDPOINT),
        };
        let kind = match self.traces_exporter {
            Some(k) => k,
            None => match config::read(env, vars::OTEL_TRACES_EXPORTER) {
                Some(v) => config::parse_exporter(&v)?,
                None if base_endpoint.is_some() || traces_endpoint.is_some() => {
                    TracesExporter::Otlp
                }
                // The embedded default: the trace tree in the terminal, in debug builds only.
                None if cfg!(debug_assertions) => TracesExporter::Console,
                None => TracesExporter::None,
            },
        };
        match kind {
            TracesExporter::None => return Ok(ExporterSettings::None),
            TracesExporter::Console => return Ok(ExporterSettings::Console),
            TracesExporter::Otlp => {}
        }

        let target = self.otlp_target(&TRACES)?;
        let max_queue_size = match self.max_queue_size {
            Some(n) => n,
            None => match config::read(env, vars::OTEL_BSP_MAX_QUEUE_SIZE) {
                Some(v) => config::parse_queue_size(&v)?,
                None => DEFAULT_MAX_QUEUE_SIZE,
            },
        };
        Ok(ExporterSettings::Otlp(OtlpSettings {
            endpoint: target.endpoint,
            protocol: target.protocol,
            timeout: target.timeout,
            max_queue_size,
            headers: target.headers,
        }))
    }

    fn metrics_settings(&self, traces: &ExporterSettings) -> Result<MetricsSettings, SetupError> {
        let env = &*self.env;
        let kind = match self.metrics_exporter {
            Some(k) => k,
            None => match config::read(env, vars::OTEL_METRICS_EXPORTER) {
                Some(v) => config::parse_metrics_exporter(&v)?,
                // Metrics follow traces to the collector; the console prints trace trees only.
                None if matches!(traces, ExporterSettings::Otlp(_)) => MetricsExporter::Otlp,
                None => MetricsExporter::None,
            },
        };
        // Checked whatever the exporter, so that a typo never waits for the day it matters.
        let interval = match self.metric_export_interval {
            Some(i) => i,
            None => match config::read(env, vars::OTEL_METRIC_EXPORT_INTERVAL) {
                Some(v) => config::parse_positive_millis(&v)?,
                None => DEFAULT_METRIC_EXPORT_INTERVAL,
            },
        };
        let export_timeout = config::read(env, vars::OTEL_METRIC_EXPORT_TIMEOUT)
            .map(|v| config::parse_positive_millis(&v))
            .transpose()?;
        if kind == MetricsExporter::None {
            return Ok(MetricsSettings::None);
        }
        let target = self.otlp_target(&METRICS)?;
        // Code wins: `otlp_timeout` bounds every export; else the metric-specific variable.
        let timeout = match (self.otlp_timeout, export_timeout) {
            (None, Some(t)) => t,
            _ => target.timeout,
        };
        Ok(MetricsSettings::Otlp(OtlpMetricsSettings {
            endpoint: target.endpoint,
            protocol: target.protocol,
            interval,
            timeout,
            headers: target.headers,
        }))
    }

    /// Endpoint, protocol, headers and timeout of one signal: code first, then the
    /// signal-specific variables, then the general `OTEL_EXPORTER_OTLP_*` ones.
    fn otlp_target(&self, signal: &Signal) -> Result<OtlpTarget, SetupError> {
        let env = &*self.env;
        let signal_endpoint = config::read(env, signal.endpoint);
        let base_endpoint = match &self.otlp_endpoint {
            Some(e) => Some(Sourced {
                value: e.clone(),
                from: "Telemetry::otlp_endpoint",
            }),
            None => config::read(env, vars::OTEL_EXPORTER_OTLP_ENDPOINT),
        };
        let protocol = match self.otlp_protocol {
            Some(p) => Sourced {
                value: p,
                from: "Telemetry::otlp_protocol",
            },
            None => match config::read(env, signal.protocol)
                .or_else(|| config::read(env, vars::OTEL_EXPORTER_OTLP_PROTOCOL))
            {
                Some(v) => Sourced {
                    value: config::parse_protocol(&v)?,
                    from: v.from,
                },
                None => Sourced {
                    value: default_protocol(),
                    from: vars::OTEL_EXPORTER_OTLP_PROTOCOL,
                },
            },
        };
        check_protocol_compiled(&protocol)?;
        // Code wins; a code-given base endpoint also wins over the env signal endpoint.
        let endpoint = match (&self.otlp_endpoint, signal_endpoint, base_endpoint) {
            (Some(_), _, Some(base)) | (None, None, Some(base)) => {
                let base = config::validate_endpoint(&base)?;
                match protocol.value {
                    OtlpProtocol::HttpProtobuf => config::http_signal_url(&base, signal.name),
                    OtlpProtocol::Grpc => base,
                }
            }
            (None, Some(endpoint), _) => config::validate_endpoint(&endpoint)?,
            _ => match protocol.value {
                OtlpProtocol::Grpc => "http://localhost:4317".to_owned(),
                OtlpProtocol::HttpProtobuf => {
                    config::http_signal_url("http://localhost:4318", signal.name)
                }
            },
        };

        let mut headers: Vec<(String, String)> = Vec::new();
        for name in [vars::OTEL_EXPORTER_OTLP_HEADERS, signal.headers] {
            if let Some(v) = config::read(env, name) {
                for (k, value) in config::parse_key_values(&v, false)? {
                    merge_header(&mut headers, k, value, name)?;
                }
            }
        }
        for (k, v) in &self.otlp_headers {
            merge_header(&mut headers, k.clone(), v.clone(), "Telemetry::otlp_header")?;
        }

        let timeout = match self.otlp_timeout {
            Some(t) => t,
            None => match config::read(env, signal.timeout)
                .or_else(|| config::read(env, vars::OTEL_EXPORTER_OTLP_TIMEOUT))
            {
                Some(v) => config::parse_millis(&v)?,
                None => DEFAULT_OTLP_TIMEOUT,
            },
        };
        Ok(OtlpTarget {
            endpoint,
            protocol: protocol.value,
            timeout,
            headers,
        })
    }
}

/// The signal-specific OTLP variables of one signal.
struct Signal {
    /// The path segment of `/v1/{name}`.
    name: &'static str,
    endpoint: &'static str,
    protocol: &'static str,
    headers: &'static str,
    timeout: &'static str,
}

const TRACES: Signal = Signal {
    name: "traces",
    endpoint: vars::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    protocol: vars::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    headers: vars::OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    timeout: vars::OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
};

const METRICS: Signal = Signal {
    name: "metrics",
    endpoint: vars::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    protocol: vars::OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    headers: vars::OTEL_EXPORTER_OTLP_METRICS_HEADERS,
    timeout: vars::OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
};

/// Where and how one signal is exported over OTLP.
struct OtlpTarget {
    endpoint: String,
    protocol: OtlpProtocol,
    timeout: Duration,
    headers: Vec<(String, String)>,
}

fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    match exe {
        Some(name) => format!("unknown_service:{name}"),
        None => "unknown_service".to_owned(),
    }
}

fn default_protocol() -> OtlpProtocol {
    if cfg!(feature = "otlp-http") || !cfg!(feature = "otlp-grpc") {
        OtlpProtocol::HttpProtobuf
    } else {
        OtlpProtocol::Grpc
    }
}

fn check_protocol_compiled(protocol: &Sourced<OtlpProtocol>) -> Result<(), SetupError> {
    let (compiled, feature) = match protocol.value {
        OtlpProtocol::Grpc => (cfg!(feature = "otlp-grpc"), "otlp-grpc"),
        OtlpProtocol::HttpProtobuf => (cfg!(feature = "otlp-http"), "otlp-http"),
    };
    if compiled {
        Ok(())
    } else {
        Err(SetupError::invalid(
            protocol.from,
            format!("OTLP {} was not compiled in", protocol.value.as_str()),
            format!("enable the `{feature}` feature of otel-core, or choose the other protocol"),
        ))
    }
}

/// Adds a header (a later one with the same name wins), refusing names or values that are
/// not valid in HTTP. The value never appears in the error: it may be a secret.
fn merge_header(
    headers: &mut Vec<(String, String)>,
    name: String,
    value: String,
    setting: &'static str,
) -> Result<(), SetupError> {
    let name = name.to_ascii_lowercase();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(SetupError::invalid(
            setting,
            format!("{name:?} is not a valid header name"),
            "use letters, digits and `-` in header names",
        ));
    }
    if http::HeaderValue::from_str(&value).is_err() {
        return Err(SetupError::invalid(
            setting,
            format!("the value of header {name:?} is not a valid header value"),
            "use visible ASCII (percent-encode other bytes in the environment variable)",
        ));
    }
    headers.retain(|(k, _)| *k != name);
    headers.push((name, value));
    Ok(())
}
