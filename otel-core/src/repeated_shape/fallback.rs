//! Fallback scopes for operations that run outside any [`Scope`]: one per trace id, in a
//! process-wide map capped at `max_scopes` entries (the oldest is evicted first).
//!
//! ```
//! // Nothing is kept for operations outside any trace.
//! assert_eq!(otel_core::repeated_shape::fallback_scope_count(), 0);
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::LazyLock;

use opentelemetry::trace::TraceId;
use parking_lot::Mutex;

use super::scope::{Kind, Scope};

/// How many fallback scopes are alive (at most the configured `max_scopes`).
pub fn fallback_scope_count() -> usize {
    FALLBACK.lock().scopes.len()
}

// ---- internals ------------------------------------------------------------------------------

#[derive(Default)]
struct FallbackScopes {
    scopes: HashMap<TraceId, Scope>,
    /// Insertion order, oldest first; each trace id appears once.
    order: VecDeque<TraceId>,
}

static FALLBACK: LazyLock<Mutex<FallbackScopes>> = LazyLock::new(Default::default);

/// The fallback scope of `trace_id`, created (evicting the oldest beyond `max_scopes`) if
/// needed.
pub(crate) fn scope_for(trace_id: TraceId, max_scopes: usize) -> Scope {
    let mut evicted = Vec::new();
    let scope = {
        let mut fallback = FALLBACK.lock();
        if let Some(scope) = fallback.scopes.get(&trace_id) {
            return scope.clone();
        }
        while fallback.scopes.len() >= max_scopes.max(1) {
            let Some(oldest) = fallback.order.pop_front() else {
                break;
            };
            if let Some(scope) = fallback.scopes.remove(&oldest) {
                evicted.push(scope);
            }
        }
        let scope = Scope::build(tracing::Span::none(), None, Kind::Fallback);
        fallback.scopes.insert(trace_id, scope.clone());
        fallback.order.push_back(trace_id);
        scope
    };
    // Evicted scopes report their final counts when dropped: outside the map's lock.
    drop(evicted);
    scope
}
