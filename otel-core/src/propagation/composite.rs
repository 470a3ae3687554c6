//! STUB (being replaced by the strict implementation): composite propagator from
//! `OTEL_PROPAGATORS`.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter};

/// A propagator built from a list of names.
#[derive(Debug)]
pub struct CompositePropagator {
    inner: opentelemetry::propagation::TextMapCompositePropagator,
}

/// An unknown propagator name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OTEL_PROPAGATORS: unknown propagator {0:?}")]
pub struct PropagatorError(pub String);

impl CompositePropagator {
    /// Builds from a comma-separated list (`tracecontext,baggage`).
    pub fn from_names(list: &str) -> Result<Self, PropagatorError> {
        let mut ps: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "tracecontext" => ps.push(Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new())),
                "baggage" => ps.push(Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new())),
                "none" => {}
                other => return Err(PropagatorError(other.to_owned())),
            }
        }
        Ok(CompositePropagator { inner: opentelemetry::propagation::TextMapCompositePropagator::new(ps) })
    }

    /// Builds from `OTEL_PROPAGATORS` (default `tracecontext,baggage`).
    pub fn from_env() -> Result<Self, PropagatorError> {
        Self::from_names(&std::env::var("OTEL_PROPAGATORS").unwrap_or_else(|_| "tracecontext,baggage".into()))
    }
}

impl TextMapPropagator for CompositePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inner.inject_context(cx, injector)
    }
    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.inner.extract_with_context(cx, extractor)
    }
    fn fields(&self) -> FieldIter<'_> {
        self.inner.fields()
    }
}
