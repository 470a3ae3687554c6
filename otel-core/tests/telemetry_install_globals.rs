//! Process-wide install (its own test binary): the sampler of `sampling::decide`, the global
//! text-map propagator and the enabled flag come from the same settings as the SDK.

use std::collections::HashMap;

use http::HeaderMap;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
use otel_core::Telemetry;
use otel_core::sampling::{self, Decision};

#[test]
fn install_shares_the_sampler_and_installs_the_propagators() {
    let spans = InMemorySpanExporter::default();
    let guard = Telemetry::builder()
        .env(HashMap::from([
            ("OTEL_TRACES_SAMPLER", "always_off"),
            ("OTEL_PROPAGATORS", "tracecontext"),
        ]))
        .span_processor(SimpleSpanProcessor::new(spans.clone()))
        .log_writer(std::io::sink)
        .install()
        .unwrap();
    assert!(sampling::is_enabled());

    // The server layers' decision uses the installed sampler: always_off.
    assert!(matches!(
        sampling::decide(&Context::new(), "GET /", SpanKind::Server),
        Decision::Unsampled(_)
    ));
    // And so does the SDK behind the global subscriber.
    tracing::info_span!("GET /").in_scope(|| {});
    guard.force_flush();
    assert!(spans.get_finished_spans().unwrap().is_empty());

    // The global propagator is exactly `tracecontext`: no baggage header.
    let sc = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::new()
        .with_remote_span_context(sc)
        .with_baggage([KeyValue::new("tenant", "a")]);
    let mut headers = HeaderMap::new();
    otel_core::propagation::inject(&cx, &mut headers);
    assert_eq!(
        headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert!(headers.get("baggage").is_none(), "{headers:?}");
}
