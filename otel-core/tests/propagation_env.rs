//! `CompositePropagator::from_env` reads the process-global `OTEL_PROPAGATORS`, so this test
//! lives in its own binary.

use opentelemetry::propagation::TextMapPropagator;
use otel_core::propagation::CompositePropagator;

fn fields(p: &CompositePropagator) -> Vec<String> {
    p.fields().map(str::to_owned).collect()
}

#[test]
fn from_env_reads_otel_propagators() {
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe { std::env::remove_var("OTEL_PROPAGATORS") };
    assert_eq!(
        fields(&CompositePropagator::from_env().unwrap()),
        ["traceparent", "tracestate", "baggage"]
    );

    unsafe { std::env::set_var("OTEL_PROPAGATORS", "  ") };
    assert_eq!(
        fields(&CompositePropagator::from_env().unwrap()),
        ["traceparent", "tracestate", "baggage"]
    );

    unsafe { std::env::set_var("OTEL_PROPAGATORS", "b3,xray") };
    assert_eq!(
        fields(&CompositePropagator::from_env().unwrap()),
        ["b3", "x-amzn-trace-id"]
    );

    unsafe { std::env::set_var("OTEL_PROPAGATORS", "none") };
    assert!(fields(&CompositePropagator::from_env().unwrap()).is_empty());

    unsafe { std::env::set_var("OTEL_PROPAGATORS", "tracecontext,w3c") };
    let err = CompositePropagator::from_env().unwrap_err();
    assert_eq!(err.name(), "w3c");
    let message = err.to_string();
    assert!(message.contains("OTEL_PROPAGATORS"), "{message}");
    assert!(message.contains("\"w3c\""), "{message}");
    assert!(
        message.contains("tracecontext, baggage, b3, b3multi, jaeger, xray, none"),
        "{message}"
    );

    unsafe { std::env::remove_var("OTEL_PROPAGATORS") };
}
