//! The OpenTelemetry [`Context`] of the code that is running now.
//!
//! Inside a sampled request the context lives on the current `tracing` span (bridged by
//! `tracing-opentelemetry`); inside an unsampled request, or outside any span, it is the
//! context attached with [`Context::attach`]. [`current`] returns whichever applies, so
//! client layers forward the right `traceparent` and request id in both cases.
//!
//! ```
//! let cx = otel_core::context::current();
//! assert!(otel_core::request_id::RequestId::from_context(&cx).is_none());
//! ```

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The current OpenTelemetry context: the current `tracing` span's when it is bridged and
/// valid, otherwise [`Context::current`].
pub fn current() -> Context {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            return cx;
        }
    }
    Context::current()
}
