//! Jaeger propagation: `uber-trace-id: {trace}:{span}:{parent}:{flags}` and `uberctx-{key}`
//! baggage headers, as the Jaeger clients write them
//! (<https://www.jaegertracing.io/docs/latest/client-libraries/#propagation-format>).
//!
//! Parsing is hand-written, like every propagator of this module, so that the rules are strict
//! and bounded.
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::baggage::BaggageExt;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use otel_core::propagation::JaegerPropagator;
//!
//! let mut carrier = HashMap::new();
//! carrier.insert("uber-trace-id".to_string(), "a3ce929d0e0e4736:f067aa0ba902b7:0:1".to_string());
//! carrier.insert("uberctx-tenant".to_string(), "acme%20corp".to_string());
//! let cx = JaegerPropagator::new().extract(&carrier);
//! assert_eq!(cx.span().span_context().trace_id().to_string(), "0000000000000000a3ce929d0e0e4736");
//! assert!(cx.span().span_context().is_sampled());
//! assert_eq!(cx.baggage().get("tenant").unwrap().as_str(), "acme corp");
//! ```

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use percent_encoding::{
    AsciiSet, CONTROLS, percent_decode, percent_decode_str, utf8_percent_encode,
};

use super::baggage::{MAX_BYTES, MAX_MEMBERS, is_tchar};
use super::{DebugFlag, hex};

/// The trace header.
pub const UBER_TRACE_ID_HEADER: &str = "uber-trace-id";
/// The prefix of the baggage headers (`uberctx-{key}: {value}`).
pub const UBER_BAGGAGE_PREFIX: &str = "uberctx-";

/// The Jaeger propagator.
///
/// Extraction: trace id of 1 to 32 hex digits (left-padded to 128 bits), span id of 1 to 16,
/// the parent id is checked but ignored (`0` is fine), flags in hex: bit `0x1` sampled, bit
/// `0x2` debug ([`DebugFlag`], which implies sampled). A percent-encoded value
/// (`…%3A…`) is accepted. Every `uberctx-{key}` header becomes a baggage entry (values
/// percent-decoded), within the W3C limits of 64 entries and 8192 bytes.
///
/// Injection writes `uber-trace-id` for a valid context and one `uberctx-{key}` header per
/// baggage entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct JaegerPropagator {
    _private: (),
}

impl JaegerPropagator {
    /// Creates the propagator.
    pub fn new() -> Self {
        JaegerPropagator { _private: () }
    }
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let mut value = String::with_capacity(32 + 1 + 16 + 3 + 1);
            hex::push_lower(&mut value, &sc.trace_id().to_bytes());
            value.push(':');
            hex::push_lower(&mut value, &sc.span_id().to_bytes());
            value.push_str(
                match (sc.is_sampled(), sc.is_sampled() && DebugFlag::is_set(cx)) {
                    (_, true) => ":0:3",
                    (true, false) => ":0:1",
                    (false, false) => ":0:0",
                },
            );
            injector.set(UBER_TRACE_ID_HEADER, value);
        }
        let mut written = 0;
        let mut bytes = 0;
        for (key, (value, _)) in cx.baggage() {
            if written == MAX_MEMBERS {
                break;
            }
            let value: String = utf8_percent_encode(value.as_str(), VALUE_ENCODE).collect();
            if bytes + key.as_str().len() + value.len() > MAX_BYTES {
                continue;
            }
            bytes += key.as_str().len() + value.len();
            written += 1;
            injector.set(&format!("{UBER_BAGGAGE_PREFIX}{}", key.as_str()), value);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut cx = match extractor
            .get(UBER_TRACE_ID_HEADER)
            .and_then(parse_uber_trace_id)
        {
            Some((sc, debug)) => {
                let cx = cx.with_remote_span_context(sc);
                if debug { cx.with_value(DebugFlag) } else { cx }
            }
            None => cx.clone(),
        };
        let baggage = extract_baggage(extractor);
        if !baggage.is_empty() {
            cx = cx.with_baggage(baggage);
        }
        cx
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [UBER_TRACE_ID_HEADER.to_owned()]))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Bytes escaped in `uberctx-` values: everything outside visible ASCII, and `%`.
const VALUE_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'%')
    .add(b',')
    .add(b';')
    .add(b'\\');

