//! B3 propagation (Zipkin), single header and multi header, to the letter of
//! <https://github.com/openzipkin/b3-propagation>.
//!
//! Parsing is hand-written because the B3 propagators of the OpenTelemetry Rust ecosystem do
//! not treat `d` as sampled and inject `b3: 0` for an empty context.
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use otel_core::propagation::{B3Encoding, B3Propagator, DebugFlag};
//!
//! let mut carrier = HashMap::new();
//! carrier.insert("b3".to_string(), "a3ce929d0e0e4736-00f067aa0ba902b7-d".to_string());
//! let cx = B3Propagator::new().extract(&carrier);
//! assert!(cx.span().span_context().is_sampled());
//! assert!(DebugFlag::is_set(&cx));
//!
//! let mut out = HashMap::new();
//! B3Propagator::with_encoding(B3Encoding::Multi).inject_context(&cx, &mut out);
//! assert_eq!(out["x-b3-traceid"], "0000000000000000a3ce929d0e0e4736");
//! assert_eq!(out["x-b3-flags"], "1");
//! ```

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use super::DebugFlag;
use super::hex;

/// The single header, `b3: {trace}-{span}-{sampling}-{parent}`.
pub const B3_SINGLE_HEADER: &str = "b3";
/// Multi header: the trace id (16 or 32 lower-case hex).
pub const B3_TRACE_ID_HEADER: &str = "x-b3-traceid";
/// Multi header: the span id (16 lower-case hex).
pub const B3_SPAN_ID_HEADER: &str = "x-b3-spanid";
/// Multi header: the parent span id (16 lower-case hex), optional.
pub const B3_PARENT_SPAN_ID_HEADER: &str = "x-b3-parentspanid";
/// Multi header: the sampling decision, `1` or `0`.
pub const B3_SAMPLED_HEADER: &str = "x-b3-sampled";
/// Multi header: `1` means debug (which implies sampled).
pub const B3_FLAGS_HEADER: &str = "x-b3-flags";

