//! The process-wide side of the repeated-shape detector: `set_config`, `Off`, the fallback
//! scopes keyed by trace id (and their cap), the counter on the global meter provider.
//!
//! These change process-wide state, so they live in their own test binary and run as one
//! test, in order.

use std::time::{Duration, Instant};

use opentelemetry::Value;
use opentelemetry::context::FutureExt as _;
use otel_core::attributes::{
    N_PLUS_ONE_COUNT, N_PLUS_ONE_EVENT, N_PLUS_ONE_FINDINGS, N_PLUS_ONE_KIND,
};
use otel_core::repeated_shape::{
    self, DetectorConfig, FindingKind, Mode, Observation, Scope, ShapeKind,
};
use otel_core::testing::TestTelemetry;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const COMMENTS: &str = "SELECT * FROM comments WHERE post_id = ?";

#[tokio::test]
async fn process_wide_configuration_and_fallback_scopes() {
    let telemetry = TestTelemetry::new();
    opentelemetry::global::set_meter_provider(telemetry.meter_provider().clone());
    let t0 = Instant::now();

    // Off: nothing is counted, not even in a fallback scope or a scope without its own config.
    repeated_shape::set_config(DetectorConfig::builder().mode(Mode::Off).build().unwrap());
    tracing::info_span!("job off").in_scope(|| repeat(COMMENTS, 10, t0));
    let scope = Scope::new(tracing::Span::none());
    let cx = opentelemetry::Context::new().with_value(scope.clone());
    for i in 0..10 {
        repeated_shape::observe(&cx, &observation(COMMENTS, t0 + ms(3 * i)));
    }
    assert_eq!(scope.tracked_shapes(), 0);
    assert_eq!(repeated_shape::fallback_scope_count(), 0);
    assert!(n_plus_one_events(&telemetry, "job off").is_empty());

    // Warn, outside any Scope: a fallback scope per trace, the event on the current span.
    repeated_shape::set_config(
        DetectorConfig::builder()
            .mode(Mode::Warn)
            .max_scopes(4)
            .build()
            .unwrap(),
    );
    tracing::info_span!("nightly job").in_scope(|| repeat(COMMENTS, 7, t0));
    assert_eq!(repeated_shape::fallback_scope_count(), 1);
    let events = n_plus_one_events(&telemetry, "nightly job");
    assert_eq!(events.len(), 1, "reported once, at the threshold");
    assert_eq!(
        TestTelemetry::event_attr(&events[0], N_PLUS_ONE_KIND),
        Some(Value::from("n_plus_one"))
    );
    assert_eq!(
        TestTelemetry::event_attr(&events[0], N_PLUS_ONE_COUNT),
        Some(Value::I64(5))
    );
    assert_eq!(
        telemetry.u64_counter_by(N_PLUS_ONE_FINDINGS, N_PLUS_ONE_KIND),
        vec![("n_plus_one".to_owned(), 1)]
    );

    // The same from operation spans that are not entered (`observe_in_span`): the event goes
    // on the operation span that crossed the threshold, as if it had been entered.
    tracing::info_span!("weekly job").in_scope(|| {
        for i in 0..7 {
            let span = tracing::info_span!("SELECT comments");
            repeated_shape::observe_in_span(&span, &observation(COMMENTS, t0 + ms(3 * i)));
        }
    });
    assert_eq!(repeated_shape::fallback_scope_count(), 2);
    let with_event: Vec<_> = telemetry
        .spans_named("SELECT comments")
        .into_iter()
        .filter(|s| s.events.iter().any(|e| e.name == N_PLUS_ONE_EVENT))
        .collect();
    assert_eq!(with_event.len(), 1, "reported once, at the threshold");
    assert!(n_plus_one_events(&telemetry, "weekly job").is_empty());

    // The fallback map is capped: ten more traces, at most four scopes.
    for i in 0..10 {
        tracing::info_span!("job", i).in_scope(|| repeat(COMMENTS, 2, t0));
    }
    assert_eq!(repeated_shape::fallback_scope_count(), 4);

    // Outside any trace nothing is kept.
    repeated_shape::observe(&opentelemetry::Context::new(), &observation(COMMENTS, t0));
    assert_eq!(repeated_shape::fallback_scope_count(), 4);

    // A Scope without its own configuration follows set_config.
    repeated_shape::set_config(
        DetectorConfig::builder()
            .mode(Mode::Warn)
            .n_plus_one_threshold(3)
            .build()
            .unwrap(),
    );
    let span = tracing::info_span!("GET /dashboard");
    let cx = span.context().with_value(Scope::new(span.clone()));
    async {
        repeat(COMMENTS, 3, t0);
    }
    .with_context(cx)
    .await;
    drop(span);
    let span = telemetry.span("GET /dashboard");
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_COUNT),
        Some(Value::I64(3))
    );
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_FINDINGS),
        Some(Value::I64(1))
    );

    // capture: the global thresholds, but neither Off nor Panic.
    for mode in [Mode::Panic, Mode::Off] {
        repeated_shape::set_config(DetectorConfig::builder().mode(mode).build().unwrap());
        let ((), findings) = repeated_shape::capture(async { repeat(COMMENTS, 6, t0) }).await;
        assert_eq!(findings.len(), 1);
        assert_eq!(
            (findings[0].kind, findings[0].count),
            (FindingKind::NPlusOne, 6)
        );
    }
}

// ---- helpers --------------------------------------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn repeat(shape: &str, times: u64, t0: Instant) {
    for i in 0..times {
        repeated_shape::observe(
            &otel_core::context::current(),
            &observation(shape, t0 + ms(3 * i)),
        );
    }
}

fn observation(shape: &str, started: Instant) -> Observation<'_> {
    Observation {
        shape,
        fingerprint: shape.len() as u64,
        kind: ShapeKind::Read,
        values_hash: None,
        started,
        duration: ms(1),
        call_site: None,
        suggestion: None,
    }
}

fn n_plus_one_events(telemetry: &TestTelemetry, span: &str) -> Vec<opentelemetry::trace::Event> {
    telemetry
        .span(span)
        .events
        .iter()
        .filter(|e| e.name == N_PLUS_ONE_EVENT)
        .cloned()
        .collect()
}
