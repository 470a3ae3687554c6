//! Context propagation: strict W3C trace-context and baggage, B3 (single and multi header),
//! Jaeger and AWS X-Ray, each an [`opentelemetry::propagation::TextMapPropagator`].
//!
//! [`HeaderExtractor`] and [`HeaderInjector`] adapt an [`http::HeaderMap`]; the extractor
//! sees every value of a repeated header (`HeaderMap::get_all`), which the W3C rules need
//! (two `traceparent` headers make the context invalid; `tracestate` is joined across headers).
//!
//! ```
//! use http::HeaderMap;
//! use opentelemetry::trace::TraceContextExt;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
//! let cx = otel_core::propagation::extract_with(
//!     &otel_core::propagation::TraceContextPropagator::new(), &headers);
//! assert!(cx.span().span_context().is_sampled());
//! ```
//!
//! The parsers of this module are hand-written rather than taken from `opentelemetry_sdk`:
//! the stock propagators are not strict (wrong field lengths accepted, only the first
//! `tracestate` read, the `random` flag dropped, B3 `d` not treated as sampled, `b3: 0`
//! injected for an empty context). Every parser is bounded: a 1 MB hostile header is rejected
//! without being scanned or copied.

pub mod b3;
pub mod baggage;
pub mod composite;
pub mod debug_flag;
mod hex;
pub mod jaeger;
pub mod w3c;
pub mod xray;

pub use b3::{B3Encoding, B3Propagator};
pub use baggage::BaggagePropagator;
pub use composite::{CompositePropagator, PropagatorError};
pub use debug_flag::DebugFlag;
pub use jaeger::JaegerPropagator;
pub use w3c::TraceContextPropagator;
pub use xray::XrayPropagator;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};

/// Reads propagation fields from an [`http::HeaderMap`], seeing every value of a repeated
/// header. Values that are not visible ASCII are skipped, never passed on.
#[derive(Debug, Clone, Copy)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values)
        }
    }
}

/// Writes propagation fields into an [`http::HeaderMap`], replacing earlier values of the
/// same header. A field name or value that is not valid in HTTP is skipped.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

/// Extracts a context from `headers` with the globally installed propagator (the one
/// [`Telemetry`](crate::Telemetry) installs from `OTEL_PROPAGATORS`).
pub fn extract(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Extracts a context from `headers` with `propagator`.
pub fn extract_with(propagator: &dyn TextMapPropagator, headers: &HeaderMap) -> Context {
    propagator.extract(&HeaderExtractor(headers))
}

/// Injects `cx` into `headers` with the globally installed propagator.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeaderInjector(headers))
    })
}

/// Injects `cx` into `headers` with `propagator`.
pub fn inject_with(propagator: &dyn TextMapPropagator, cx: &Context, headers: &mut HeaderMap) {
    propagator.inject_context(cx, &mut HeaderInjector(headers))
}
