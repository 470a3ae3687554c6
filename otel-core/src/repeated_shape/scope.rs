//! [`Scope`]: the unit repeats are counted in (one request), carried in the OpenTelemetry
//! [`Context`](opentelemetry::Context) so that operations from spawned tasks count too.
//!
//! A server layer creates one per request and runs the handler with the scope's context
//! attached *inside* the request span, so that every span created below inherits it:
//!
//! ```
//! use opentelemetry::context::FutureExt as _;
//! use otel_core::repeated_shape::Scope;
//! use tracing::Instrument as _;
//! use tracing_opentelemetry::OpenTelemetrySpanExt as _;
//!
//! # async fn handler() {}
//! # async fn serve() {
//! let span = tracing::info_span!("GET /dashboard");
//! let cx = span.context().with_value(Scope::new(span.clone()));
//! handler().with_context(cx).instrument(span).await;
//! // the last handle of the scope is gone: findings are now on the span, which ends
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use opentelemetry::Context;
use parking_lot::Mutex;

use super::Issuer;
use super::config::{self, DetectorConfig, GLOBAL};
use super::detector::{ParentSpan, ScopeState};
use super::finding::Finding;
use super::observation::Observation;
use super::report;

/// One detection scope, usually one request. Cheap to clone (all clones share the counters).
///
/// When the last clone is dropped (the request's context is gone) or at [`Scope::finish`], the
/// findings are recorded with their final counts on the scope span: one `n_plus_one.detected`
/// event per finding, `n_plus_one.*` attributes of the largest finding and
/// `n_plus_one.findings`.
///
/// The scope holds a handle of its span until then, so never put a scope into the context
/// of its own span (`span.set_parent(cx.with_value(scope))`): that is a cycle and the span
/// never ends. Attach the scope's context inside the span instead, as in the module example.
#[derive(Clone)]
pub struct Scope {
    pub(crate) inner: Arc<ScopeInner>,
}

impl Scope {
    /// A scope whose findings are recorded on `scope_span` (may be `Span::none()` for an
    /// unsampled request), using the process-wide configuration.
    pub fn new(scope_span: tracing::Span) -> Self {
        Scope::build(scope_span, None, Kind::Counting)
    }

    /// A scope with its own configuration instead of the process-wide one (e.g. a test that
    /// must not depend on global state, or a job with other thresholds).
    pub fn with_config(scope_span: tracing::Span, config: DetectorConfig) -> Self {
        Scope::build(scope_span, Some(Arc::new(config)), Kind::Counting)
    }

    /// A scope in which nothing is counted (health checks, batch jobs that know what they do).
    pub fn ignore() -> Self {
        Scope::build(tracing::Span::none(), None, Kind::Ignore)
    }

    /// Names the scope in findings and log lines (default: the scope span's static name,
    /// which is not its `otel.name`). Call it on a fresh scope, before cloning it or putting
    /// it in a context; on a shared scope it does nothing.
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.name = Some(name.into());
        }
        self
    }

    /// The findings made so far in this scope, with their current counts, in the order they
    /// were made.
    pub fn findings(&self) -> Vec<Finding> {
        let state = self.inner.state.lock();
        state
            .snapshots(self.inner.name.as_deref())
            .into_iter()
            .map(|snapshot| snapshot.finding)
            .collect()
    }

    /// Records the findings with their current counts on the scope span now (instead of when
    /// the last clone is dropped) and lets go of the span, so that it can end. Later
    /// observations still count (see [`findings`](Scope::findings)) but are no longer
    /// recorded on the span. Call it when the request is over if the scope may outlive it
    /// (e.g. it sits in a context kept by a background task).
    pub fn finish(&self) {
        self.inner.finish();
    }

    /// Whether this is an [`ignore`](Scope::ignore) scope.
    pub fn is_ignore(&self) -> bool {
        self.inner.kind == Kind::Ignore
    }

    /// Distinct (parent span, shape) pairs this scope tracks (at most `max_shapes_per_scope`).
    pub fn tracked_shapes(&self) -> usize {
        self.inner.state.lock().tracked_shapes()
    }

    /// Observations of new shapes that were not counted because the scope was full.
    pub fn untracked_observations(&self) -> u64 {
        self.inner.state.lock().untracked()
    }

    /// The scope's context: `cx` with this scope in it.
    pub fn in_context(&self, cx: &Context) -> Context {
        cx.with_value(self.clone())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.inner.name)
            .field("kind", &self.inner.kind)
            .field("own_config", &self.inner.config.is_some())
            .finish_non_exhaustive()
    }
}

// ---- internals ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A scope given by the caller.
    Counting,
    /// Keyed by trace id in the global fallback map: findings go to the current span.
    Fallback,
    /// Counts nothing.
    Ignore,
}

