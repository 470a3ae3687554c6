//! Sampling before bridging: decide whether a request is sampled before any span is built.
//!
//! A `tracing` span bridged to OpenTelemetry costs several times a plain SDK span, and most of
//! that even when the trace is not sampled. So the server layers of this workspace ask
//! [`decide`] first, with the same sampler the SDK uses (installed by
//! [`Telemetry`](crate::Telemetry)):
//!
//! - [`Decision::Sampled`]: build the bridged server span with the returned context as its
//!   parent ([`OpenTelemetrySpanExt::set_parent`](tracing_opentelemetry::OpenTelemetrySpanExt::set_parent)).
//!   The context carries a marker that makes the SDK sampler ([`PreSampled`]) honour the
//!   decision instead of rolling the dice a second time.
//! - [`Decision::Unsampled`]: build no span; run the request with the returned context
//!   attached (`cx.attach()`). It holds a non-recording span context with flag `00`, so
//!   outgoing calls still forward `traceparent` (and the request id), and user spans below it
//!   stay unsampled.
//!
//! ```
//! use opentelemetry::{Context, trace::{SpanKind, TraceContextExt}};
//! use otel_core::sampling::{self, Decision};
//!
//! match sampling::decide(&Context::new(), "GET /users/{id}", SpanKind::Server) {
//!     Decision::Sampled(parent) => { /* build the tracing span, set_parent(parent) */ }
//!     Decision::Unsampled(cx) => assert!(!cx.span().span_context().is_sampled()),
//!     Decision::Disabled => { /* OTEL_SDK_DISABLED: do nothing at all */ }
//! }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use opentelemetry::trace::{
    SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, SamplingResult, ShouldSample,
};
use parking_lot::RwLock;

/// The outcome of [`decide`].
#[derive(Debug)]
pub enum Decision {
    /// Record this request: use the context as the parent of the bridged server span.
    Sampled(Context),
    /// Do not record: attach this context (non-recording, flag 00) while serving the request.
    Unsampled(Context),
    /// Telemetry is disabled (`OTEL_SDK_DISABLED=true`): build nothing, propagate nothing.
    Disabled,
}

/// Decides sampling for a new span of `kind` named `name` under `parent` (the context
/// extracted from the incoming request, or the current one), with the installed sampler.
pub fn decide(parent: &Context, name: &str, kind: SpanKind) -> Decision {
    if !is_enabled() {
        return Decision::Disabled;
    }
    let parent_sc = parent.span().span_context().clone();
    let trace_id = if parent_sc.is_valid() {
        parent_sc.trace_id()
    } else {
        RandomIdGenerator::default().new_trace_id()
    };
    let result = SAMPLER
        .read()
        .should_sample(Some(parent), trace_id, name, &kind, &[], &[]);
    match result.decision {
        SamplingDecision::RecordAndSample => {
            Decision::Sampled(parent.with_value(PreSampledMarker {
                attributes: result.attributes,
                trace_state: result.trace_state,
            }))
        }
        SamplingDecision::Drop | SamplingDecision::RecordOnly => {
            // Keep every flag bit of the parent (e.g. W3C `random`) but clear `sampled`.
            let flags = if parent_sc.is_valid() {
                parent_sc.trace_flags() & !TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let sc = SpanContext::new(
                trace_id,
                RandomIdGenerator::default().new_span_id(),
                flags,
                false,
                if parent_sc.is_valid() {
                    parent_sc.trace_state().clone()
                } else {
                    TraceState::default()
                },
            );
            Decision::Unsampled(parent.with_remote_span_context(sc))
        }
    }
}

/// Whether telemetry is enabled. `false` after [`Telemetry`](crate::Telemetry) installed a
/// disabled setup (`OTEL_SDK_DISABLED=true`); layers then do nothing at all.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Switches every layer of this workspace on or off (done by `Telemetry::install`).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Installs the sampler [`decide`] consults. [`Telemetry`](crate::Telemetry) calls this with
/// the same sampler it gives the SDK (wrapped in [`PreSampled`]); call it yourself only when
/// you build the tracer provider by hand.
pub fn set_sampler(sampler: impl ShouldSample + 'static) {
    *SAMPLER.write() = Arc::new(sampler);
}

/// A sampler wrapper for the SDK's tracer provider: honours a decision [`decide`] already
/// made (so a request is never sampled twice with different trace ids), and otherwise
/// delegates to the wrapped sampler.
///
/// ```
/// use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
/// use otel_core::sampling::PreSampled;
///
/// let provider = SdkTracerProvider::builder()
///     .with_sampler(PreSampled::new(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.1)))))
///     .build();
/// # drop(provider);
/// ```
#[derive(Debug, Clone)]
pub struct PreSampled<S = Sampler> {
    inner: S,
}

impl<S: ShouldSample + Clone + 'static> PreSampled<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        PreSampled { inner }
    }
}

impl<S: ShouldSample + Clone + 'static> ShouldSample for PreSampled<S> {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        if let Some(marker) = parent_context.and_then(|cx| cx.get::<PreSampledMarker>()) {
            // The marker applies to the span built right under the extracted context (whose
            // parent is remote or absent), not to local children that inherit the context.
            let parent_is_local = parent_context
                .is_some_and(|cx| cx.has_active_span() && !cx.span().span_context().is_remote());
            if !parent_is_local {
                return SamplingResult {
                    decision: SamplingDecision::RecordAndSample,
                    attributes: marker.attributes.clone(),
                    trace_state: marker.trace_state.clone(),
                };
            }
        }
        self.inner
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

/// Context value left by [`decide`] for [`PreSampled`].
#[derive(Debug, Clone)]
struct PreSampledMarker {
    attributes: Vec<KeyValue>,
    trace_state: TraceState,
}

static ENABLED: AtomicBool = AtomicBool::new(true);

static SAMPLER: LazyLock<RwLock<Arc<dyn ShouldSample>>> =
    LazyLock::new(|| RwLock::new(Arc::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))));
