//! Test support (feature `testing`): a `tracing` subscriber bridged to an SDK tracer provider
//! that keeps finished spans in memory, plus captured log output, for asserting exact span
//! names, attributes, parent links and log lines.
//!
//! The subscriber is installed for the current thread only (`tracing::subscriber::set_default`),
//! so tests in one binary do not see each other's spans. Use a current-thread runtime
//! (`#[tokio::test]`, the default flavour) so spawned servers run on the test's thread.
//!
//! ```
//! use otel_core::testing::TestTelemetry;
//!
//! let telemetry = TestTelemetry::new();
//! tracing::info_span!("GET /users/{id}", "http.request.method" = "GET").in_scope(|| {});
//! let span = telemetry.span("GET /users/{id}");
//! assert_eq!(TestTelemetry::attr(&span, "http.request.method").unwrap().as_str(), "GET");
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, Sampler, SdkTracerProvider, ShouldSample, SpanData,
};
use tracing_subscriber::layer::SubscriberExt;

use crate::sampling::PreSampled;

/// In-memory telemetry for one test: spans, metrics and log lines.
pub struct TestTelemetry {
    spans: InMemorySpanExporter,
    tracer_provider: SdkTracerProvider,
    metrics: InMemoryMetricExporter,
    meter_provider: SdkMeterProvider,
    logs: LogBuffer,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTelemetry {
    /// Installs a thread-local subscriber that samples everything (parent-based always-on).
    pub fn new() -> Self {
        Self::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
    }

    /// Installs a thread-local subscriber whose SDK uses `sampler` (wrapped in
    /// [`PreSampled`]). Note that the sampler [`crate::sampling::decide`] consults is
    /// process-global: a test that needs another sampler there should live in its own test
    /// binary and call [`crate::sampling::set_sampler`].
    pub fn with_sampler<S: ShouldSample + Clone + 'static>(sampler: S) -> Self {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_sampler(PreSampled::new(sampler))
            .with_simple_exporter(spans.clone())
            .build();
        let tracer = tracer_provider.tracer("otel-core-test");
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            // The same log layer `Telemetry` installs: lines carry trace_id, span_id and
            // request_id inside a request.
            .with(crate::telemetry::log_layer_with(
                crate::telemetry::LogFormat::Text,
                logs.clone(),
            ));
        let guard = tracing::subscriber::set_default(subscriber);
        TestTelemetry {
            spans,
            tracer_provider,
            metrics,
            meter_provider,
            logs,
            _guard: guard,
        }
    }

    /// Every span finished so far, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        let _ = self.tracer_provider.force_flush();
        self.spans.get_finished_spans().unwrap_or_default()
    }

    /// The one finished span named `name`. Panics, listing the names seen, when there is not
    /// exactly one.
    pub fn span(&self, name: &str) -> SpanData {
        let spans = self.spans();
        let mut matching: Vec<SpanData> =
            spans.iter().filter(|s| s.name == name).cloned().collect();
        assert_eq!(
            matching.len(),
            1,
            "expected exactly one span named {name:?}; finished spans: {:?}",
            spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
        );
        matching.remove(0)
    }

    /// All finished spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    /// The value of attribute `key` on `span`.
    pub fn attr(span: &SpanData, key: &str) -> Option<Value> {
        let key = Key::from(key.to_owned());
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    }

    /// The value of attribute `key` on a span event.
    pub fn event_attr(event: &opentelemetry::trace::Event, key: &str) -> Option<Value> {
        event
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    /// The data points of the u64 counter `name` in the latest metric export, each as
    /// (the value of its attribute `by`, rendered as text; the count).
    pub fn u64_counter_by(&self, name: &str, by: &str) -> Vec<(String, u64)> {
        let exports = self.metrics();
        let Some(latest) = exports.last() else {
            return Vec::new();
        };
        let mut points = Vec::new();
        for scope in latest.scope_metrics() {
            for metric in scope.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                    for point in sum.data_points() {
                        let label = point
                            .attributes()
                            .find(|kv| kv.key.as_str() == by)
                            .map(|kv| kv.value.to_string())
                            .unwrap_or_default();
                        points.push((label, point.value()));
                    }
                }
            }
        }
        points
    }

    /// Whether `child`'s parent is `parent` (same trace, parent span id matches).
    pub fn is_child_of(child: &SpanData, parent: &SpanData) -> bool {
        child.span_context.trace_id() == parent.span_context.trace_id()
            && child.parent_span_id == parent.span_context.span_id()
            && child.parent_span_id != SpanId::INVALID
    }

    /// Forgets the spans finished so far.
    pub fn reset(&self) {
        self.spans.reset();
    }

    /// The tracer provider behind the subscriber (for code that needs an SDK tracer).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// A meter provider whose metrics [`metrics`](Self::metrics) returns. Give it to a layer's
    /// `meter_provider(..)` builder method to assert its metrics.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Flushes and returns the metrics recorded through [`meter_provider`](Self::meter_provider).
    pub fn metrics(&self) -> Vec<ResourceMetrics> {
        let _ = self.meter_provider.force_flush();
        self.metrics.get_finished_metrics().unwrap_or_default()
    }

    /// Everything logged on this thread so far, as text lines.
    pub fn logs(&self) -> String {
        self.logs.contents()
    }
}

/// A `MakeWriter` that appends to a shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
