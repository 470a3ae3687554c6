//! AWS X-Ray propagation: `X-Amzn-Trace-Id: Root=1-{epoch}-{random};Parent={span};Sampled={0|1}`
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>).
//!
//! The OpenTelemetry trace id is the 8 hex digits of the epoch followed by the 24 random hex
//! digits. Parsing is hand-written, like every propagator of this module, so that the rules
//! are strict and bounded.
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use otel_core::propagation::XrayPropagator;
//!
//! let mut carrier = HashMap::new();
//! carrier.insert("x-amzn-trace-id".to_string(),
//!     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_string());
//! let cx = XrayPropagator::new().extract(&carrier);
//! let sc = cx.span().span_context().clone();
//! assert_eq!(sc.trace_id().to_string(), "5759e988bd862e3fe1be46a994272793");
//! assert!(sc.is_sampled());
//! ```

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::hex;

/// The X-Ray trace header.
pub const XRAY_HEADER: &str = "x-amzn-trace-id";

/// The AWS X-Ray propagator.
///
/// Extraction: fields in any order, separated by `;`; `Root` and `Parent` are required (once
/// each), `Sampled=1` is sampled, `0` and `?` (deferred) are not; other fields (`Lineage`,
/// `Self`, …) are ignored. Injection writes the same form for a valid context.
#[derive(Debug, Clone, Copy, Default)]
pub struct XrayPropagator {
    _private: (),
}

impl XrayPropagator {
    /// Creates the propagator.
    pub fn new() -> Self {
        XrayPropagator { _private: () }
    }
}

impl TextMapPropagator for XrayPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let trace = sc.trace_id().to_bytes();
        let mut value = String::with_capacity(5 + 35 + 8 + 16 + 10);
        value.push_str("Root=1-");
        hex::push_lower(&mut value, &trace[..4]);
        value.push('-');
        hex::push_lower(&mut value, &trace[4..]);
        value.push_str(";Parent=");
        hex::push_lower(&mut value, &sc.span_id().to_bytes());
        value.push_str(if sc.is_sampled() {
            ";Sampled=1"
        } else {
            ";Sampled=0"
        });
        injector.set(XRAY_HEADER, value);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(XRAY_HEADER).and_then(parse_header) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [XRAY_HEADER.to_owned()]))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The longest header looked at: the X-Ray header is limited to 7 KB by AWS; anything longer
/// is refused without being scanned.
const MAX_HEADER_LEN: usize = 7 * 1024;

fn parse_header(value: &str) -> Option<SpanContext> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let (mut root, mut parent, mut sampled) = (None, None, None);
    for field in value.split(';') {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let (name, val) = field.split_once('=')?;
        let slot = match name {
            "Root" => &mut root,
            "Parent" => &mut parent,
            "Sampled" => &mut sampled,
            _ => continue,
        };
        if slot.replace(val.as_bytes()).is_some() {
            return None; // the same field twice
        }
    }
    let trace_id = parse_root(root?)?;
    let span_id = match parent? {
        p if p.len() == 16 => hex::parse_any_u64(p).filter(|&id| id != 0)?,
        _ => return None,
    };
    let sampled = match sampled {
        Some(b"1") => true,
        None | Some(b"0" | b"?") => false,
        Some(_) => return None,
    };
    Some(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::NOT_SAMPLED
        },
        true,
        TraceState::NONE,
    ))
}

/// `1-{8 hex}-{24 hex}`.
fn parse_root(root: &[u8]) -> Option<u128> {
    if root.len() != 35 || &root[..2] != b"1-" || root[10] != b'-' {
        return None;
    }
    let epoch = hex::parse_any_u128(&root[2..10])?;
    let random = hex::parse_any_u128(&root[11..])?;
    Some((epoch << 96) | random).filter(|&id| id != 0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn extract(value: &str) -> Option<(String, String, bool)> {
        let carrier = HashMap::from([(XRAY_HEADER.to_owned(), value.to_owned())]);
        let cx = XrayPropagator::new().extract_with_context(&Context::new(), &carrier);
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| {
            (
                sc.trace_id().to_string(),
                sc.span_id().to_string(),
                sc.is_sampled(),
            )
        })
    }

    #[test]
    fn header_table() {
        const T: &str = "5759e988bd862e3fe1be46a994272793";
        const S: &str = "53995c3f42cd8ad8";
        let cases: &[(&str, Option<bool>)] = &[
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                Some(true),
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
                Some(false),
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
                Some(false),
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                Some(false),
            ),
            (
                "Sampled=1;Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793",
                Some(true),
            ),
            (
                "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8 ;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
                Some(true),
            ),
            // invalid
            ("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", None),
            ("Parent=53995c3f42cd8ad8;Sampled=1", None),
            (
                "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                None,
            ),
            (
                "Root=1-5759e98-8bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
                None,
            ),
            (
                "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=yes",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                None,
            ),
            ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent", None),
            ("", None),
        ];
        for (value, want) in cases {
            let want = want.map(|sampled| (T.to_owned(), S.to_owned(), sampled));
            assert_eq!(extract(value), want, "{value:?}");
        }
    }

    #[test]
    fn inject_same_form() {
        let sc = SpanContext::new(
            TraceId::from(0x5759e988bd862e3fe1be46a994272793),
            SpanId::from(0x53995c3f42cd8ad8),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let mut out = HashMap::new();
        XrayPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(
            out[XRAY_HEADER],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        let mut out = HashMap::new();
        XrayPropagator::new().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }
}
