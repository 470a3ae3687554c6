//! "All 8 flag bits kept when the trace is continued", seen from outside: a W3C context is
//! extracted, a bridged `tracing` span continues it, and the outgoing `traceparent` carries
//! the same flags. Also pins the SDK behaviours that lose the W3C `random` flag.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use otel_core::propagation::TraceContextPropagator;
use otel_core::testing::TestTelemetry;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn incoming(flags: &str) -> Context {
    let carrier = HashMap::from([(
        "traceparent".to_owned(),
        format!("00-{TRACE}-{PARENT}-{flags}"),
    )]);
    TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier)
}

fn outgoing(cx: &Context) -> String {
    let mut out = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out.remove("traceparent").unwrap_or_default()
}

#[test]
fn bridged_server_span_keeps_sampled_and_random_flags() {
    let telemetry = TestTelemetry::new();
    let span = tracing::info_span!("GET /orders");
    span.set_parent(incoming("03")).unwrap();
    let cx = span.context();
    let header = outgoing(&cx);
    let own_span_id = cx.span().span_context().span_id();
    drop(span);

    assert_eq!(header, format!("00-{TRACE}-{own_span_id}-03"));
    assert_ne!(own_span_id.to_string(), PARENT);
    let exported = telemetry.span("GET /orders");
    assert_eq!(exported.span_context.trace_flags().to_u8(), 0x03);
    assert_eq!(exported.span_context.trace_id().to_string(), TRACE);
    assert_eq!(exported.parent_span_id.to_string(), PARENT);
}

#[test]
fn unknown_flag_bits_survive_a_sampled_child() {
    let telemetry = TestTelemetry::new();
    let tracer = telemetry.tracer_provider().tracer("t");
    let child = tracer.start_with_context("child", &incoming("ff"));
    assert_eq!(child.span_context().trace_flags().to_u8(), 0xff);
}

/// SDK behaviour (opentelemetry_sdk 0.33.1, `SdkTracer::build_with_context`): a child the
/// sampler drops gets `TraceFlags::default()`, so an unsampled parent's `random` flag (0x02)
/// is lost on the next hop when the request is continued with an SDK span. otel-core's
/// `sampling::decide` builds no SDK span for unsampled requests and keeps the bits itself.
#[test]
fn sdk_dropped_child_loses_random_flag() {
    let telemetry = TestTelemetry::new();
    let tracer = telemetry.tracer_provider().tracer("t");
    let child = tracer.start_with_context("child", &incoming("02"));
    assert!(!child.span_context().is_sampled());
    assert_eq!(child.span_context().trace_flags().to_u8(), 0x00);
}

/// SDK behaviour: root spans never set the W3C `random` flag, although the default id
/// generator makes random trace ids.
#[test]
fn sdk_root_span_has_no_random_flag() {
    let telemetry = TestTelemetry::new();
    let tracer = telemetry.tracer_provider().tracer("t");
    let root = tracer.start_with_context("root", &Context::new());
    assert_eq!(root.span_context().trace_flags(), TraceFlags::SAMPLED);
}

#[test]
fn tracestate_is_continued_by_a_bridged_span() {
    let _telemetry = TestTelemetry::new();
    let sc = SpanContext::new(
        TraceId::from_hex(TRACE).unwrap(),
        SpanId::from_hex(PARENT).unwrap(),
        TraceFlags::new(0x03),
        true,
        TraceState::from_key_value([("rojo", "1"), ("t@v", "x")]).unwrap(),
    );
    let span = tracing::info_span!("GET /orders");
    span.set_parent(Context::new().with_remote_span_context(sc))
        .unwrap();
    let mut out = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut out);
    assert_eq!(out["tracestate"], "rojo=1,t@v=x");
}