/// The longest `uber-trace-id` looked at, encoded (`:` as `%3A`): 32 + 16 + 16 + 2 digits and
/// three separators of three bytes, with slack.
const MAX_TRACE_HEADER_LEN: usize = 128;

/// Parses `{trace}:{span}:{parent}:{flags}`; returns the span context and the debug flag.
fn parse_uber_trace_id(value: &str) -> Option<(SpanContext, bool)> {
    let value = value.trim_matches([' ', '\t']);
    if value.len() > MAX_TRACE_HEADER_LEN {
        return None;
    }
    let mut buf = [0u8; MAX_TRACE_HEADER_LEN];
    let mut len = 0;
    for b in percent_decode_str(value) {
        buf[len] = b;
        len += 1;
    }
    let mut parts = buf[..len].split(|&b| b == b':');
    let trace_id = hex::parse_any_u128(parts.next()?).filter(|&id| id != 0)?;
    let span_id = hex::parse_any_u64(parts.next()?).filter(|&id| id != 0)?;
    hex::parse_any_u64(parts.next()?)?;
    let flags = parts.next()?;
    if flags.len() > 2 || parts.next().is_some() {
        return None;
    }
    let flags = hex::parse_any_u64(flags)?;
    let debug = flags & 0x2 != 0;
    let sampled = flags & 0x1 != 0 || debug;
    let sc = SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::NOT_SAMPLED
        },
        true,
        TraceState::NONE,
    );
    Some((sc, debug))
}

