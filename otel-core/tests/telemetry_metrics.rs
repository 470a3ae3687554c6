//! The metrics pipeline of the one-call setup: when traces go to OTLP, `install()` also makes
//! a global meter provider that exports to the same collector (`/v1/metrics` over
//! HTTP/protobuf) with the same resource; its last export happens at shutdown, within the
//! shutdown timeout; `OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL` and
//! `OTEL_METRIC_EXPORT_TIMEOUT` resolve like every other setting.
//!
//! Only `install_exports_metrics_to_the_same_collector` touches process-wide state (one
//! install per test binary); the others build without installing.

mod fake_collector;

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use otel_core::Telemetry;
use otel_core::telemetry::{
    ExporterSettings, MetricsExporter, MetricsSettings, OtlpMetricsSettings, OtlpProtocol,
    Settings, TracesExporter,
};

use fake_collector::{FakeCollector, contains};

fn with_env(vars: &[(&'static str, &'static str)]) -> Telemetry {
    Telemetry::builder()
        .env(vars.iter().copied().collect::<HashMap<_, _>>())
        .log_writer(std::io::sink)
}

fn resolve(vars: &[(&'static str, &'static str)]) -> Settings {
    with_env(vars).resolve().unwrap()
}

fn otlp_metrics(settings: &Settings) -> OtlpMetricsSettings {
    match &settings.metrics {
        MetricsSettings::Otlp(m) => m.clone(),
        other => panic!("expected OTLP metrics, got {other:?}"),
    }
}

/// The encoding of a sum data point whose value is `value`: `NumberDataPoint.as_int`
/// (field 6, `sfixed64`, little-endian).
fn as_int_point(value: i64) -> Vec<u8> {
    let mut bytes = vec![(6 << 3) | 1];
    bytes.extend(value.to_le_bytes());
    bytes
}

#[test]
fn install_exports_metrics_to_the_same_collector() {
    let collector = FakeCollector::start();
    let guard = with_env(&[])
        .service_name("metrics-checkout")
        .otlp_endpoint(collector.endpoint())
        .otlp_protocol(OtlpProtocol::HttpProtobuf)
        .install()
        .unwrap();
    assert!(guard.meter_provider().is_some());

    // What the layers of this workspace do: record on the global meter provider.
    let counter = opentelemetry::global::meter("test")
        .u64_counter("checkout.orders.placed")
        .build();
    counter.add(3, &[KeyValue::new("payment", "card")]);
    counter.add(4, &[KeyValue::new("payment", "card")]);
    tracing::info_span!("POST /orders").in_scope(|| {});

    // No interval elapses (60 s): the export comes from shutdown's flush.
    guard.shutdown(Duration::from_secs(5)).unwrap();

    let metrics = collector.received_on("/v1/metrics");
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    let export = &metrics[0];
    assert_eq!(
        export.content_type.as_deref(),
        Some("application/x-protobuf")
    );
    assert!(contains(&export.body, b"checkout.orders.placed"));
    assert!(contains(&export.body, b"payment") && contains(&export.body, b"card"));
    assert!(
        contains(&export.body, &as_int_point(7)),
        "the sum 3 + 4 is not in the export"
    );
    assert!(contains(&export.body, b"service.name"));
    assert!(contains(&export.body, b"metrics-checkout"));
    // The traces went to the same collector, with the same resource.
    let traces = collector.received_on("/v1/traces");
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert!(contains(&traces[0].body, b"POST /orders"));
    assert!(contains(&traces[0].body, b"metrics-checkout"));
}

#[test]
fn metrics_follow_traces_to_otlp_with_the_same_endpoint_rules() {
    let s = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
    let m = otlp_metrics(&s);
    assert_eq!(m.endpoint, "http://collector:4318/v1/metrics");
    assert_eq!(m.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(m.interval, Duration::from_secs(60));
    assert_eq!(m.timeout, Duration::from_secs(10));

    let s = resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    let m = otlp_metrics(&s);
    assert_eq!(
        (m.endpoint.as_str(), m.protocol),
        ("http://collector:4317", OtlpProtocol::Grpc)
    );

    // The metrics-specific variables, as the traces-specific ones: endpoint used as is,
    // headers added to the general ones, their own timeout.
    let s = resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://metrics:9090/otlp",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "tenant=a"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1500"),
    ]);
    let m = otlp_metrics(&s);
    assert_eq!(m.endpoint, "http://metrics:9090/otlp");
    assert_eq!(m.header_names(), ["api-key", "tenant"]);
    assert_eq!(m.timeout, Duration::from_millis(1500));
    assert!(!format!("{m:?}").contains("secret"));
    let ExporterSettings::Otlp(traces) = &s.exporter else {
        panic!("{:?}", s.exporter)
    };
    assert_eq!(traces.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(traces.header_names(), ["api-key"]);
}

#[test]
fn interval_and_timeout_from_env_and_code() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
    let s = resolve(&[
        endpoint,
        ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "2000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "7000"),
    ]);
    let m = otlp_metrics(&s);
    assert_eq!(m.interval, Duration::from_secs(5));
    assert_eq!(m.timeout, Duration::from_secs(2));

    // Without OTEL_METRIC_EXPORT_TIMEOUT, the OTLP timeout.
    let m = otlp_metrics(&resolve(&[
        endpoint,
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "7000"),
    ]));
    assert_eq!(m.timeout, Duration::from_secs(7));

    // Code wins.
    let s = with_env(&[
        endpoint,
        ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "2000"),
    ])
    .metric_export_interval(Duration::from_secs(15))
    .otlp_timeout(Duration::from_millis(800))
    .resolve()
    .unwrap();
    let m = otlp_metrics(&s);
    assert_eq!(m.interval, Duration::from_secs(15));
    assert_eq!(m.timeout, Duration::from_millis(800));
}

