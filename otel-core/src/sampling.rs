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

use crate::request_id::RequestId;

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
    decide_inner(parent, name, kind, None)
}

/// Like [`decide`], for a server request served under `request_id`: the returned context
/// also carries the id ([`RequestId::from_context`] finds it). A sampled request keeps the id
/// and the sampling decision in one context entry instead of two (each entry costs the
/// context three allocations).
///
/// ```
/// use opentelemetry::{Context, trace::SpanKind};
/// use otel_core::RequestId;
/// use otel_core::sampling::{self, Decision};
///
/// let id = RequestId::parse(b"order-42").unwrap();
/// match sampling::decide_for_request(&Context::new(), "GET /orders", SpanKind::Server, Some(id)) {
///     Decision::Sampled(cx) | Decision::Unsampled(cx) => {
///         assert_eq!(RequestId::from_context(&cx).unwrap().as_str(), "order-42");
///     }
///     Decision::Disabled => {}
/// }
/// ```
pub fn decide_for_request(
    parent: &Context,
    name: &str,
    kind: SpanKind,
    request_id: Option<RequestId>,
) -> Decision {
    decide_inner(parent, name, kind, request_id)
}

fn decide_inner(
    parent: &Context,
    name: &str,
    kind: SpanKind,
    request_id: Option<RequestId>,
) -> Decision {
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
            // A request id already in the parent (an outer request served in process) would
            // shadow one kept in the marker: give ours an entry of its own then.
            let (in_marker, own_entry) = match request_id {
                Some(id) if parent.get::<RequestId>().is_some() => (None, Some(id)),
                id => (id, None),
            };
            let cx = parent.with_value(PreSampledMarker {
                attributes: result.attributes,
                trace_state: result.trace_state,
                request_id: in_marker,
            });
            Decision::Sampled(match own_entry {
                Some(id) => cx.with_value(id),
                None => cx,
            })
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
            let cx = parent.with_remote_span_context(sc);
            Decision::Unsampled(match request_id {
                Some(id) => cx.with_value(id),
                None => cx,
            })
        }
    }
}

/// What a client operation (a database query, an outgoing call) needs to know of the context
/// it starts in before it opens its span: see [`current_parent`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentParent {
    /// The current context holds a valid span context that is not sampled: build no span.
    pub unsampled: bool,
    /// The request id of the current context ([`RequestId::from_context`]).
    pub request_id: Option<RequestId>,
}

/// The sampling fact and request id of the current OpenTelemetry context, read in one lookup.
///
/// The same as reading them from [`context::current()`](crate::context::current), without
/// cloning the current `tracing` span (a reference-count round trip through the subscriber)
/// nor the context when it is attached rather than carried by the span: a client layer that
/// asked for both with `context::current()` twice paid about 2 000 instructions, this pays
/// about a third of that.
///
/// ```
/// let parent = otel_core::sampling::current_parent();
/// assert!(!parent.unsampled);
/// assert!(parent.request_id.is_none());
/// ```
pub fn current_parent() -> CurrentParent {
    fn facts(cx: &Context) -> CurrentParent {
        let span = cx.span();
        let sc = span.span_context();
        CurrentParent {
            unsampled: sc.is_valid() && !sc.is_sampled(),
            request_id: RequestId::from_context(cx).cloned(),
        }
    }
    // `context::current()` step by step: the current span's context when it is bridged and
    // valid, else the attached one. The dispatcher is taken out of `get_default` (an `Arc`
    // clone) so that building the span's context does not run inside it.
    let (dispatch, id) = tracing::dispatcher::get_default(|dispatch| {
        (dispatch.clone(), dispatch.current_span().id().cloned())
    });
    if let Some(id) = id
        && let Some(cx) = tracing_opentelemetry::get_otel_context(&id, &dispatch)
        && cx.span().span_context().is_valid()
    {
        return facts(&cx);
    }
    Context::map_current(facts)
}

