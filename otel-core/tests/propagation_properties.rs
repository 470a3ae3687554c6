//! Property tests of every propagator: inject → extract is the identity, and arbitrary input
//! never panics and never yields a context.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt, BaggageMetadata};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use otel_core::propagation::{
    B3Encoding, B3Propagator, BaggagePropagator, CompositePropagator, DebugFlag, HeaderExtractor,
    HeaderInjector, JaegerPropagator, TraceContextPropagator, XrayPropagator,
};
use proptest::prelude::*;

fn roundtrip(p: &dyn TextMapPropagator, cx: &Context) -> (HeaderMap, Context) {
    let mut headers = HeaderMap::new();
    p.inject_context(cx, &mut HeaderInjector(&mut headers));
    let back = p.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
    (headers, back)
}

fn span_context(trace: u128, span: u64, flags: u8, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags),
        true,
        state,
    )
}

fn sorted_baggage(cx: &Context) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
        .collect();
    v.sort();
    v
}

/// A tracestate key of the W3C grammar that the SDK's `TraceState` also accepts (system ids
/// of at most 13 characters: see the unit test on 14-character ones).
fn tracestate_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_*/-]{0,30}",
        "[a-z0-9][a-z0-9_*/-]{0,20}@[a-z][a-z0-9_*/-]{0,12}",
    ]
}

fn tracestate() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map(tracestate_key(), "[ -+\\--<>-~]{0,30}[!-+\\--<>-~]", 0..=32)
        .prop_map(|m: BTreeMap<String, String>| m.into_iter().collect())
}

fn baggage_entries() -> impl Strategy<Value = Vec<(String, String, String)>> {
    proptest::collection::btree_map(
        "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}",
        (
            any::<String>(),
            prop_oneof![
                Just(String::new()),
                "[a-z]{1,5}(=[a-z0-9%]{0,5})?(;[a-z]{1,5})?"
            ],
        ),
        0..=20,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, (v, meta))| (k, v.chars().take(40).collect(), meta))
            .collect()
    })
}

fn ids() -> impl Strategy<Value = (u128, u64)> {
    (1..=u128::MAX, 1..=u64::MAX)
}

proptest! {
    #[test]
    fn w3c_inject_extract_is_identity((trace, span) in ids(), flags in any::<u8>(), state in tracestate()) {
        let ts = TraceState::from_key_value(state.clone()).unwrap();
        let cx = Context::new().with_remote_span_context(span_context(trace, span, flags, ts.clone()));
        let (headers, back) = roundtrip(&TraceContextPropagator::new(), &cx);
        prop_assert_eq!(back.span().span_context().clone(), span_context(trace, span, flags, ts));
        prop_assert_eq!(headers.contains_key("tracestate"), !state.is_empty());
    }

    #[test]
    fn baggage_inject_extract_is_identity(entries in baggage_entries()) {
        let baggage: Baggage = entries
            .iter()
            .map(|(k, v, m)| opentelemetry::baggage::KeyValueMetadata::new(k.clone(), v.clone(), BaggageMetadata::from(m.as_str())))
            .collect();
        let cx = Context::new().with_baggage(baggage);
        let (_, back) = roundtrip(&BaggagePropagator::new(), &cx);
        prop_assert_eq!(sorted_baggage(&back), sorted_baggage(&cx));
        prop_assert_eq!(sorted_baggage(&back).len(), entries.len());
    }

    #[test]
    fn b3_inject_extract_is_identity((trace, span) in ids(), sampled in any::<bool>(), debug in any::<bool>(), which in 0..3usize) {
        let encoding = [B3Encoding::Single, B3Encoding::Multi, B3Encoding::SingleAndMulti][which];
        let mut cx = Context::new().with_remote_span_context(span_context(trace, span, u8::from(sampled || debug), TraceState::NONE));
        if debug { cx = cx.with_value(DebugFlag); }
        let (_, back) = roundtrip(&B3Propagator::with_encoding(encoding), &cx);
        prop_assert_eq!(back.span().span_context().clone(), span_context(trace, span, u8::from(sampled || debug), TraceState::NONE));
        prop_assert_eq!(DebugFlag::is_set(&back), debug);
    }

    #[test]
    fn jaeger_inject_extract_is_identity(
        (trace, span) in ids(), sampled in any::<bool>(), debug in any::<bool>(),
        entries in proptest::collection::btree_map("[a-z0-9!#$%&'*+.^_`|~-]{1,12}", any::<String>(), 0..10),
    ) {
        let flags = u8::from(sampled || debug);
        let mut cx = Context::new()
            .with_remote_span_context(span_context(trace, span, flags, TraceState::NONE))
            .with_baggage(entries.iter().map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone())));
        if debug { cx = cx.with_value(DebugFlag); }
        let (_, back) = roundtrip(&JaegerPropagator::new(), &cx);
        prop_assert_eq!(back.span().span_context().clone(), span_context(trace, span, flags, TraceState::NONE));
        prop_assert_eq!(DebugFlag::is_set(&back), debug);
        prop_assert_eq!(sorted_baggage(&back), sorted_baggage(&cx));
    }

    #[test]
    fn xray_inject_extract_is_identity((trace, span) in ids(), sampled in any::<bool>()) {
        let cx = Context::new().with_remote_span_context(span_context(trace, span, u8::from(sampled), TraceState::NONE));
        let (_, back) = roundtrip(&XrayPropagator::new(), &cx);
        prop_assert_eq!(back.span().span_context().clone(), span_context(trace, span, u8::from(sampled), TraceState::NONE));
    }

    #[test]
    fn composite_inject_extract_is_identity((trace, span) in ids(), flags in any::<u8>(), state in tracestate(), entries in baggage_entries()) {
        let all = CompositePropagator::from_names("tracecontext,baggage,b3,b3multi,jaeger,xray").unwrap();
        let ts = TraceState::from_key_value(state).unwrap();
        let baggage: Baggage = entries
            .iter()
            .map(|(k, v, m)| opentelemetry::baggage::KeyValueMetadata::new(k.clone(), v.clone(), BaggageMetadata::from(m.as_str())))
            .collect();
        let cx = Context::new()
            .with_remote_span_context(span_context(trace, span, flags, ts.clone()))
            .with_baggage(baggage);
        let (_, back) = roundtrip(&all, &cx);
        prop_assert_eq!(back.span().span_context().clone(), span_context(trace, span, flags, ts));
        // `baggage` is listed first: its values win over the (lower-cased) Jaeger copies.
        prop_assert_eq!(sorted_baggage(&back).into_iter().filter(|e| cx.baggage().get(e.0.as_str()).is_some()).collect::<Vec<_>>(), sorted_baggage(&cx));
    }
}