#[test]
fn metrics_exporter_from_env_and_code() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
    // `none` keeps the traces on OTLP and builds no meter provider.
    let parts = with_env(&[endpoint, ("OTEL_METRICS_EXPORTER", "none")])
        .build()
        .unwrap();
    assert_eq!(parts.settings().metrics, MetricsSettings::None);
    assert!(matches!(
        parts.settings().exporter,
        ExporterSettings::Otlp(_)
    ));
    assert!(parts.meter_provider().is_none());
    assert!(parts.tracer_provider().is_some());

    // Code wins over the environment, both ways.
    let s = with_env(&[endpoint, ("OTEL_METRICS_EXPORTER", "otlp")])
        .metrics_exporter(MetricsExporter::None)
        .resolve()
        .unwrap();
    assert_eq!(s.metrics, MetricsSettings::None);
    let s = with_env(&[("OTEL_METRICS_EXPORTER", "none")])
        .traces_exporter(TracesExporter::None)
        .metrics_exporter(MetricsExporter::Otlp)
        .resolve()
        .unwrap();
    assert_eq!(
        otlp_metrics(&s).endpoint,
        "http://localhost:4318/v1/metrics"
    );

    // Asked for explicitly, metrics go to OTLP whatever the traces do.
    let s = resolve(&[
        ("OTEL_TRACES_EXPORTER", "console"),
        ("OTEL_METRICS_EXPORTER", "OTLP"),
    ]);
    assert_eq!(s.exporter, ExporterSettings::Console);
    assert_eq!(
        otlp_metrics(&s).endpoint,
        "http://localhost:4318/v1/metrics"
    );
}

#[test]
fn nothing_configured_means_no_metrics_and_no_meter_provider() {
    // The console mode (debug builds) prints trace trees, not metrics.
    let parts = with_env(&[]).build().unwrap();
    let expected = if cfg!(debug_assertions) {
        ExporterSettings::Console
    } else {
        ExporterSettings::None
    };
    assert_eq!(parts.settings().exporter, expected);
    assert_eq!(parts.settings().metrics, MetricsSettings::None);
    assert!(parts.meter_provider().is_none());
    let (guard, _default) = parts.set_default();
    assert!(guard.meter_provider().is_none());
}

#[test]
fn disabled_sdk_has_no_meter_provider() {
    let parts = with_env(&[
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
    ])
    .build()
    .unwrap();
    assert_eq!(parts.settings().metrics, MetricsSettings::None);
    assert!(parts.meter_provider().is_none());

    let parts = with_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")])
        .disabled(true)
        .build()
        .unwrap();
    assert_eq!(parts.settings().metrics, MetricsSettings::None);
    assert!(parts.meter_provider().is_none());
}

/// A backend that takes traces but has no metrics pipeline (404 on `/v1/metrics`, as Jaeger):
/// the failed metrics export is not a shutdown error, and the traces still arrive.
#[test]
fn a_traces_only_backend_does_not_fail_shutdown() {
    let collector = FakeCollector::traces_only();
    let parts = with_env(&[])
        .otlp_endpoint(collector.endpoint())
        .otlp_protocol(OtlpProtocol::HttpProtobuf)
        .build()
        .unwrap();
    let meter = parts.meter_provider().unwrap().meter("test");
    let (guard, _default) = parts.set_default();
    meter.u64_counter("jobs").build().add(1, &[]);
    tracing::info_span!("GET /health").in_scope(|| {});

    guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(collector.received_on("/v1/metrics").len(), 1);
    let traces = collector.received_on("/v1/traces");
    assert_eq!(traces.len(), 1);
    assert!(contains(&traces[0].body, b"GET /health"));
}

/// A collector that accepts connections and never answers; the export timeout (10 s) is far
/// beyond the shutdown timeout, and the SDK's meter provider ignores the timeout it is given:
/// shutdown still returns at its deadline, over either protocol.
fn shutdown_with_a_hanging_collector(protocol: OtlpProtocol) -> Duration {
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let parts = with_env(&[])
        .otlp_endpoint(format!("http://{}", hanging.local_addr().unwrap()))
        .otlp_protocol(protocol)
        .build()
        .unwrap();
    assert_eq!(
        otlp_metrics(parts.settings()).timeout,
        Duration::from_secs(10)
    );
    let meter = parts.meter_provider().unwrap().meter("test");
    let (guard, _default) = parts.set_default();
    meter.u64_counter("jobs").build().add(1, &[]);

    let started = Instant::now();
    let result = guard.shutdown(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(result.is_err(), "the export cannot have succeeded");
    took
}

#[test]
fn shutdown_with_a_hanging_collector_is_bounded_over_http() {
    let took = shutdown_with_a_hanging_collector(OtlpProtocol::HttpProtobuf);
    assert!(took < Duration::from_millis(1000), "shutdown took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_hanging_collector_is_bounded_over_grpc() {
    let took =
        tokio::task::spawn_blocking(|| shutdown_with_a_hanging_collector(OtlpProtocol::Grpc))
            .await
            .unwrap();
    assert!(took < Duration::from_millis(1000), "shutdown took {took:?}");
}
