//! `OTEL_METRICS_EXPORTER=none` with traces on OTLP (its own test binary: it installs the
//! process-wide globals): the traces reach the collector, nothing reaches `/v1/metrics`,
//! and the global meter provider stays the no-op one.

// Shared with telemetry_metrics.rs, which uses all of it.
#[allow(dead_code)]
mod fake_collector;

use std::collections::HashMap;
use std::time::Duration;

use otel_core::Telemetry;
use otel_core::telemetry::{MetricsSettings, OtlpProtocol};

use fake_collector::{FakeCollector, contains};

#[test]
fn metrics_exporter_none_sends_traces_only() {
    let collector = FakeCollector::start();
    let telemetry = Telemetry::builder()
        .env(HashMap::from([("OTEL_METRICS_EXPORTER", "none")]))
        .service_name("traces-only")
        .otlp_endpoint(collector.endpoint())
        .otlp_protocol(OtlpProtocol::HttpProtobuf)
        .log_writer(std::io::sink);
    assert_eq!(telemetry.resolve().unwrap().metrics, MetricsSettings::None);
    let guard = telemetry.install().unwrap();
    assert!(guard.meter_provider().is_none());

    opentelemetry::global::meter("test")
        .u64_counter("checkout.orders.placed")
        .build()
        .add(1, &[]);
    tracing::info_span!("POST /orders").in_scope(|| {});
    guard.shutdown(Duration::from_secs(5)).unwrap();

    let traces = collector.received_on("/v1/traces");
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert_eq!(
        traces[0].content_type.as_deref(),
        Some("application/x-protobuf")
    );
    assert!(contains(&traces[0].body, b"POST /orders"));
    assert!(collector.received_on("/v1/metrics").is_empty());
}