/// Every header any of our propagators reads.
const HEADERS: &[&str] = &[
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
    "uberctx-k",
    "x-amzn-trace-id",
];

fn all_propagators() -> Vec<Box<dyn TextMapPropagator>> {
    vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
        Box::new(B3Propagator::with_encoding(B3Encoding::SingleAndMulti)),
        Box::new(JaegerPropagator::new()),
        Box::new(XrayPropagator::new()),
        Box::new(
            CompositePropagator::from_names("tracecontext,baggage,b3,b3multi,jaeger,xray").unwrap(),
        ),
    ]
}

/// `b3: 0` (and `X-B3-Sampled: 0` without ids) is the one input that yields a context
/// without ids in it: a deny, which must be unsampled.
fn is_deny(values: &[(usize, String)]) -> bool {
    values.iter().any(|(i, v)| {
        matches!(HEADERS[*i], "b3" | "x-b3-sampled") && v.trim_matches([' ', '\t']) == "0"
    })
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic_nor_yield_a_context(values in proptest::collection::vec((0..HEADERS.len(), any::<String>()), 0..8)) {
        let mut carrier = std::collections::HashMap::new();
        for (i, v) in &values {
            carrier.insert(HEADERS[*i].to_owned(), v.clone());
        }
        for p in all_propagators() {
            let cx = p.extract_with_context(&Context::new(), &carrier);
            let span = cx.span();
            let sc = span.span_context();
            prop_assert!(!sc.is_valid() || (is_deny(&values) && !sc.is_sampled()), "{:?} from {:?}", sc, values);
        }
    }

    #[test]
    fn arbitrary_bytes_in_header_maps_never_panic_nor_yield_a_context(values in proptest::collection::vec((0..HEADERS.len(), proptest::collection::vec(any::<u8>(), 0..80)), 0..8)) {
        let mut headers = HeaderMap::new();
        let mut seen = Vec::new();
        for (i, bytes) in &values {
            if let Ok(v) = HeaderValue::from_bytes(bytes) {
                if let Ok(s) = v.to_str() { seen.push((*i, s.to_owned())); }
                headers.append(HeaderName::from_static(HEADERS[*i]), v);
            }
        }
        for p in all_propagators() {
            let cx = p.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
            let span = cx.span();
            let sc = span.span_context();
            prop_assert!(!sc.is_valid() || (is_deny(&seen) && !sc.is_sampled()), "{:?} from {:?}", sc, values);
        }
    }

    /// Near-valid input (a valid header with one byte changed, or cut) never panics.
    #[test]
    fn mutated_valid_headers_never_panic(which in 0..6usize, pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let valid = [
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("tracestate", "rojo=00f067aa0ba902b7,t@v=x"),
            ("baggage", "k=v%20x;p=1,a=b"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"),
            ("uber-trace-id", "a3ce929d0e0e4736%3Af067aa0ba902b7%3A0%3A1"),
            ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
        ];
        let (name, value) = valid[which];
        let mut bytes = value.as_bytes().to_vec();
        let i = pos.index(bytes.len());
        if cut { bytes.truncate(i) } else { bytes[i] = byte }
        let value = String::from_utf8_lossy(&bytes).into_owned();
        let carrier = std::collections::HashMap::from([
            (name.to_owned(), value),
            ("traceparent".to_owned(), valid[0].1.to_owned()),
        ]);
        for p in all_propagators() {
            let _ = p.extract_with_context(&Context::new(), &carrier);
        }
    }
}

#[test]
fn hostile_megabyte_headers_are_cheap() {
    let huge = "a".repeat(1 << 20);
    let mut carrier = std::collections::HashMap::new();
    for h in HEADERS {
        carrier.insert((*h).to_owned(), huge.clone());
    }
    let start = std::time::Instant::now();
    for p in all_propagators() {
        let cx = p.extract_with_context(&Context::new(), &carrier);
        assert!(!cx.span().span_context().is_valid());
        assert_eq!(cx.baggage().len(), 0);
    }
    // Every parser looks at a bounded prefix at most: far below a millisecond per header even
    // in a debug build.
    assert!(
        start.elapsed() < std::time::Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}