/// Which B3 headers [`B3Propagator`] injects. Extraction always understands both, and prefers
/// the single header when both are present and it is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum B3Encoding {
    /// `b3: {trace}-{span}-{sampling}` (the default).
    #[default]
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled` / `X-B3-Flags`.
    Multi,
    /// Both forms.
    SingleAndMulti,
}

/// The B3 propagator.
///
/// Extraction: 64-bit trace ids are left-padded with zeros to 128 bits; sampling `1` is
/// sampled, `0` not sampled, `d` (or `X-B3-Flags: 1`) sampled and debug ([`DebugFlag`]);
/// `b3: 0` alone (or `X-B3-Sampled: 0` without ids) is a deny: an explicitly unsampled
/// context with fresh ids, so a parent-based sampler records nothing below it. A missing
/// sampling state (deferred) is read as not sampled.
///
/// Injection writes nothing at all for an invalid context.
#[derive(Debug, Clone, Copy, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// The single-header propagator (`b3`).
    pub fn new() -> Self {
        Self::with_encoding(B3Encoding::Single)
    }

    /// A propagator that injects `encoding`.
    pub fn with_encoding(encoding: B3Encoding) -> Self {
        B3Propagator { encoding }
    }

    /// The encoding this propagator injects.
    pub fn encoding(&self) -> B3Encoding {
        self.encoding
    }
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let debug = sc.is_sampled() && DebugFlag::is_set(cx);
        if matches!(
            self.encoding,
            B3Encoding::Single | B3Encoding::SingleAndMulti
        ) {
            let mut value = String::with_capacity(32 + 1 + 16 + 2);
            hex::push_lower(&mut value, &sc.trace_id().to_bytes());
            value.push('-');
            hex::push_lower(&mut value, &sc.span_id().to_bytes());
            value.push_str(match (debug, sc.is_sampled()) {
                (true, _) => "-d",
                (false, true) => "-1",
                (false, false) => "-0",
            });
            injector.set(B3_SINGLE_HEADER, value);
        }
        if matches!(
            self.encoding,
            B3Encoding::Multi | B3Encoding::SingleAndMulti
        ) {
            let mut trace = String::with_capacity(32);
            hex::push_lower(&mut trace, &sc.trace_id().to_bytes());
            injector.set(B3_TRACE_ID_HEADER, trace);
            let mut span_id = String::with_capacity(16);
            hex::push_lower(&mut span_id, &sc.span_id().to_bytes());
            injector.set(B3_SPAN_ID_HEADER, span_id);
            if debug {
                // Debug implies sampled: X-B3-Sampled is not sent with it.
                injector.set(B3_FLAGS_HEADER, "1".to_owned());
            } else {
                injector.set(
                    B3_SAMPLED_HEADER,
                    if sc.is_sampled() { "1" } else { "0" }.to_owned(),
                );
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let single = extractor.get(B3_SINGLE_HEADER).and_then(parse_single);
        match single.or_else(|| parse_multi(extractor)) {
            Some(extracted) => extracted.into_context(cx),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static SINGLE: OnceLock<[String; 1]> = OnceLock::new();
        static MULTI: OnceLock<[String; 5]> = OnceLock::new();
        static BOTH: OnceLock<[String; 6]> = OnceLock::new();
        const MULTI_NAMES: [&str; 5] = [
            B3_TRACE_ID_HEADER,
            B3_SPAN_ID_HEADER,
            B3_PARENT_SPAN_ID_HEADER,
            B3_SAMPLED_HEADER,
            B3_FLAGS_HEADER,
        ];
        match self.encoding {
            B3Encoding::Single => {
                FieldIter::new(SINGLE.get_or_init(|| [B3_SINGLE_HEADER.to_owned()]))
            }
            B3Encoding::Multi => {
                FieldIter::new(MULTI.get_or_init(|| MULTI_NAMES.map(str::to_owned)))
            }
            B3Encoding::SingleAndMulti => FieldIter::new(BOTH.get_or_init(|| {
                let [a, b, c, d, e] = MULTI_NAMES;
                [B3_SINGLE_HEADER, a, b, c, d, e].map(str::to_owned)
            })),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// What a B3 header says.
enum Extracted {
    /// A trace to continue.
    Continue {
        trace_id: u128,
        span_id: u64,
        sampled: bool,
        debug: bool,
    },
    /// `b3: 0`: record nothing.
    Deny,
}

impl Extracted {
    fn into_context(self, cx: &Context) -> Context {
        match self {
            Extracted::Continue {
                trace_id,
                span_id,
                sampled,
                debug,
            } => {
                let flags = if sampled || debug {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::NOT_SAMPLED
                };
                let sc = SpanContext::new(
                    TraceId::from(trace_id),
                    SpanId::from(span_id),
                    flags,
                    true,
                    TraceState::NONE,
                );
                let cx = cx.with_remote_span_context(sc);
                if debug { cx.with_value(DebugFlag) } else { cx }
            }
            Extracted::Deny => {
                let ids = RandomIdGenerator::default();
                let sc = SpanContext::new(
                    ids.new_trace_id(),
                    ids.new_span_id(),
                    TraceFlags::NOT_SAMPLED,
                    true,
                    TraceState::NONE,
                );
                cx.with_remote_span_context(sc)
            }
        }
    }
}

/// The longest valid single header: 32 + 1 + 16 + 1 + 1 + 1 + 16.
const MAX_SINGLE_LEN: usize = 68;

/// `b3: {trace}-{span}[-{sampling}[-{parent}]]` or `b3: {sampling}`.
fn parse_single(value: &str) -> Option<Extracted> {
    let v = value.trim_matches([' ', '\t']).as_bytes();
    if v.len() > MAX_SINGLE_LEN {
        return None;
    }
    if v == b"0" {
        return Some(Extracted::Deny);
    }
    let mut parts = v.split(|&b| b == b'-');
    let trace_id = parse_trace_id(parts.next()?)?;
    let span_id = parse_span_id(parts.next()?)?;
    let (sampled, debug) = match parts.next() {
        None => (false, false),
        Some(b"1") => (true, false),
        Some(b"0") => (false, false),
        Some(b"d") => (true, true),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        parse_span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Extracted::Continue {
        trace_id,
        span_id,
        sampled,
        debug,
    })
}

/// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-ParentSpanId`, `X-B3-Sampled`, `X-B3-Flags`.
fn parse_multi(extractor: &dyn Extractor) -> Option<Extracted> {
    let get = |name| {
        extractor
            .get(name)
            .map(|v: &str| v.trim_matches([' ', '\t']).as_bytes())
    };
    let debug = get(B3_FLAGS_HEADER) == Some(b"1");
    let sampled = match get(B3_SAMPLED_HEADER) {
        None => None,
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        Some(_) => return None,
    };
    let (trace, span) = (get(B3_TRACE_ID_HEADER), get(B3_SPAN_ID_HEADER));
    if trace.is_none() && span.is_none() {
        return (sampled == Some(false) && !debug).then_some(Extracted::Deny);
    }
    let trace_id = parse_trace_id(trace?)?;
    let span_id = parse_span_id(span?)?;
    if let Some(parent) = get(B3_PARENT_SPAN_ID_HEADER) {
        parse_span_id(parent)?;
    }
    Some(Extracted::Continue {
        trace_id,
        span_id,
        sampled: sampled.unwrap_or(false),
        debug,
    })
}

