//! Repeated-shape (N+1) detection on the span tree: one mechanism for the N+1 query and the
//! N+1 API call.
//!
//! Callers (the SQL executor wrapper, the HTTP client layers) report each finished operation
//! with [`observe`]: its *shape* (sanitised SQL, `GET host/users/{id}`), a fingerprint of it,
//! its kind, when it ran and where it was called from. The detector counts repeats per
//! [`Scope`] (one request, carried in the OpenTelemetry `Context`) and, within it, per
//! issuing span, and reports [`Finding`]s: `n_plus_one`, `duplicate`, `fan_out`,
//! `unbatched_write` — each at most once per (scope, shape, kind).
//!
//! ```
//! use otel_core::repeated_shape::{self, FindingKind, Observation, ShapeKind};
//! use std::time::{Duration, Instant};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let t0 = Instant::now();
//! let ((), findings) = repeated_shape::capture(async {
//!     for post in 0..50 {
//!         repeated_shape::observe(&otel_core::context::current(), &Observation {
//!             shape: "SELECT * FROM comments WHERE post_id = ?",
//!             fingerprint: 0xC0FFEE,
//!             kind: ShapeKind::Read,
//!             values_hash: None,
//!             started: t0 + Duration::from_millis(2 * post), // one after the other
//!             duration: Duration::from_millis(1),
//!             call_site: None,
//!             suggestion: Some("WHERE post_id = ANY($1)"),
//!         });
//!     }
//! }).await;
//! assert_eq!(findings.len(), 1);
//! assert_eq!((findings[0].kind, findings[0].count), (FindingKind::NPlusOne, 50));
//! # });
//! ```
//!
//! Modes ([`Mode`]): `Warn` in debug builds, `Off` in release builds,
//! `OTEL_N_PLUS_ONE=off|warn|panic` overrides ([`DetectorConfig::default_for_build`]), a mode
//! set in code ([`set_config`], [`Scope::with_config`]) wins. `Off` costs one atomic load
//! per [`observe`].
//!
//! A caller that opens a span per operation reports it with [`observe_in_span`], without
//! entering the span (the result is the same as [`observe`] from inside it).
//!
//! When a finding is reported: at its threshold (5th repeat by default) the
//! `n_plus_one.findings` counter is incremented and the mode acts with the count so far
//! (`Warn` logs on target `otel_core::n_plus_one`, `Panic` panics, `Callback` is called);
//! when the scope ends ([`Scope::finish`] or its last clone dropped) the scope span gets one
//! `n_plus_one.detected` event per finding and the `n_plus_one.*` attributes of the largest,
//! all with the final counts, and `Warn` logs once more if the count grew. The names are in
//! [`crate::attributes`].
//!
//! Memory is bounded: per scope by `max_shapes_per_scope` (and `max_shape_len`, and
//! [`MAX_VALUES_PER_SHAPE`]), globally by `max_scopes` fallback scopes.

mod config;
mod detector;
mod fallback;
mod finding;
mod observation;
mod report;
mod scope;

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub use config::{
    ConfigError, DetectorConfig, DetectorConfigBuilder, ENV_MODE, Mode, mode_from_env, set_config,
};
pub use detector::MAX_VALUES_PER_SHAPE;
pub use fallback::fallback_scope_count;
pub use finding::{Finding, FindingKind};
pub use observation::{Observation, ShapeKind};
pub use report::{LOG_TARGET, finding_attributes};
pub use scope::Scope;

use config::GLOBAL;

/// A stable 64-bit fingerprint of a shape text (SipHash with fixed keys), for callers whose
/// shape has no fingerprint of its own (outgoing HTTP and gRPC calls).
pub fn shape_fingerprint<T: std::hash::Hash + ?Sized>(shape: &T) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(shape)
}

/// Whether the process-wide detector counts anything (mode other than `Off`). Server layers
/// check it before creating a per-request [`Scope`], so an `Off` detector costs one atomic load.
pub fn is_enabled() -> bool {
    // Until the global configuration is read, STATE says "maybe on"; read it first, so a
    // release build (Off by default) never creates a scope.
    LazyLock::force(&GLOBAL);
    config::STATE.load(Ordering::Relaxed) != 0
}

/// Reports one finished operation. The scope is the nearest [`Scope`] in `cx` (or in the
/// current context); without one, a fallback scope keyed by the trace id of `cx`'s span
/// (nothing is counted outside any trace). Never panics, except by design in `Mode::Panic`.
///
/// Call it with the context the operation ran in (`otel_core::context::current()`), from
/// inside or just after the operation's own span: repeats are grouped by the span that issued
/// them (the parent of the current `tracing` span).
pub fn observe(cx: &Context, obs: &Observation<'_>) {
    if config::STATE.load(Ordering::Relaxed) == 0 || obs.kind == ShapeKind::Ignored {
        return;
    }
    observe_from(cx, Issuer::Current, obs);
}