/// The request id [`decide_for_request`] stored with its sampling marker, if any.
pub(crate) fn request_id_of(cx: &Context) -> Option<&RequestId> {
    cx.get::<PreSampledMarker>()
        .and_then(|marker| marker.request_id.as_ref())
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

/// Context value left by [`decide`] for [`PreSampled`]; with [`decide_for_request`], it also
/// carries the request id (one context entry instead of two).
#[derive(Debug, Clone)]
struct PreSampledMarker {
    attributes: Vec<KeyValue>,
    trace_state: TraceState,
    request_id: Option<RequestId>,
}

static ENABLED: AtomicBool = AtomicBool::new(true);

static SAMPLER: LazyLock<RwLock<Arc<dyn ShouldSample>>> =
    LazyLock::new(|| RwLock::new(Arc::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))));

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RequestId {
        RequestId::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn decide_for_request_carries_the_id_sampled_and_unsampled() {
        // The default sampler (parent-based, always on) samples a root.
        let Decision::Sampled(cx) =
            decide_for_request(&Context::new(), "GET /a", SpanKind::Server, Some(id("a-1")))
        else {
            panic!("expected a sampled decision");
        };
        // One entry holds both the marker and the id.
        assert!(cx.get::<RequestId>().is_none());
        assert_eq!(RequestId::from_context(&cx).unwrap().as_str(), "a-1");
        assert!(cx.get::<PreSampledMarker>().is_some());
        // A child context still sees it, and a value of its own wins.
        let child = cx.with_value(id("child"));
        assert_eq!(RequestId::from_context(&child).unwrap().as_str(), "child");

        // An unsampled parent: the id travels in its own entry.
        let unsampled_parent = unsampled_remote_parent();
        let Decision::Unsampled(cx) = decide_for_request(
            &unsampled_parent,
            "GET /a",
            SpanKind::Server,
            Some(id("a-2")),
        ) else {
            panic!("expected an unsampled decision");
        };
        assert_eq!(RequestId::from_context(&cx).unwrap().as_str(), "a-2");

        // Without an id, nothing is invented.
        let Decision::Sampled(cx) =
            decide_for_request(&Context::new(), "GET /a", SpanKind::Server, None)
        else {
            panic!("expected a sampled decision");
        };
        assert!(RequestId::from_context(&cx).is_none());
    }

    #[test]
    fn an_outer_request_id_in_the_parent_does_not_shadow_ours() {
        let outer = Context::new().with_value(id("outer"));
        let Decision::Sampled(cx) =
            decide_for_request(&outer, "GET /b", SpanKind::Server, Some(id("inner")))
        else {
            panic!("expected a sampled decision");
        };
        assert_eq!(RequestId::from_context(&cx).unwrap().as_str(), "inner");
        // An outer marker (a sampled request served in process) is replaced by ours.
        let Decision::Sampled(outer) =
            decide_for_request(&Context::new(), "GET /o", SpanKind::Server, Some(id("o-1")))
        else {
            panic!("expected a sampled decision");
        };
        let Decision::Sampled(cx) =
            decide_for_request(&outer, "GET /b", SpanKind::Server, Some(id("i-1")))
        else {
            panic!("expected a sampled decision");
        };
        assert_eq!(RequestId::from_context(&cx).unwrap().as_str(), "i-1");
    }

    /// A context whose parent is a remote, unsampled span (trace 7, span 9).
    fn unsampled_remote_parent() -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(7),
            opentelemetry::trace::SpanId::from(9),
            TraceFlags::default(),
            true,
            TraceState::default(),
        ))
    }

    /// What `current_parent` must agree with: both facts read from `context::current()`.
    fn slow_parent() -> CurrentParent {
        let cx = crate::context::current();
        let span = cx.span();
        let sc = span.span_context();
        CurrentParent {
            unsampled: sc.is_valid() && !sc.is_sampled(),
            request_id: RequestId::from_context(&cx).cloned(),
        }
    }

    #[test]
    fn current_parent_reads_what_context_current_holds() {
        // No subscriber, nothing attached.
        assert_eq!(current_parent(), CurrentParent::default());
        assert_eq!(current_parent(), slow_parent());

        let _telemetry = crate::testing::TestTelemetry::new();
        // A bridged subscriber, no span, nothing attached.
        assert_eq!(current_parent(), CurrentParent::default());

        // An unsampled request: no span, the decided context attached.
        let unsampled_parent = unsampled_remote_parent();
        let Decision::Unsampled(cx) = decide_for_request(
            &unsampled_parent,
            "GET /u",
            SpanKind::Server,
            Some(id("u-1")),
        ) else {
            panic!("expected an unsampled decision");
        };
        {
            let _guard = cx.attach();
            let parent = current_parent();
            assert!(parent.unsampled);
            assert_eq!(
                parent.request_id.as_ref().map(RequestId::as_str),
                Some("u-1")
            );
            assert_eq!(parent, slow_parent());
            // A span entered inside it: its context is the attached one's child, also
            // unsampled.
            tracing::info_span!("inner").in_scope(|| assert_eq!(current_parent(), slow_parent()));
        }

        // A sampled request: the bridged span entered, its parent carrying marker and id.
        let Decision::Sampled(parent_cx) =
            decide_for_request(&Context::new(), "GET /s", SpanKind::Server, Some(id("s-1")))
        else {
            panic!("expected a sampled decision");
        };
        let span = tracing::info_span!("GET /s");
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent_cx);
        span.in_scope(|| {
            let parent = current_parent();
            assert!(!parent.unsampled);
            assert_eq!(
                parent.request_id.as_ref().map(RequestId::as_str),
                Some("s-1")
            );
            assert_eq!(parent, slow_parent());
            // A child span sees the same.
            tracing::info_span!("child").in_scope(|| assert_eq!(current_parent(), slow_parent()));
        });

        // A request id attached outside any span.
        let _guard = Context::new().with_value(id("attached")).attach();
        let parent = current_parent();
        assert_eq!(
            parent.request_id.as_ref().map(RequestId::as_str),
            Some("attached")
        );
        assert_eq!(parent, slow_parent());
        // A bridged span without that id in its context: the span's context wins, as in
        // `context::current()` (the span was opened in that context, so it inherits it).
        tracing::info_span!("in attached").in_scope(|| assert_eq!(current_parent(), slow_parent()));
    }
}
