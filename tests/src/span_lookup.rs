//! Span lookups for assertions: the one span with a given name and kind, attributes as text.
//!
//! ```
//! use integration_tests::span_lookup::{one, text_attr};
//! use opentelemetry::trace::SpanKind;
//! use otel_core::testing::TestTelemetry;
//!
//! let telemetry = TestTelemetry::new();
//! tracing::info_span!("GET /a", otel.kind = "server", "http.route" = "/a").in_scope(|| {});
//! let span = one(&telemetry.spans(), "GET /a", SpanKind::Server);
//! assert_eq!(text_attr(&span, "http.route").as_deref(), Some("/a"));
//! ```

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use otel_core::testing::TestTelemetry;

/// The one span of `spans` named `name` with kind `kind`. Panics, listing every span seen,
/// when there is not exactly one.
pub fn one(spans: &[SpanData], name: &str, kind: SpanKind) -> SpanData {
    let matching = all(spans, name, kind.clone());
    assert_eq!(
        matching.len(),
        1,
        "expected exactly one {kind:?} span named {name:?}; spans: {:?}",
        summary(spans)
    );
    matching.into_iter().next().expect("one span")
}

/// Every span of `spans` named `name` with kind `kind`, in the order they ended.
pub fn all(spans: &[SpanData], name: &str, kind: SpanKind) -> Vec<SpanData> {
    spans
        .iter()
        .filter(|s| s.name == name && s.span_kind == kind)
        .cloned()
        .collect()
}

/// `(name, kind)` of every span, for assertion messages.
pub fn summary(spans: &[SpanData]) -> Vec<(String, SpanKind)> {
    spans
        .iter()
        .map(|s| (s.name.to_string(), s.span_kind.clone()))
        .collect()
}

/// Attribute `key` of `span` as text (integers and booleans in their usual spelling).
pub fn text_attr(span: &SpanData, key: &str) -> Option<String> {
    TestTelemetry::attr(span, key).map(|v| v.as_str().into_owned())
}

/// Asserts that `child`'s parent is `parent` (same trace, parent span id), naming both.
pub fn assert_child_of(child: &SpanData, parent: &SpanData) {
    assert!(
        TestTelemetry::is_child_of(child, parent),
        "{} {:?} (parent {}) should be a child of {} {:?} ({} in trace {})",
        child.name,
        child.span_kind,
        child.parent_span_id,
        parent.name,
        parent.span_kind,
        parent.span_context.span_id(),
        parent.span_context.trace_id(),
    );
}

/// The attribute in which `tracing-opentelemetry` records a span's Rust module (its own
/// name: the semantic conventions have no constant for it).
pub const MODULE_ATTRIBUTE: &str = "code.module.name";

/// Splits `spans` into the spans made by this workspace's crates (module `otel_*`) and the
/// others: transport internals such as h2's TRACE-level spans, which the test subscriber
/// records because, unlike `otel_core::Telemetry`, it has no level filter.
pub fn workspace_spans(spans: &[SpanData]) -> (Vec<SpanData>, Vec<SpanData>) {
    spans.iter().cloned().partition(|s| {
        text_attr(s, MODULE_ATTRIBUTE).is_some_and(|module| module.starts_with("otel_"))
    })
}
