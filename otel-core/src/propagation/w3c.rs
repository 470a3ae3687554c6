//! W3C Trace Context, level 2: the `traceparent` and `tracestate` headers, to the letter of
//! <https://www.w3.org/TR/trace-context-2/>.
//!
//! Parsing is hand-written because the stock `opentelemetry_sdk` propagator is not strict: it
//! accepts fields of the wrong length, reads only the first `tracestate` header, drops the
//! `random` flag and truncates an over-long `tracestate` instead of discarding it.
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use otel_core::propagation::TraceContextPropagator;
//!
//! let mut carrier = HashMap::new();
//! carrier.insert("traceparent".to_string(),
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03".to_string());
//! let cx = TraceContextPropagator::new().extract(&carrier);
//! let sc = cx.span().span_context().clone();
//! assert!(sc.is_sampled());
//! assert_eq!(sc.trace_flags().to_u8(), 0x03); // sampled + random, both kept
//! ```

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::hex;

/// The `traceparent` header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// The W3C Trace Context propagator (`traceparent` and `tracestate`).
///
/// Extraction is strict: a `traceparent` that is not exactly `2-32-16-2` lower-case hex, has
/// version `ff`, an all-zero id, trailing data after a version-00 value, or appears in more
/// than one header yields no context. All eight flag bits are kept (W3C `sampled` and
/// `random`) and injected back. The `tracestate` of every header is joined; one bad member, a
/// duplicate key or more than 32 members discards the whole `tracestate` (the trace is still
/// continued). Injection writes nothing for an invalid context and never an empty
/// `tracestate` header.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// Creates the propagator.
    pub fn new() -> Self {
        TraceContextPropagator { _private: () }
    }
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        injector.set(TRACEPARENT_HEADER, format_traceparent(sc));
        if let Some(state) = format_tracestate(sc.trace_state()) {
            injector.set(TRACESTATE_HEADER, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extract_span_context(extractor) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
        FieldIter::new(
            FIELDS.get_or_init(|| [TRACEPARENT_HEADER.to_owned(), TRACESTATE_HEADER.to_owned()]),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// At most 32 list-members in `tracestate`.
const MAX_MEMBERS: usize = 32;
/// The longest `tracestate` (all headers together) we look at: 32 members of a 256-byte key,
/// `=` and a 256-byte value with their commas is 16 447 bytes; the rest is slack for optional
/// white space and empty members. Anything longer is discarded without being scanned, so a
/// hostile 1 MB header costs nothing.
const MAX_TRACESTATE_LEN: usize = 17 * 1024;
/// Length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;

fn extract_span_context(extractor: &dyn Extractor) -> Option<SpanContext> {
    let values = extractor.get_all(TRACEPARENT_HEADER)?;
    // Two or more `traceparent` headers make the request's context invalid.
    let [value] = values.as_slice() else {
        return None;
    };
    let (trace_id, span_id, flags) = parse_traceparent(value)?;
    let trace_state = extractor
        .get_all(TRACESTATE_HEADER)
        .map(|values| parse_tracestate(&values))
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        trace_state,
    ))
}

/// Parses one `traceparent` value: `version-traceid-parentid-flags`.
fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let v = value.trim_matches([' ', '\t']).as_bytes();
    if v.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = (hex::lower_hex_value(v[0])? << 4) | hex::lower_hex_value(v[1])?;
    if version == 0xff {
        return None;
    }
    // Version 00 has exactly 55 characters; a later version is read by its 00 prefix when the
    // prefix ends at the end of the value or at a `-`.
    if v.len() > TRACEPARENT_LEN && (version == 0 || v[TRACEPARENT_LEN] != b'-') {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = hex::parse_lower_u128(&v[3..35])?;
    let span_id = hex::parse_lower_u64(&v[36..52])?;
    let flags = (hex::lower_hex_value(v[53])? << 4) | hex::lower_hex_value(v[54])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some((
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags),
    ))
}

/// Parses every `tracestate` header as one list; any error discards the whole list.
fn parse_tracestate(values: &[&str]) -> TraceState {
    let total = values.iter().map(|v| v.len() + 1).sum::<usize>();
    if total > MAX_TRACESTATE_LEN + 1 {
        return TraceState::NONE;
    }
    let mut members: Vec<(&str, &str)> = Vec::new();
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let Some((key, value)) = member.split_once('=') else {
            return TraceState::NONE;
        };
        if members.len() == MAX_MEMBERS
            || !valid_key(key.as_bytes())
            || !valid_value(value.as_bytes())
            || members.iter().any(|(k, _)| *k == key)
        {
            return TraceState::NONE;
        }
        members.push((key, value));
    }
    if members.is_empty() {
        return TraceState::NONE;
    }
    // `TraceState::from_key_value` refuses a few keys the W3C grammar allows (a 14-character
    // system id after `@`); such a list cannot be represented and is discarded as a whole.
    TraceState::from_key_value(members).unwrap_or_default()
}