/// Every `uberctx-{key}` header, within 64 entries and 8192 bytes (key and value).
fn extract_baggage(extractor: &dyn Extractor) -> Baggage {
    let mut baggage = Baggage::new();
    let mut budget = MAX_BYTES;
    for name in extractor.keys() {
        if baggage.len() == MAX_MEMBERS {
            break;
        }
        let Some(prefix) = name.get(..UBER_BAGGAGE_PREFIX.len()) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case(UBER_BAGGAGE_PREFIX) {
            continue;
        }
        let key = &name[UBER_BAGGAGE_PREFIX.len()..];
        let Some(raw) = extractor.get(name) else {
            continue;
        };
        let raw = raw.trim_matches([' ', '\t']);
        if key.is_empty() || !key.bytes().all(is_tchar) || key.len() + raw.len() > budget {
            continue;
        }
        let Ok(value) = percent_decode(raw.as_bytes()).decode_utf8() else {
            continue;
        };
        budget -= key.len() + raw.len();
        baggage.insert(key.to_ascii_lowercase(), value.into_owned());
    }
    baggage
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Expected (trace id, span id, sampled, debug), or no context.
    type Want<'a> = Option<(&'a str, &'a str, bool, bool)>;

    fn extract(headers: &[(&str, &str)]) -> Context {
        let carrier: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        JaegerPropagator::new().extract_with_context(&Context::new(), &carrier)
    }

    #[test]
    fn uber_trace_id_table() {
        let cases: &[(&str, Want)] = &[
            (
                "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:05e3ac9a4f6e3b90:1",
                Some((
                    "80f198ee56343ba864fe8b2a57d3eff7",
                    "e457b5a2e4d86bd1",
                    true,
                    false,
                )),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:0",
                Some((
                    "80f198ee56343ba864fe8b2a57d3eff7",
                    "e457b5a2e4d86bd1",
                    false,
                    false,
                )),
            ),
            (
                "a3ce929d0e0e4736:f067aa0ba902b7:0:3",
                Some((
                    "0000000000000000a3ce929d0e0e4736",
                    "00f067aa0ba902b7",
                    true,
                    true,
                )),
            ),
            (
                "1:1:0:2",
                Some((
                    "00000000000000000000000000000001",
                    "0000000000000001",
                    true,
                    true,
                )),
            ),
            (
                "ABC:DEF:0:1",
                Some((
                    "00000000000000000000000000000abc",
                    "0000000000000def",
                    true,
                    false,
                )),
            ),
            (
                "a3ce929d0e0e4736%3Af067aa0ba902b7%3A0%3A1",
                Some((
                    "0000000000000000a3ce929d0e0e4736",
                    "00f067aa0ba902b7",
                    true,
                    false,
                )),
            ),
            (
                "a3ce929d0e0e4736:f067aa0ba902b7:0:ff",
                Some((
                    "0000000000000000a3ce929d0e0e4736",
                    "00f067aa0ba902b7",
                    true,
                    true,
                )),
            ),
            // invalid
            ("0:f067aa0ba902b7:0:1", None),
            ("a3ce929d0e0e4736:0:0:1", None),
            ("a3ce929d0e0e4736:f067aa0ba902b7:0", None),
            ("a3ce929d0e0e4736:f067aa0ba902b7:0:1:1", None),
            ("a3ce929d0e0e4736:f067aa0ba902b7::1", None),
            ("a3ce929d0e0e4736:f067aa0ba902b7:0:100", None),
            ("a3ce929d0e0e4736:f067aa0ba902b7:x:1", None),
            (
                "180f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1",
                None,
            ),
            ("80f198ee56343ba8:1e457b5a2e4d86bd1:0:1", None),
            ("a3ce929d0e0e4736-f067aa0ba902b7-0-1", None),
            ("", None),
        ];
        for (value, want) in cases {
            let cx = extract(&[("uber-trace-id", value)]);
            let span = cx.span();
            let sc = span.span_context();
            let got = sc.is_valid().then(|| {
                (
                    sc.trace_id().to_string(),
                    sc.span_id().to_string(),
                    sc.is_sampled(),
                    DebugFlag::is_set(&cx),
                )
            });
            let want =
                want.map(|(t, s, sampled, debug)| (t.to_owned(), s.to_owned(), sampled, debug));
            assert_eq!(got, want, "{value:?}");
        }
    }

    #[test]
    fn uberctx_headers_become_baggage() {
        let cx = extract(&[
            ("uberctx-tenant", "acme%20corp"),
            ("uberctx-plan", "gold"),
            ("uberctx-", "x"),
            ("x-other", "y"),
        ]);
        let mut got: Vec<_> = cx
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.to_string()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("plan".to_owned(), "gold".to_owned()),
                ("tenant".to_owned(), "acme corp".to_owned())
            ]
        );
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn uberctx_limits() {
        let headers: Vec<(String, String)> = (0..100)
            .map(|i| (format!("uberctx-k{i}"), "v".to_owned()))
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(extract(&headers).baggage().len(), 64);
        let big = "x".repeat(5000);
        assert_eq!(
            extract(&[("uberctx-a", &big), ("uberctx-b", &big)])
                .baggage()
                .len(),
            1
        );
    }

    #[test]
    fn inject_both() {
        let sc = SpanContext::new(
            TraceId::from(0xa3ce929d0e0e4736),
            SpanId::from(0xf067aa0ba902b7),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let cx = Context::new()
            .with_remote_span_context(sc)
            .with_baggage([opentelemetry::KeyValue::new("tenant", "acme corp")]);
        let mut out = HashMap::new();
        JaegerPropagator::new().inject_context(&cx, &mut out);
        assert_eq!(
            out["uber-trace-id"],
            "0000000000000000a3ce929d0e0e4736:00f067aa0ba902b7:0:1"
        );
        assert_eq!(out["uberctx-tenant"], "acme%20corp");
        assert_eq!(out.len(), 2);

        let mut out = HashMap::new();
        JaegerPropagator::new().inject_context(&cx.with_value(DebugFlag), &mut out);
        assert_eq!(
            out["uber-trace-id"],
            "0000000000000000a3ce929d0e0e4736:00f067aa0ba902b7:0:3"
        );

        let mut out = HashMap::new();
        JaegerPropagator::new().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }
}
