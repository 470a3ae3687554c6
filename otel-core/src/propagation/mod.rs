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
        let value = match known_header(key) {
            Some(name) => self.0.get(name),
            None => self.0.get(key),
        };
        value.and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all = match known_header(key) {
            Some(name) => self.0.get_all(name),
            None => self.0.get_all(key),
        };
        let values: Vec<&str> = all.iter().filter_map(|v| v.to_str().ok()).collect();
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
        let name = match known_header(key) {
            Some(name) => name.clone(),
            None => match HeaderName::from_bytes(key.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        // `TryFrom<String>` takes the buffer over instead of copying it.
        if let Ok(value) = HeaderValue::try_from(value) {
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

/// The header names our propagators use, pre-parsed: a lookup or an insert with one of these
/// skips parsing (and, for an insert, allocating) the name on every request.
fn known_header(key: &str) -> Option<&'static HeaderName> {
    static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    static BAGGAGE: HeaderName = HeaderName::from_static("baggage");
    static B3: HeaderName = HeaderName::from_static("b3");
    static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
    static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
    static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
    static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
    static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
    static UBER_TRACE_ID: HeaderName = HeaderName::from_static("uber-trace-id");
    static XRAY: HeaderName = HeaderName::from_static("x-amzn-trace-id");
    Some(match key {
        "traceparent" => &TRACEPARENT,
        "tracestate" => &TRACESTATE,
        "baggage" => &BAGGAGE,
        "b3" => &B3,
        "x-b3-traceid" => &B3_TRACE_ID,
        "x-b3-spanid" => &B3_SPAN_ID,
        "x-b3-parentspanid" => &B3_PARENT_SPAN_ID,
        "x-b3-sampled" => &B3_SAMPLED,
        "x-b3-flags" => &B3_FLAGS,
        "uber-trace-id" => &UBER_TRACE_ID,
        "x-amzn-trace-id" => &XRAY,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_map_carriers_see_every_value_and_any_case() {
        let mut headers = HeaderMap::new();
        headers.append("tracestate", HeaderValue::from_static("a=1"));
        headers.append("tracestate", HeaderValue::from_static("b=2"));
        headers.append("x-custom", HeaderValue::from_static("c"));
        let e = HeaderExtractor(&headers);
        assert_eq!(e.get_all("tracestate"), Some(vec!["a=1", "b=2"]));
        assert_eq!(e.get("tracestate"), Some("a=1"));
        assert_eq!(e.get("X-Custom"), Some("c"));
        assert_eq!(e.get_all("x-custom"), Some(vec!["c"]));
        assert_eq!(e.get("traceparent"), None);

        let mut out = HeaderMap::new();
        let mut i = HeaderInjector(&mut out);
        i.set("traceparent", "v1".to_owned());
        i.set("traceparent", "v2".to_owned());
        i.set("Uberctx-Key", "v".to_owned());
        i.set("bad header", "v".to_owned());
        i.set("b3", "bad\nvalue".to_owned());
        assert_eq!(
            out.get_all("traceparent").iter().collect::<Vec<_>>(),
            ["v2"]
        );
        assert_eq!(out["uberctx-key"], "v");
        assert_eq!(out.len(), 2);
    }
}