/// 16 or 32 lower-case hex, not all zero; a 64-bit id is left-padded to 128 bits.
fn parse_trace_id(digits: &[u8]) -> Option<u128> {
    if digits.len() != 16 && digits.len() != 32 {
        return None;
    }
    hex::parse_lower_u128(digits).filter(|&id| id != 0)
}

/// 16 lower-case hex, not all zero.
fn parse_span_id(digits: &[u8]) -> Option<u64> {
    if digits.len() != 16 {
        return None;
    }
    hex::parse_lower_u64(digits).filter(|&id| id != 0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Expected (trace id, sampled, debug), or no context.
    type Want<'a> = Option<(&'a str, bool, bool)>;
    type Headers<'a> = Vec<(&'a str, &'a str)>;

    const T32: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const T16: &str = "a3ce929d0e0e4736";
    const S: &str = "e457b5a2e4d86bd1";
    const P: &str = "05e3ac9a4f6e3b90";

    fn carrier(headers: &[(&str, &str)]) -> HashMap<String, String> {
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn extract(headers: &[(&str, &str)]) -> Context {
        B3Propagator::new().extract_with_context(&Context::new(), &carrier(headers))
    }

    /// (trace id, span id, sampled, debug) or None.
    fn summary(cx: &Context) -> Option<(String, String, bool, bool)> {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| {
            (
                sc.trace_id().to_string(),
                sc.span_id().to_string(),
                sc.is_sampled(),
                DebugFlag::is_set(cx),
            )
        })
    }

    #[test]
    fn single_header_table() {
        let padded = format!("0000000000000000{T16}");
        let cases: Vec<(String, Want)> = vec![
            (format!("{T32}-{S}-1-{P}"), Some((T32, true, false))),
            (format!("{T32}-{S}-1"), Some((T32, true, false))),
            (format!("{T32}-{S}-0"), Some((T32, false, false))),
            (format!("{T32}-{S}-d"), Some((T32, true, true))),
            (format!("{T32}-{S}-d-{P}"), Some((T32, true, true))),
            (format!("{T32}-{S}"), Some((T32, false, false))),
            (format!("{T16}-{S}-1"), Some((padded.as_str(), true, false))),
            // invalid
            (format!("{T32}-{S}-2"), None),
            (format!("{T32}-{S}-true"), None),
            (format!("{T32}-{S}-1-{P}-x"), None),
            (format!("{T32}-{S}-1-"), None),
            (format!("{T32}-{S}--{P}"), None),
            (format!("{T32}-{S}-1-0000000000000000"), None),
            (format!("{}-{S}-1", T32.to_uppercase()), None),
            (format!("{}-{S}-1", &T32[1..]), None),
            (format!("{T32}0-{S}-1"), None),
            (format!("{T32}-{}-1", &S[1..]), None),
            (format!("00000000000000000000000000000000-{S}-1"), None),
            (format!("{T32}-0000000000000000-1"), None),
            (T32.to_owned(), None),
            ("1".into(), None),
            ("d".into(), None),
            ("".into(), None),
        ];
        for (value, want) in cases {
            let got = summary(&extract(&[("b3", &value)]));
            let want = want.map(|(t, sampled, debug)| (t.to_owned(), S.to_owned(), sampled, debug));
            assert_eq!(got, want, "{value:?}");
        }
    }

    #[test]
    fn single_zero_alone_is_deny() {
        let cx = extract(&[("b3", "0")]);
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_remote());
        assert!(!sc.is_sampled());
    }

    #[test]
    fn multi_header_table() {
        let padded = format!("0000000000000000{T16}");
        let cases: Vec<(Headers, Want)> = vec![
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-sampled", "1"),
                ],
                Some((T32, true, false)),
            ),
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-parentspanid", P),
                    ("x-b3-sampled", "0"),
                ],
                Some((T32, false, false)),
            ),
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-sampled", "true"),
                ],
                Some((T32, true, false)),
            ),
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-flags", "1"),
                ],
                Some((T32, true, true)),
            ),
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-flags", "1"),
                    ("x-b3-sampled", "0"),
                ],
                Some((T32, true, true)),
            ),
            (
                vec![("x-b3-traceid", T32), ("x-b3-spanid", S)],
                Some((T32, false, false)),
            ),
            (
                vec![
                    ("x-b3-traceid", T16),
                    ("x-b3-spanid", S),
                    ("x-b3-sampled", "1"),
                ],
                Some((padded.as_str(), true, false)),
            ),
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-flags", "0"),
                ],
                Some((T32, false, false)),
            ),
            // invalid
            (vec![("x-b3-traceid", T32)], None),
            (vec![("x-b3-spanid", S)], None),
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-sampled", "2"),
                ],
                None,
            ),
            (
                vec![
                    ("x-b3-traceid", T32),
                    ("x-b3-spanid", S),
                    ("x-b3-parentspanid", "x"),
                ],
                None,
            ),
            (vec![("x-b3-traceid", &T32[2..]), ("x-b3-spanid", S)], None),
            (
                vec![("x-b3-traceid", T32), ("x-b3-spanid", "E457B5A2E4D86BD1")],
                None,
            ),
            (vec![("x-b3-sampled", "1")], None),
            (vec![("x-b3-flags", "1")], None),
        ];
        for (headers, want) in cases {
            let got = summary(&extract(&headers));
            let want = want.map(|(t, sampled, debug)| (t.to_owned(), S.to_owned(), sampled, debug));
            assert_eq!(got, want, "{headers:?}");
        }
        let deny = extract(&[("x-b3-sampled", "0")]);
        assert!(deny.span().span_context().is_valid());
        assert!(!deny.span().span_context().is_sampled());
    }

    #[test]
    fn single_header_preferred_then_multi_as_fallback() {
        let other = "11111111111111111111111111111111";
        let cx = extract(&[
            ("b3", &format!("{T32}-{S}-1")),
            ("x-b3-traceid", other),
            ("x-b3-spanid", S),
        ]);
        assert_eq!(summary(&cx).unwrap().0, T32);
        let cx = extract(&[
            ("b3", "garbage"),
            ("x-b3-traceid", other),
            ("x-b3-spanid", S),
        ]);
        assert_eq!(summary(&cx).unwrap().0, other);
    }

    fn inject(encoding: B3Encoding, cx: &Context) -> Vec<(String, String)> {
        let mut out = HashMap::new();
        B3Propagator::with_encoding(encoding).inject_context(cx, &mut out);
        let mut out: Vec<_> = out.into_iter().collect();
        out.sort();
        out
    }

    fn context(flags: TraceFlags, debug: bool) -> Context {
        let sc = SpanContext::new(
            TraceId::from_hex(T32).unwrap(),
            SpanId::from_hex(S).unwrap(),
            flags,
            false,
            TraceState::NONE,
        );
        let cx = Context::new().with_remote_span_context(sc);
        if debug { cx.with_value(DebugFlag) } else { cx }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn inject_table() {
        let sampled = context(TraceFlags::SAMPLED, false);
        let unsampled = context(TraceFlags::NOT_SAMPLED, false);
        let debug = context(TraceFlags::SAMPLED, true);
        let single = |s: &str| format!("{T32}-{S}-{s}");
        assert_eq!(
            inject(B3Encoding::Single, &sampled),
            pairs(&[("b3", &single("1"))])
        );
        assert_eq!(
            inject(B3Encoding::Single, &unsampled),
            pairs(&[("b3", &single("0"))])
        );
        assert_eq!(
            inject(B3Encoding::Single, &debug),
            pairs(&[("b3", &single("d"))])
        );
        assert_eq!(
            inject(B3Encoding::Multi, &sampled),
            pairs(&[
                ("x-b3-sampled", "1"),
                ("x-b3-spanid", S),
                ("x-b3-traceid", T32)
            ])
        );
        assert_eq!(
            inject(B3Encoding::Multi, &debug),
            pairs(&[
                ("x-b3-flags", "1"),
                ("x-b3-spanid", S),
                ("x-b3-traceid", T32)
            ])
        );
        assert_eq!(
            inject(B3Encoding::SingleAndMulti, &unsampled),
            pairs(&[
                ("b3", &single("0")),
                ("x-b3-sampled", "0"),
                ("x-b3-spanid", S),
                ("x-b3-traceid", T32)
            ])
        );
    }

    #[test]
    fn empty_context_injects_nothing() {
        for encoding in [
            B3Encoding::Single,
            B3Encoding::Multi,
            B3Encoding::SingleAndMulti,
        ] {
            assert!(inject(encoding, &Context::new()).is_empty());
        }
    }

    #[test]
    fn fields() {
        assert_eq!(B3Propagator::new().fields().collect::<Vec<_>>(), ["b3"]);
        assert_eq!(
            B3Propagator::with_encoding(B3Encoding::Multi)
                .fields()
                .count(),
            5
        );
        assert_eq!(
            B3Propagator::with_encoding(B3Encoding::SingleAndMulti)
                .fields()
                .count(),
            6
        );
    }
}
