//! The `tracing` → OpenTelemetry bridge layer, configured the way this workspace expects.
//!
//! ```
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let provider = SdkTracerProvider::builder().build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(otel_core::telemetry::otel_layer(&provider));
//! tracing::subscriber::with_default(subscriber, || tracing::info_span!("work").in_scope(|| {}));
//! ```

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// The instrumentation scope name of the spans bridged by [`otel_layer`].
pub const TRACER_NAME: &str = "otel-core";

/// A `tracing-opentelemetry` layer over `provider`'s tracer, with context activation on (so
/// `opentelemetry::Context::current()` inside a span is the span's context, and outgoing
/// calls forward it).
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER_NAME))
        .with_context_activation(true)
}