/// `key = simple-key / multi-tenant-key` of trace-context level 2.
fn valid_key(key: &[u8]) -> bool {
    fn key_char(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
    }
    match key.iter().position(|&b| b == b'@') {
        // simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
        None => {
            matches!(key.first(), Some(b) if b.is_ascii_lowercase())
                && key.len() <= 256
                && key.iter().all(|&b| key_char(b))
        }
        // multi-tenant-key = tenant-id "@" system-id
        // tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
        // system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            matches!(tenant.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
                && tenant.len() <= 241
                && tenant.iter().all(|&b| key_char(b))
                && matches!(system.first(), Some(b) if b.is_ascii_lowercase())
                && system.len() <= 14
                && system.iter().all(|&b| key_char(b))
        }
    }
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`,
/// `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`.
fn valid_value(value: &[u8]) -> bool {
    matches!(value.last(), Some(&b) if b != b' ')
        && value.len() <= 256
        && value
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

fn format_traceparent(sc: &SpanContext) -> String {
    let mut out = String::with_capacity(TRACEPARENT_LEN);
    out.push_str("00-");
    hex::push_lower(&mut out, &sc.trace_id().to_bytes());
    out.push('-');
    hex::push_lower(&mut out, &sc.span_id().to_bytes());
    out.push('-');
    hex::push_lower(&mut out, &[sc.trace_flags().to_u8()]);
    out
}

/// The `tracestate` header for `state`, or `None` when it has no member our grammar accepts
/// (members set through the API are checked again: the SDK's own rules are looser).
fn format_tracestate(state: &TraceState) -> Option<String> {
    let mut out = String::new();
    for (key, value) in state {
        if !valid_key(key.as_bytes()) || !valid_value(value.as_bytes()) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Expected (trace id, span id, flags), or no context.
    type Want = Option<(u128, u64, u8)>;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// A carrier that holds repeated headers, like an `http::HeaderMap`.
    #[derive(Default)]
    struct Multi(Vec<(&'static str, String)>);

    impl Extractor for Multi {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| *k).collect()
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            let v: Vec<&str> = self
                .0
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            (!v.is_empty()).then_some(v)
        }
    }

    fn extract(headers: &[(&'static str, &str)]) -> SpanContext {
        let carrier = Multi(headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &carrier)
            .span()
            .span_context()
            .clone()
    }

    fn state(tracestate: &str) -> Option<String> {
        let sc = extract(&[("traceparent", TP), ("tracestate", tracestate)]);
        assert!(sc.is_valid());
        let header = sc.trace_state().header();
        (!header.is_empty()).then_some(header)
    }

    #[test]
    fn traceparent_table() {
        let cases: &[(&str, Want)] = &[
            (
                TP,
                Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0x01)),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0)),
            ),
            // every flag bit kept (sampled, random and the unassigned ones)
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0x03)),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0xff)),
            ),
            // surrounding optional white space of the HTTP field
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
                Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0x01)),
            ),
            // future versions: read by the 00 prefix when followed by `-` or the end
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0x01)),
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
                Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0x01)),
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
                None,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                None,
            ),
            // version ff, version 00 with trailing data
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                None,
            ),
            // wrong lengths
            (
                "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001",
                None,
            ),
            // upper case and other non-hex
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
                None,
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            // wrong separators
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                None,
            ),
            // all-zero ids
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            ("", None),
            (
                "00-é-00f067aa0ba902b7-01-1234567890123456789012345678901",
                None,
            ),
        ];
        for (value, want) in cases {
            let sc = extract(&[("traceparent", value)]);
            match want {
                Some((t, s, f)) => {
                    assert!(sc.is_valid(), "{value:?} should be valid");
                    assert_eq!(sc.trace_id(), TraceId::from(*t), "{value:?}");
                    assert_eq!(sc.span_id(), SpanId::from(*s), "{value:?}");
                    assert_eq!(sc.trace_flags().to_u8(), *f, "{value:?}");
                    assert!(sc.is_remote());
                }
                None => assert!(!sc.is_valid(), "{value:?} should be invalid"),
            }
        }
    }

    #[test]
    fn two_traceparent_headers_are_invalid() {
        assert!(!extract(&[("traceparent", TP), ("traceparent", TP)]).is_valid());
        assert!(extract(&[("traceparent", TP)]).is_valid());
    }

    #[test]
    fn tracestate_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("congo=t61rcWkgMzE", Some("congo=t61rcWkgMzE")),
            (
                "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
                Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ),
            // empty members and optional white space skipped
            (" , rojo=1 ,\t,congo=2,", Some("rojo=1,congo=2")),
            // keys of the current grammar, with '@', '*', '/', '_', '-'
            ("a*b/c_d-e=1", Some("a*b/c_d-e=1")),
            ("0tenant@vendor=1", Some("0tenant@vendor=1")),
            ("t-*/_@s-*/_9=1", Some("t-*/_@s-*/_9=1")),
            // values: printable ASCII with inner spaces, '!' and '~'
            ("k=a b!~\"", Some("k=a b!~\"")),
            ("k= leading", Some("k= leading")),
            // bad members discard everything
            ("rojo=1,Congo=2", None),
            ("rojo=1,0digit=2", None),
            ("rojo=1,congo", None),
            ("rojo=1,congo=", None),
            ("rojo=1,=2", None),
            ("rojo=1,congo=a=b", None),
            ("rojo=1,congo=é", None),
            ("rojo=1,congo=a\u{7f}", None),
            ("rojo=1,@vendor=2", None),
            ("rojo=1,tenant@=2", None),
            ("rojo=1,tenant@0vendor=2", None),
            ("rojo=1,tenant@a@b=2", None),
            ("rojo=1,tenant@vendorvendorven=2", None), // 15-character system id
            ("rojo=1,Tenant@vendor=2", None),
            // duplicate key
            ("rojo=1,congo=2,rojo=3", None),
        ];
        for (value, want) in cases {
            assert_eq!(state(value).as_deref(), *want, "{value:?}");
        }
    }

    #[test]
    fn tracestate_key_and_value_lengths() {
        let key256 = format!("a{}", "b".repeat(255));
        assert_eq!(state(&format!("{key256}=v")), Some(format!("{key256}=v")));
        assert_eq!(state(&format!("a{key256}=v")), None);
        let tenant241 = format!("t{}", "0".repeat(240));
        assert_eq!(
            state(&format!("{tenant241}@s=v")),
            Some(format!("{tenant241}@s=v"))
        );
        assert_eq!(state(&format!("x{tenant241}@s=v")), None);
        let value256 = "v".repeat(256);
        assert_eq!(
            state(&format!("k={value256}")),
            Some(format!("k={value256}"))
        );
        assert_eq!(state(&format!("k=x{value256}")), None);
    }

    #[test]
    fn tracestate_member_limit() {
        let members = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(state(&members(32)), Some(members(32)));
        assert_eq!(state(&members(33)), None);
    }

    #[test]
    fn tracestate_joined_across_headers() {
        let sc = extract(&[
            ("traceparent", TP),
            ("tracestate", "rojo=1"),
            ("tracestate", ""),
            ("tracestate", "congo=2"),
        ]);
        assert_eq!(sc.trace_state().header(), "rojo=1,congo=2");
        // a duplicate across headers discards it all
        let sc = extract(&[
            ("traceparent", TP),
            ("tracestate", "rojo=1"),
            ("tracestate", "rojo=2"),
        ]);
        assert_eq!(sc.trace_state().header(), "");
        assert!(sc.is_valid());
        // 16 + 17 members over two headers: over the limit
        let a = (0..16)
            .map(|i| format!("a{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let b = (0..17)
            .map(|i| format!("b{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let carrier = Multi(vec![
            ("traceparent", TP.into()),
            ("tracestate", a),
            ("tracestate", b),
        ]);
        let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
        assert_eq!(cx.span().span_context().trace_state().header(), "");
    }

    #[test]
    fn huge_tracestate_is_discarded_not_scanned() {
        let huge = "k=v,".repeat(256 * 1024);
        assert_eq!(state(&huge), None);
    }

    /// The SDK's `TraceState` refuses a 14-character system id (the W3C grammar allows 14);
    /// such a list cannot be represented and is discarded as a whole.
    #[test]
    fn sdk_trace_state_refuses_fourteen_character_system_ids() {
        assert!(valid_key(b"tenant@abcdefghijklmn"));
        assert!(TraceState::from_key_value([("tenant@abcdefghijklmn", "v")]).is_err());
        assert!(TraceState::from_key_value([("tenant@abcdefghijklm", "v")]).is_ok());
        assert_eq!(state("rojo=1,tenant@abcdefghijklmn=2"), None);
    }

    #[test]
    fn inject_writes_traceparent_and_tracestate() {
        let ts = TraceState::from_key_value([("rojo", "1"), ("t@v", "x y")]).unwrap();
        let sc = SpanContext::new(
            TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
            SpanId::from(0x00f067aa0ba902b7),
            TraceFlags::new(0x03),
            false,
            ts,
        );
        let mut out = HashMap::new();
        TraceContextPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
        );
        assert_eq!(out["tracestate"], "rojo=1,t@v=x y");
    }

    #[test]
    fn inject_never_writes_empty_tracestate_or_invalid_context() {
        let sc = SpanContext::new(
            TraceId::from(1),
            SpanId::from(1),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let mut out = HashMap::new();
        TraceContextPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(out.keys().collect::<Vec<_>>(), ["traceparent"]);
        assert_eq!(
            out["traceparent"],
            "00-00000000000000000000000000000001-0000000000000001-01"
        );

        // a member the SDK accepts but the W3C grammar does not (value with a control char)
        let ts = TraceState::from_key_value([("k", "a\u{1}")]).unwrap();
        let sc = SpanContext::new(
            TraceId::from(1),
            SpanId::from(1),
            TraceFlags::SAMPLED,
            false,
            ts,
        );
        let mut out = HashMap::new();
        TraceContextPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut out);
        assert!(!out.contains_key("tracestate"));

        let mut out = HashMap::new();
        TraceContextPropagator::new().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn fields() {
        let p = TraceContextPropagator::new();
        assert_eq!(
            p.fields().collect::<Vec<_>>(),
            ["traceparent", "tracestate"]
        );
    }
}
