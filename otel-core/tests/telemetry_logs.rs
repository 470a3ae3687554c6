//! Log lines carry trace_id, span_id and request_id inside a request (sampled: a span;
//! unsampled: only an attached context), in text and JSON, and nothing outside.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
use otel_core::telemetry::LogFormat;
use otel_core::{RequestId, Telemetry};
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

struct Setup {
    logs: Buffer,
    spans: InMemorySpanExporter,
    guard: otel_core::telemetry::TelemetryGuard,
    _default: tracing::subscriber::DefaultGuard,
}

fn setup(format: LogFormat) -> Setup {
    let logs = Buffer::default();
    let spans = InMemorySpanExporter::default();
    let parts = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .service_name("logs-test")
        .span_processor(SimpleSpanProcessor::new(spans.clone()))
        .log_format(format)
        .log_writer(logs.clone())
        .build()
        .unwrap();
    let (guard, default) = parts.set_default();
    Setup {
        logs,
        spans,
        guard,
        _default: default,
    }
}

/// The context an unsampled request runs under: a remote, non-sampled span context and the
/// request id (what `sampling::decide` + the server layers attach).
fn unsampled_request_context() -> Context {
    let sc = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    Context::new()
        .with_remote_span_context(sc)
        .with_value(RequestId::parse(b"req-unsampled").unwrap())
}

#[test]
fn text_lines_inside_a_sampled_request_span_carry_all_three_ids() {
    let s = setup(LogFormat::Text);
    tracing::info!("before the request");
    let span = tracing::info_span!(target: "otel_http", "GET /users/{id}", "request.id" = "req-1");
    span.in_scope(|| {
        tracing::info!("handling");
        tracing::info_span!("load user").in_scope(|| tracing::warn!("slow query"));
    });
    drop(span);
    tracing::info!("after the request");
    s.guard.force_flush();

    let spans = s.spans.get_finished_spans().unwrap();
    let server = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    let child = spans.iter().find(|s| s.name == "load user").unwrap();
    let trace_id = server.span_context.trace_id();
    let lines = s.logs.lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(!lines[0].contains("trace_id"), "{}", lines[0]);
    assert!(
        lines[1].ends_with(&format!(
            " trace_id={trace_id} span_id={} request_id=req-1",
            server.span_context.span_id()
        )),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("handling"));
    assert!(
        lines[2].ends_with(&format!(
            " trace_id={trace_id} span_id={} request_id=req-1",
            child.span_context.span_id()
        )),
        "{}",
        lines[2]
    );
    assert!(!lines[3].contains("trace_id") && !lines[3].contains("request_id"));
}

#[test]
fn request_id_recorded_later_or_only_in_the_parent_context_is_found() {
    let s = setup(LogFormat::Text);
    // Recorded after creation, as the server layers do once the id is accepted.
    let span = tracing::info_span!("GET /a", "request.id" = tracing::field::Empty);
    span.record("request.id", "req-late");
    span.in_scope(|| tracing::info!("one"));
    // Not a field, only in the parent context given to `set_parent`.
    let span = tracing::info_span!("GET /b");
    let _ = span.set_parent(Context::new().with_value(RequestId::parse(b"req-cx").unwrap()));
    span.in_scope(|| tracing::info!("two"));
    let lines = s.logs.lines();
    assert!(lines[0].ends_with("request_id=req-late"), "{}", lines[0]);
    assert!(lines[1].ends_with("request_id=req-cx"), "{}", lines[1]);
}

#[test]
fn an_invalid_recorded_request_id_is_never_printed() {
    let s = setup(LogFormat::Text);
    tracing::info_span!("GET /", "request.id" = "evil\nid").in_scope(|| tracing::info!("x"));
    let lines = s.logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(!lines[0].contains("request_id"), "{}", lines[0]);
    assert!(lines[0].contains("trace_id="), "{}", lines[0]);
}

#[test]
fn text_lines_inside_an_unsampled_request_context_carry_its_ids() {
    let s = setup(LogFormat::Text);
    {
        let _attached = unsampled_request_context().attach();
        tracing::info!("unsampled work");
    }
    tracing::info!("outside");
    let lines = s.logs.lines();
    assert!(
        lines[0].ends_with(
            " trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 request_id=req-unsampled"
        ),
        "{}",
        lines[0]
    );
    assert!(!lines[1].contains("trace_id") && !lines[1].contains("request_id"));
    assert!(s.spans.get_finished_spans().unwrap().is_empty());
}

#[test]
fn json_lines_carry_the_ids_as_top_level_keys() {
    let s = setup(LogFormat::Json);
    let span = tracing::info_span!("POST /orders", "request.id" = "req-json");
    span.in_scope(|| tracing::info!(order = 42, "created"));
    drop(span);
    {
        let _attached = unsampled_request_context().attach();
        tracing::info!("unsampled");
    }
    tracing::info!("outside");
    s.guard.force_flush();
    let server = s.spans.get_finished_spans().unwrap().remove(0);

    let lines: Vec<serde_json::Value> = s
        .logs
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["fields"]["message"], "created");
    assert_eq!(lines[0]["fields"]["order"], 42);
    assert_eq!(
        lines[0]["trace_id"],
        server.span_context.trace_id().to_string()
    );
    assert_eq!(
        lines[0]["span_id"],
        server.span_context.span_id().to_string()
    );
    assert_eq!(lines[0]["request_id"], "req-json");
    assert_eq!(lines[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(lines[1]["span_id"], "00f067aa0ba902b7");
    assert_eq!(lines[1]["request_id"], "req-unsampled");
    for key in ["trace_id", "span_id", "request_id"] {
        assert!(lines[2].get(key).is_none(), "{key} in {}", lines[2]);
    }
}

#[test]
fn user_spans_below_an_unsampled_request_keep_its_trace_and_request_ids() {
    let s = setup(LogFormat::Text);
    {
        let _attached = unsampled_request_context().attach();
        tracing::info_span!("load cart").in_scope(|| tracing::info!("inner"));
    }
    s.guard.force_flush();
    let lines = s.logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id="),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(" request_id=req-unsampled"),
        "{}",
        lines[0]
    );
    // The user span inherits the unsampled decision: nothing is exported.
    assert!(s.spans.get_finished_spans().unwrap().is_empty());
}