/// Like [`observe`], for a caller that opened a `tracing` span for the operation and does
/// not want to enter it just to report it (entering a bridged span activates its
/// OpenTelemetry context, which costs more than counting the operation). The result is the
/// same as calling [`observe`] with `otel_core::context::current()` from inside `span`:
///
/// - the scope is the nearest [`Scope`] in the current context, else in `span`'s context
///   (the span's context is built only when the current one has no scope: the usual case,
///   an operation finished in the request it started in, never pays for it);
/// - repeats are grouped by `span`'s parent (the span that issued the operation);
/// - a finding is reported (warning, callback, fallback event) with `span` entered, so the
///   warning lands on the operation's span; `span` is entered only then, at most once per
///   (scope, shape, kind).
///
/// When `span` is disabled (`Span::none()`, or filtered out) this is [`observe`] with the
/// current context.
///
/// ```
/// use otel_core::repeated_shape::{self, Observation, ShapeKind};
///
/// let span = tracing::info_span!("SELECT comments");
/// // ... the operation runs, its span not entered ...
/// repeated_shape::observe_in_span(&span, &Observation {
///     shape: "SELECT * FROM comments WHERE post_id = ?",
///     fingerprint: 0xC0FFEE,
///     kind: ShapeKind::Read,
///     values_hash: None,
///     started: std::time::Instant::now(),
///     duration: std::time::Duration::from_millis(1),
///     call_site: None,
///     suggestion: None,
/// });
/// ```
pub fn observe_in_span(span: &tracing::Span, obs: &Observation<'_>) {
    if config::STATE.load(Ordering::Relaxed) == 0 || obs.kind == ShapeKind::Ignored {
        return;
    }
    if span.is_disabled() {
        return observe_from(&crate::context::current(), Issuer::Current, obs);
    }
    if let Some(scope) = Context::map_current(|current| current.get::<Scope>().cloned()) {
        // A real scope reports on its own span: the context is not needed.
        return scope
            .inner
            .observe(&Context::new(), Issuer::Span(span), obs);
    }
    // What `otel_core::context::current()` gives inside the entered span.
    let cx = span.context();
    let cx = if cx.span().span_context().is_valid() {
        cx
    } else {
        Context::current()
    };
    observe_from(&cx, Issuer::Span(span), obs);
}

/// Which span issued an observation (the key its repeats are grouped by).
#[derive(Clone, Copy)]
pub(crate) enum Issuer<'a> {
    /// The parent of the current `tracing` span.
    Current,
    /// The parent of this (not entered) operation span; findings are reported inside it.
    Span(&'a tracing::Span),
}

fn observe_from(cx: &Context, issuer: Issuer<'_>, obs: &Observation<'_>) {
    if let Some(scope) = cx.get::<Scope>() {
        return scope.inner.observe(cx, issuer, obs);
    }
    if let Some(scope) = Context::map_current(|current| current.get::<Scope>().cloned()) {
        return scope.inner.observe(cx, issuer, obs);
    }
    let span_context = cx.span().span_context().clone();
    if !span_context.is_valid() {
        return;
    }
    let config = GLOBAL.config();
    if matches!(config.mode, Mode::Off) {
        return;
    }
    fallback::scope_for(span_context.trace_id(), config.max_scopes)
        .inner
        .observe(cx, issuer, obs);
}

/// Runs `fut` in a fresh scope (its context attached across polls, so spans and spawned tasks
/// that carry it count) and returns its output with the findings. Uses the process-wide
/// thresholds and allowlist, but never panics and never stays off: `Off` and `Panic` become
/// `Warn` here. The basis of `otel_sql::assert_no_n_plus_one`.
pub async fn capture<F: Future>(fut: F) -> (F::Output, Vec<Finding>) {
    let mut config = (*GLOBAL.config()).clone();
    if matches!(config.mode, Mode::Off | Mode::Panic) {
        config.mode = Mode::Warn;
    }
    capture_with(config, fut).await
}

/// Like [`capture`] with an explicit configuration (used as given, `Panic` included).
pub async fn capture_with<F: Future>(config: DetectorConfig, fut: F) -> (F::Output, Vec<Finding>) {
    let scope = Scope::with_config(tracing::Span::none(), config);
    let cx = crate::context::current().with_value(scope.clone());
    let output = fut.with_context(cx).await;
    (output, scope.findings())
}
