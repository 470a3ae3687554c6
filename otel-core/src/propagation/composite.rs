//! The propagator chosen by `OTEL_PROPAGATORS`: several propagators used as one.
//!
//! Names: `tracecontext`, `baggage`, `b3` (single header), `b3multi`, `jaeger`, `xray`,
//! `none`; the default is `tracecontext,baggage` when the variable is unset or empty. An
//! unknown name is a [`PropagatorError`] that says what to change.
//!
//! Extraction: the first trace propagator, in the listed order, that yields a valid span
//! context wins; baggage from `baggage` and Jaeger `uberctx-*` headers is merged (earlier
//! propagators win on the same key). Injection: every propagator writes its headers.
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use otel_core::propagation::CompositePropagator;
//!
//! let propagator = CompositePropagator::from_names("b3multi, tracecontext").unwrap();
//! let mut carrier = HashMap::new();
//! carrier.insert("traceparent".to_string(),
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string());
//! let cx = propagator.extract(&carrier);
//! assert!(cx.span().span_context().is_valid());
//!
//! let err = CompositePropagator::from_names("tracecontext,zipkin").unwrap_err();
//! assert!(err.to_string().contains("OTEL_PROPAGATORS"));
//! ```

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::TraceContextExt;

use super::{
    B3Encoding, B3Propagator, BaggagePropagator, DebugFlag, JaegerPropagator,
    TraceContextPropagator, XrayPropagator,
};

/// The environment variable read by [`CompositePropagator::from_env`].
pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";
/// The names [`CompositePropagator::from_names`] accepts.
pub const ACCEPTED_NAMES: [&str; 7] = [
    "tracecontext",
    "baggage",
    "b3",
    "b3multi",
    "jaeger",
    "xray",
    "none",
];
/// The propagators used when `OTEL_PROPAGATORS` is unset or empty.
pub const DEFAULT_PROPAGATORS: &str = "tracecontext,baggage";

/// Several propagators used as one, in the listed order (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct CompositePropagator {
    propagators: Vec<Member>,
    fields: Vec<String>,
}

/// An unknown name in `OTEL_PROPAGATORS` (or in the list given to
/// [`CompositePropagator::from_names`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "OTEL_PROPAGATORS: unknown propagator {name:?} in {list:?}; accepted names are \
     tracecontext, baggage, b3, b3multi, jaeger, xray, none (comma-separated)"
)]
pub struct PropagatorError {
    name: String,
    list: String,
}

impl PropagatorError {
    /// The name that was not understood.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl CompositePropagator {
    /// Builds from a comma-separated list of names (`tracecontext,baggage`); white space and
    /// case are ignored, a repeated name counts once, `none` adds nothing. An empty list gives
    /// a propagator that does nothing.
    pub fn from_names(list: &str) -> Result<Self, PropagatorError> {
        let mut propagators = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let member = match name.to_ascii_lowercase().as_str() {
                "tracecontext" => Member::TraceContext(TraceContextPropagator::new()),
                "baggage" => Member::Baggage(BaggagePropagator::new()),
                "b3" => Member::B3(B3Propagator::with_encoding(B3Encoding::Single)),
                "b3multi" => Member::B3(B3Propagator::with_encoding(B3Encoding::Multi)),
                "jaeger" => Member::Jaeger(JaegerPropagator::new()),
                "xray" => Member::Xray(XrayPropagator::new()),
                "none" => continue,
                _ => {
                    return Err(PropagatorError {
                        name: bounded(name),
                        list: bounded(list),
                    });
                }
            };
            if !propagators.contains(&member) {
                propagators.push(member);
            }
        }
        let mut fields: Vec<String> = Vec::new();
        for member in &propagators {
            for field in member.as_dyn().fields() {
                if !fields.iter().any(|f| f == field) {
                    fields.push(field.to_owned());
                }
            }
        }
        Ok(CompositePropagator {
            propagators,
            fields,
        })
    }

    /// Builds from `OTEL_PROPAGATORS`, or `tracecontext,baggage` when it is unset or empty.
    pub fn from_env() -> Result<Self, PropagatorError> {
        match std::env::var(OTEL_PROPAGATORS) {
            Ok(list) if !list.trim().is_empty() => Self::from_names(&list),
            _ => Self::from_names(DEFAULT_PROPAGATORS),
        }
    }
}

impl Default for CompositePropagator {
    /// `tracecontext,baggage`.
    fn default() -> Self {
        Self::from_names(DEFAULT_PROPAGATORS).expect("the default names are valid")
    }
}

