//! How findings reach people: the `tracing` warning (target `otel_core::n_plus_one`), the
//! `n_plus_one.findings` counter, the `n_plus_one.detected` span event and `n_plus_one.*`
//! span attributes, the `Panic` and `Callback` modes.
//!
//! Timing: when a threshold is crossed the finding is counted in the metric and handed to the
//! mode (warning, panic or callback) with the count at that moment. When the scope ends, the
//! scope span gets one event per finding and the attributes of the largest one, all with the
//! final counts, and `Warn` logs once more when the count grew after the threshold.
//!
//! ```
//! use otel_core::attributes;
//! assert_eq!(attributes::N_PLUS_ONE_EVENT, "n_plus_one.detected");
//! assert_eq!(attributes::N_PLUS_ONE_COUNT, "n_plus_one.count");
//! ```

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, KeyValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::config::{self, DetectorConfig, Mode};
use super::detector::Snapshot;
use super::finding::Finding;
use crate::attributes::{
    N_PLUS_ONE_CALL_SITE, N_PLUS_ONE_COUNT, N_PLUS_ONE_EVENT, N_PLUS_ONE_FINDINGS, N_PLUS_ONE_KIND,
    N_PLUS_ONE_SHAPE, N_PLUS_ONE_SOURCE, N_PLUS_ONE_SUGGESTION, N_PLUS_ONE_TOTAL_DURATION_MS,
};

/// The `tracing` target of the warnings.
pub const LOG_TARGET: &str = "otel_core::n_plus_one";

/// The attributes describing `finding` (on the `n_plus_one.detected` event and, for the
/// largest finding, on the scope span): kind, shape, count, total duration in milliseconds,
/// and call site, source and suggestion when known.
pub fn finding_attributes(finding: &Finding) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new(N_PLUS_ONE_KIND, finding.kind.as_str()),
        KeyValue::new(N_PLUS_ONE_SHAPE, finding.shape.clone()),
        KeyValue::new(
            N_PLUS_ONE_COUNT,
            i64::try_from(finding.count).unwrap_or(i64::MAX),
        ),
        KeyValue::new(
            N_PLUS_ONE_TOTAL_DURATION_MS,
            finding.total_duration.as_secs_f64() * 1000.0,
        ),
    ];
    for (key, value) in [
        (N_PLUS_ONE_CALL_SITE, &finding.call_site),
        (N_PLUS_ONE_SOURCE, &finding.source),
        (N_PLUS_ONE_SUGGESTION, &finding.suggestion),
    ] {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, value.clone()));
        }
    }
    attributes
}

// ---- internals ------------------------------------------------------------------------------

/// A threshold was crossed: metric, then the mode. A fallback scope has no span of its own, so
/// its event goes on the span current in `cx`.
pub(crate) fn threshold_crossed(
    config: &DetectorConfig,
    fallback: bool,
    cx: &Context,
    finding: &Finding,
) {
    let kind = [KeyValue::new(N_PLUS_ONE_KIND, finding.kind.as_str())];
    match &config.counter {
        Some(counter) => counter.add(1, &kind),
        None => config::findings_counter(opentelemetry::global::meter("otel-core")).add(1, &kind),
    }
    if fallback {
        cx.span()
            .add_event(N_PLUS_ONE_EVENT, finding_attributes(finding));
    }
    match &config.mode {
        Mode::Off => {}
        Mode::Warn => warn(finding, "detected"),
        Mode::Panic => panic!("repeated_shape: {finding}"),
        Mode::Callback(callback) => callback(finding),
    }
}

/// The scope ended: final counts on the scope span, and a last warning for grown counts.
pub(crate) fn scope_ended(config: &DetectorConfig, span: &tracing::Span, snapshots: &[Snapshot]) {
    if !span.is_none() {
        for snapshot in snapshots {
            span.add_event(N_PLUS_ONE_EVENT, finding_attributes(&snapshot.finding));
        }
        // The largest finding (the first one on a tie) names the problem on the span itself.
        let largest = snapshots.iter().reduce(|best, s| {
            if s.finding.count > best.finding.count {
                s
            } else {
                best
            }
        });
        if let Some(largest) = largest {
            for attribute in finding_attributes(&largest.finding) {
                span.set_attribute(attribute.key, attribute.value);
            }
        }
        span.set_attribute(
            N_PLUS_ONE_FINDINGS,
            i64::try_from(snapshots.len()).unwrap_or(i64::MAX),
        );
    }
    if matches!(config.mode, Mode::Warn) {
        // Logged inside the scope span, so the line carries the request's trace and request id.
        span.in_scope(|| {
            for snapshot in snapshots {
                if snapshot.finding.count > snapshot.count_at_threshold {
                    warn(&snapshot.finding, "final count");
                }
            }
        });
    }
}

fn warn(finding: &Finding, stage: &str) {
    tracing::event!(
        target: LOG_TARGET,
        tracing::Level::WARN,
        { N_PLUS_ONE_KIND } = finding.kind.as_str(),
        { N_PLUS_ONE_SHAPE } = finding.shape.as_str(),
        { N_PLUS_ONE_COUNT } = finding.count,
        { N_PLUS_ONE_TOTAL_DURATION_MS } = finding.total_duration.as_secs_f64() * 1000.0,
        { N_PLUS_ONE_CALL_SITE } = finding.call_site.as_deref(),
        { N_PLUS_ONE_SOURCE } = finding.source.as_deref(),
        { N_PLUS_ONE_SUGGESTION } = finding.suggestion.as_deref(),
        "{stage}: {finding}"
    );
}
