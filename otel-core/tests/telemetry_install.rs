//! Process-wide install (its own test binary: it sets the global subscriber and the enabled
//! flag): `OTEL_SDK_DISABLED=true` gives no spans and switches the layers off; a second
//! install is an error, not a panic.

use std::collections::HashMap;

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
use otel_core::sampling::{self, Decision};
use otel_core::{SetupError, Telemetry};

#[test]
fn disabled_install_builds_no_spans_and_a_second_install_is_refused() {
    let spans = InMemorySpanExporter::default();
    let guard = Telemetry::builder()
        .env(HashMap::from([("OTEL_SDK_DISABLED", "true")]))
        .span_processor(SimpleSpanProcessor::new(spans.clone()))
        .log_writer(std::io::sink)
        .install()
        .unwrap();
    assert!(guard.tracer_provider().is_none());
    assert!(!sampling::is_enabled());
    assert!(matches!(
        sampling::decide(&opentelemetry::Context::new(), "GET /", SpanKind::Server),
        Decision::Disabled
    ));
    // From another thread too: the subscriber is global.
    std::thread::spawn(|| {
        tracing::info_span!(target: "otel_http", "GET /users").in_scope(|| tracing::info!("hi"));
    })
    .join()
    .unwrap();
    tracing::info_span!("work").in_scope(|| {});
    assert!(spans.get_finished_spans().unwrap().is_empty());
    // No OpenTelemetry context anywhere: nothing would be propagated.
    assert!(!opentelemetry::trace::TraceContextExt::has_active_span(
        &otel_core::context::current()
    ));

    let second = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .log_writer(std::io::sink)
        .install();
    assert!(
        matches!(second, Err(SetupError::AlreadyInstalled)),
        "{second:?}"
    );
    // The failed install changed nothing: still disabled.
    assert!(!sampling::is_enabled());
    assert!(guard.shutdown(std::time::Duration::from_secs(1)).is_ok());
}