pub(crate) struct ScopeInner {
    /// Taken when the findings are recorded on it (at [`Scope::finish`] or drop).
    span: Mutex<Option<tracing::Span>>,
    name: Option<Cow<'static, str>>,
    /// The scope span's metadata: operations issued directly under it count as the scope's.
    span_metadata: ParentSpan,
    kind: Kind,
    config: Option<Arc<DetectorConfig>>,
    registered_override: bool,
    state: Mutex<ScopeState>,
}

impl Scope {
    pub(crate) fn build(
        span: tracing::Span,
        config: Option<Arc<DetectorConfig>>,
        kind: Kind,
    ) -> Self {
        let span_metadata = span.metadata();
        let registered_override = config.as_deref().is_some_and(config::register_override);
        Scope {
            inner: Arc::new(ScopeInner {
                name: span_metadata.map(|m| Cow::Borrowed(m.name())),
                span_metadata,
                span: Mutex::new(Some(span)),
                kind,
                config,
                registered_override,
                state: Mutex::new(ScopeState::default()),
            }),
        }
    }
}

impl ScopeInner {
    /// Counts `obs` and reports the findings it makes. No lock is held while reporting (a
    /// `Panic` mode panics with the scope unlocked).
    pub(crate) fn observe(&self, cx: &Context, issuer: Issuer<'_>, obs: &Observation<'_>) {
        if self.kind == Kind::Ignore {
            return;
        }
        let config = self.config();
        if matches!(config.mode, config::Mode::Off) || config.is_allowlisted(obs.shape) {
            return;
        }
        let parent = match issuer {
            Issuer::Current => issuing_span(self.span_metadata),
            Issuer::Span(span) => parent_of(span, self.span_metadata),
        };
        let crossed = self
            .state
            .lock()
            .record(&config, parent, obs, self.name.as_deref());
        if crossed.is_empty() {
            return;
        }
        let report = || {
            for finding in &crossed {
                report::threshold_crossed(&config, self.kind == Kind::Fallback, cx, finding);
            }
        };
        match issuer {
            Issuer::Current => report(),
            // As if the operation's span were entered all along (see `observe_in_span`).
            Issuer::Span(span) => span.in_scope(report),
        }
    }

    fn config(&self) -> Arc<DetectorConfig> {
        match &self.config {
            Some(config) => config.clone(),
            None => GLOBAL.config(),
        }
    }
}

impl ScopeInner {
    /// Records the findings on the scope span, once: the first call takes the span.
    fn finish(&self) {
        if self.kind == Kind::Ignore {
            return;
        }
        let Some(span) = self.span.lock().take() else {
            return;
        };
        let snapshots = self.state.lock().snapshots(self.name.as_deref());
        if !snapshots.is_empty() {
            report::scope_ended(&self.config(), &span, &snapshots);
        }
        // `span` is dropped here, after its attributes are set: it may end now.
    }
}

impl Drop for ScopeInner {
    fn drop(&mut self) {
        if self.registered_override {
            config::unregister_override();
        }
        self.finish();
    }
}

/// The span the operation was issued from: the parent of the current `tracing` span (the
/// current span is usually the operation's own span, or a function `#[instrument]`ed per
/// item), so that a loop calling an instrumented function per item counts together. `None`
/// when that is the scope span itself or when there is no span.
fn issuing_span(scope_span: ParentSpan) -> ParentSpan {
    use tracing_subscriber::registry::{LookupSpan, SpanData};

    let found = tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        let id = current.id()?;
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            // No registry to find the parent in: the current span is the best key we have.
            return current.metadata();
        };
        let data = registry.span_data(id)?;
        let current_metadata = data.metadata();
        if is_same(Some(current_metadata), scope_span) {
            return None;
        }
        let parent = data.parent()?;
        registry.span_data(parent).map(|parent| parent.metadata())
    });
    if is_same(found, scope_span) {
        None
    } else {
        found
    }
}

/// The span that issued the operation of `span` (not entered): its parent, as
/// [`issuing_span`] finds it with `span` current.
fn parent_of(span: &tracing::Span, scope_span: ParentSpan) -> ParentSpan {
    use tracing_subscriber::registry::{LookupSpan, SpanData};

    let found = span.with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            // No registry to find the parent in: the span itself is the best key we have.
            return span.metadata();
        };
        let data = registry.span_data(id)?;
        if is_same(Some(data.metadata()), scope_span) {
            return None;
        }
        let parent = data.parent()?;
        registry.span_data(parent).map(|parent| parent.metadata())
    });
    let found = found.flatten();
    if is_same(found, scope_span) {
        None
    } else {
        found
    }
}

fn is_same(a: ParentSpan, b: ParentSpan) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        _ => false,
    }
}