impl TextMapPropagator for CompositePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        for member in &self.propagators {
            member.as_dyn().inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut result = cx.clone();
        let mut span_found = false;
        let mut baggage: Option<Baggage> = None;
        for member in &self.propagators {
            let extracted = member
                .as_dyn()
                .extract_with_context(&Context::new(), extractor);
            let span = extracted.span();
            let sc = span.span_context();
            if !span_found && sc.is_valid() {
                span_found = true;
                result = result.with_remote_span_context(sc.clone());
                if DebugFlag::is_set(&extracted) {
                    result = result.with_value(DebugFlag);
                }
            }
            let found = extracted.baggage();
            if !found.is_empty() {
                let merged = baggage.get_or_insert_with(Baggage::new);
                for (key, (value, metadata)) in found {
                    if merged.get(key.as_str()).is_none() {
                        merged.insert_with_metadata(key.clone(), value.clone(), metadata.clone());
                    }
                }
            }
        }
        match baggage {
            Some(baggage) => result.with_baggage(baggage),
            None => result,
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// One propagator of the list (an enum, not a `Box<dyn …>`, so equal names can be deduplicated).
#[derive(Debug, Clone, Copy)]
enum Member {
    TraceContext(TraceContextPropagator),
    Baggage(BaggagePropagator),
    B3(B3Propagator),
    Jaeger(JaegerPropagator),
    Xray(XrayPropagator),
}

impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Member::B3(a), Member::B3(b)) => a.encoding() == b.encoding(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Member {
    fn as_dyn(&self) -> &dyn TextMapPropagator {
        match self {
            Member::TraceContext(p) => p,
            Member::Baggage(p) => p,
            Member::B3(p) => p,
            Member::Jaeger(p) => p,
            Member::Xray(p) => p,
        }
    }
}

/// A configuration value shortened for an error message.
fn bounded(value: &str) -> String {
    const MAX: usize = 200;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn carrier(headers: &[(&str, &str)]) -> HashMap<String, String> {
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const B3: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";

    fn trace_id(p: &CompositePropagator, headers: &[(&str, &str)]) -> Option<String> {
        let cx = p.extract_with_context(&Context::new(), &carrier(headers));
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    #[test]
    fn names_and_fields() {
        let all =
            CompositePropagator::from_names("tracecontext,baggage,b3,b3multi,jaeger,xray,none")
                .unwrap();
        assert_eq!(
            all.fields().collect::<Vec<_>>(),
            [
                "traceparent",
                "tracestate",
                "baggage",
                "b3",
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-parentspanid",
                "x-b3-sampled",
                "x-b3-flags",
                "uber-trace-id",
                "x-amzn-trace-id"
            ]
        );
        let default = CompositePropagator::default();
        assert_eq!(
            default.fields().collect::<Vec<_>>(),
            ["traceparent", "tracestate", "baggage"]
        );
        let dedup = CompositePropagator::from_names(" TraceContext , tracecontext,,").unwrap();
        assert_eq!(dedup.propagators.len(), 1);
        assert_eq!(
            CompositePropagator::from_names("none")
                .unwrap()
                .fields()
                .count(),
            0
        );
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let err = CompositePropagator::from_names("tracecontext, zipkin").unwrap_err();
        assert_eq!(err.name(), "zipkin");
        assert_eq!(
            err.to_string(),
            "OTEL_PROPAGATORS: unknown propagator \"zipkin\" in \"tracecontext, zipkin\"; accepted names are \
             tracecontext, baggage, b3, b3multi, jaeger, xray, none (comma-separated)"
        );
        let long = "x".repeat(10_000);
        assert!(
            CompositePropagator::from_names(&long)
                .unwrap_err()
                .to_string()
                .len()
                < 800
        );
    }

    #[test]
    fn first_valid_trace_propagator_in_listed_order_wins() {
        let b3_first = CompositePropagator::from_names("b3,tracecontext").unwrap();
        let tc_first = CompositePropagator::from_names("tracecontext,b3").unwrap();
        let both = [("traceparent", TP), ("b3", B3)];
        assert_eq!(
            trace_id(&b3_first, &both).unwrap(),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert_eq!(
            trace_id(&tc_first, &both).unwrap(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        // an invalid first one falls through to the next
        let bad_tc = [("traceparent", "00-garbage"), ("b3", B3)];
        assert_eq!(
            trace_id(&tc_first, &bad_tc).unwrap(),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert_eq!(trace_id(&tc_first, &[]), None);
    }

    #[test]
    fn baggage_merges_from_baggage_and_jaeger() {
        let p = CompositePropagator::from_names("tracecontext,baggage,jaeger").unwrap();
        let cx = p.extract_with_context(
            &Context::new(),
            &carrier(&[
                ("traceparent", TP),
                ("baggage", "a=1,b=2"),
                ("uberctx-b", "jaeger"),
                ("uberctx-c", "3"),
            ]),
        );
        let mut got: Vec<_> = cx
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.to_string()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned()),
                ("c".to_owned(), "3".to_owned())
            ]
        );
        assert!(cx.span().span_context().is_valid());
    }

    #[test]
    fn b3_deny_and_debug_pass_through() {
        let p = CompositePropagator::from_names("tracecontext,b3,b3multi").unwrap();
        let deny = p.extract_with_context(&Context::new(), &carrier(&[("b3", "0")]));
        assert!(deny.span().span_context().is_valid());
        assert!(!deny.span().span_context().is_sampled());

        let debug = p.extract_with_context(
            &Context::new(),
            &carrier(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]),
        );
        assert!(DebugFlag::is_set(&debug));
        let mut out = HashMap::new();
        p.inject_context(&debug, &mut out);
        assert_eq!(
            out["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"
        );
        assert_eq!(out["x-b3-flags"], "1");
        assert_eq!(
            out["traceparent"],
            "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01"
        );
    }

    #[test]
    fn inject_all() {
        let p =
            CompositePropagator::from_names("tracecontext,baggage,b3,b3multi,jaeger,xray").unwrap();
        let sc = SpanContext::new(
            TraceId::from(1),
            SpanId::from(2),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let cx = Context::new()
            .with_remote_span_context(sc)
            .with_baggage([opentelemetry::KeyValue::new("k", "v")]);
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        let mut keys: Vec<_> = out.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "b3",
                "baggage",
                "traceparent",
                "uber-trace-id",
                "uberctx-k",
                "x-amzn-trace-id",
                "x-b3-sampled",
                "x-b3-spanid",
                "x-b3-traceid"
            ]
        );
    }
}
