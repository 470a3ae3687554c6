//! W3C Baggage: the `baggage` header, to the letter of <https://www.w3.org/TR/baggage/>.
//!
//! Parsing is hand-written because the stock `opentelemetry_sdk` propagator reads only the
//! first `baggage` header and drops the whole header when it is over 8192 bytes instead of
//! keeping what fits.
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::baggage::BaggageExt;
//! use opentelemetry::propagation::TextMapPropagator;
//! use otel_core::propagation::BaggagePropagator;
//!
//! let mut carrier = HashMap::new();
//! carrier.insert("baggage".to_string(), "user=J%C3%BCrgen;pii, expr=a%3Db=c".to_string());
//! let cx = BaggagePropagator::new().extract(&carrier);
//! let (value, metadata) = cx.baggage().get_with_metadata("user").unwrap();
//! assert_eq!(value.as_str(), "Jürgen");
//! assert_eq!(metadata.as_str(), "pii");
//! assert_eq!(cx.baggage().get("expr").unwrap().as_str(), "a=b=c");
//! ```

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

/// The `baggage` header.
pub const BAGGAGE_HEADER: &str = "baggage";
/// At most this many list-members are read or written; the rest is dropped.
pub const MAX_MEMBERS: usize = 64;
/// At most this many bytes of `baggage` (all headers together) are read or written; members
/// beyond are dropped.
pub const MAX_BYTES: usize = 8192;

/// The W3C Baggage propagator.
///
/// Extraction reads every `baggage` header, percent-decodes keys and values (a value may hold
/// `=`), keeps properties (`;k=v`, `;flag`) as the entry's
/// [`BaggageMetadata`](opentelemetry::baggage::BaggageMetadata) (for example `k=v;flag`),
/// skips malformed members, and keeps the first 64 members within the first 8192 bytes:
/// what is over is dropped, the request is never failed. Injection percent-encodes and writes
/// nothing for empty baggage.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaggagePropagator {
    _private: (),
}

impl BaggagePropagator {
    /// Creates the propagator.
    pub fn new() -> Self {
        BaggagePropagator { _private: () }
    }
}

impl TextMapPropagator for BaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(header) = format_baggage(cx.baggage()) {
            injector.set(BAGGAGE_HEADER, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(values) = extractor.get_all(BAGGAGE_HEADER) else {
            return cx.clone();
        };
        let baggage = parse_baggage(&values);
        if baggage.is_empty() {
            cx.clone()
        } else {
            cx.with_baggage(baggage)
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [BAGGAGE_HEADER.to_owned()]))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Bytes a baggage value may hold unencoded are `baggage-octet`
/// (`%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`); everything else, and `%` itself, is
/// percent-encoded.
const VALUE_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');
/// Keys are HTTP tokens already (the `Baggage` type refuses others); only `%` needs escaping
/// so that a key holding it survives the decoding on the other side.
const KEY_ENCODE: &AsciiSet = &VALUE_ENCODE
    .add(b'(')
    .add(b')')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b']')
    .add(b'{')
    .add(b'}');

/// Parses every `baggage` header as one list within the limits; never allocates more than the
/// limits allow, whatever the input.
pub(super) fn parse_baggage(values: &[&str]) -> Baggage {
    let mut baggage = Baggage::new();
    let mut budget = MAX_BYTES;
    let mut first = true;
    'headers: for value in values {
        let bytes = value.as_bytes();
        let separator = usize::from(!first);
        first = false;
        if budget < separator {
            break;
        }
        budget -= separator;
        // Only the bytes within the budget are looked at; a member cut by the limit is dropped.
        let window = &bytes[..bytes.len().min(budget)];
        let complete = window.len() == bytes.len();
        let mut members = window.split(|&b| b == b',').peekable();
        let mut leading = true;
        while let Some(member) = members.next() {
            let last = members.peek().is_none();
            if last && !complete {
                break 'headers;
            }
            budget -= member.len() + usize::from(!leading);
            leading = false;
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            if baggage.len() == MAX_MEMBERS {
                break 'headers;
            }
            if let Some((key, value, properties)) = parse_member(member) {
                baggage.insert_with_metadata(key, value, properties);
            }
        }
    }
    baggage
}

/// `list-member = key OWS "=" OWS value *( OWS ";" OWS property )`, decoded.
fn parse_member(member: &[u8]) -> Option<(String, String, String)> {
    let (key_value, properties) = match member.iter().position(|&b| b == b';') {
        Some(i) => (&member[..i], Some(&member[i + 1..])),
        None => (member, None),
    };
    let eq = key_value.iter().position(|&b| b == b'=')?;
    let key = trim_ows(&key_value[..eq]);
    let value = trim_ows(&key_value[eq + 1..]);
    if key.is_empty()
        || !key.iter().all(|&b| is_tchar(b))
        || !value.iter().all(|&b| is_baggage_octet(b))
    {
        return None;
    }
    let key = percent_decode(key).decode_utf8().ok()?;
    if key.is_empty() || !key.bytes().all(is_tchar) {
        return None;
    }
    let value = percent_decode(value).decode_utf8().ok()?;
    let properties = match properties {
        Some(p) => normalize_properties(p)?,
        None => String::new(),
    };
    Some((key.into_owned(), value.into_owned(), properties))
}

/// Validates `property *( OWS ";" OWS property )` and returns it without optional white
/// space, still percent-encoded (so it is written back byte for byte).
pub(super) fn normalize_properties(properties: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(properties.len());
    for property in properties.split(|&b| b == b';') {
        let property = trim_ows(property);
        let (key, value) = match property.iter().position(|&b| b == b'=') {
            Some(i) => (trim_ows(&property[..i]), Some(trim_ows(&property[i + 1..]))),
            None => (property, None),
        };
        if key.is_empty() || !key.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        if !out.is_empty() {
            out.push(';');
        }
        // All bytes checked are ASCII.
        out.push_str(std::str::from_utf8(key).ok()?);
        if let Some(value) = value {
            if !value.iter().all(|&b| is_baggage_octet(b)) {
                return None;
            }
            out.push('=');
            out.push_str(std::str::from_utf8(value).ok()?);
        }
    }
    Some(out)
}

/// The `baggage` header for `baggage`, within the limits, or `None` when empty.
fn format_baggage(baggage: &Baggage) -> Option<String> {
    let mut out = String::new();
    let mut count = 0;
    for (key, (value, metadata)) in baggage {
        if count == MAX_MEMBERS {
            break;
        }
        let start = out.len();
        if !out.is_empty() {
            out.push(',');
        }
        out.extend(utf8_percent_encode(key.as_str(), KEY_ENCODE));
        out.push('=');
        out.extend(utf8_percent_encode(value.as_str(), VALUE_ENCODE));
        if let Some(properties) = normalize_properties(metadata.as_str().as_bytes())
            .filter(|_| !metadata.as_str().is_empty())
        {
            out.push(';');
            out.push_str(&properties);
        }
        if out.len() > MAX_BYTES {
            out.truncate(start);
            continue;
        }
        count += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// `tchar` of RFC 9110 (an HTTP token character).
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Strips optional white space (space and horizontal tab) from both ends.
pub(super) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::baggage::BaggageMetadata;

    use super::*;

    fn parse(values: &[&str]) -> Vec<(String, String, String)> {
        let baggage = parse_baggage(values);
        let mut out: Vec<_> = baggage
            .iter()
            .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
            .collect();
        out.sort();
        out
    }

    /// (key, value, metadata)
    type Entry<'a> = (&'a str, &'a str, &'a str);

    fn kv(k: &str, v: &str, m: &str) -> (String, String, String) {
        (k.into(), v.into(), m.into())
    }

    #[test]
    fn extract_table() {
        let cases: &[(&str, &[Entry])] = &[
            ("k=v", &[("k", "v", "")]),
            ("a=1,b=2", &[("a", "1", ""), ("b", "2", "")]),
            (" a = 1 ,\tb=2 , ,", &[("a", "1", ""), ("b", "2", "")]),
            // percent-decoding of values and keys
            ("k=hello%20world%2C%3B%25", &[("k", "hello world,;%", "")]),
            ("k%21=v", &[("k!", "v", "")]),
            ("user=J%C3%BCrgen", &[("user", "Jürgen", "")]),
            // values holding '='
            ("k=a=b==", &[("k", "a=b==", "")]),
            ("k=", &[("k", "", "")]),
            // properties kept as metadata
            ("k=v;flag", &[("k", "v", "flag")]),
            ("k=v ; p=1 ;\tflag", &[("k", "v", "p=1;flag")]),
            ("k=v;p=a%20b", &[("k", "v", "p=a%20b")]),
            // malformed members are skipped, the others kept
            ("novalue,k=v", &[("k", "v", "")]),
            ("=v,k=v", &[("k", "v", "")]),
            ("k y=v,k=v", &[("k", "v", "")]),
            ("k=a b,k2=v", &[("k2", "v", "")]),
            ("k=a\"b,k2=v", &[("k2", "v", "")]),
            ("k=%FF,k2=v", &[("k2", "v", "")]),
            ("k%20y=v,k2=v", &[("k2", "v", "")]),
            ("k=v;=x,k2=v", &[("k2", "v", "")]),
            ("k=v;p=a b,k2=v", &[("k2", "v", "")]),
            ("k(=v,k2=v", &[("k2", "v", "")]),
            ("", &[]),
        ];
        for (header, want) in cases {
            let want: Vec<_> = want.iter().map(|(k, v, m)| kv(k, v, m)).collect();
            assert_eq!(parse(&[header]), want, "{header:?}");
        }
    }

    #[test]
    fn every_header_is_read() {
        assert_eq!(
            parse(&["a=1", "b=2;p"]),
            vec![kv("a", "1", ""), kv("b", "2", "p")]
        );
    }

    #[test]
    fn member_limit_drops_what_is_over() {
        let header = (0..70)
            .map(|i| format!("k{i:02}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let got = parse(&[&header]);
        assert_eq!(got.len(), 64);
        assert_eq!(got.last().unwrap().0, "k63");
    }

    #[test]
    fn byte_limit_drops_what_is_over() {
        // 4 members of 3000 bytes: the first two fit in 8192 bytes, the third is cut.
        let big = |k: &str| format!("{k}={}", "x".repeat(2998));
        let header = [big("a"), big("b"), big("c"), "d=1".into()].join(",");
        let got = parse(&[&header]);
        assert_eq!(
            got.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // exactly 8192 bytes are kept
        let exact = format!("a={}", "x".repeat(8190));
        assert_eq!(parse(&[&exact]).len(), 1);
        let over = format!("a={}", "x".repeat(8191));
        assert_eq!(parse(&[&over]).len(), 0);
        // the limit holds across headers
        assert_eq!(parse(&[&big("a"), &big("b"), &big("c")]).len(), 2);
    }

    #[test]
    fn hostile_megabyte_is_cheap() {
        let huge = (0..200_000)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse(&[&huge]).len(), 64);
        let one_member = format!("k={}", "x".repeat(1 << 20));
        assert!(parse(&[&one_member]).is_empty());
        let commas = ",".repeat(1 << 20);
        assert!(parse(&[&commas]).is_empty());
    }

    #[test]
    fn inject_encodes_and_keeps_properties() {
        let mut baggage = Baggage::new();
        baggage.insert_with_metadata("user", "Jürgen, a;b", BaggageMetadata::from("pii;x=1"));
        let cx = Context::new().with_baggage(baggage);
        let mut out = HashMap::new();
        BaggagePropagator::new().inject_context(&cx, &mut out);
        assert_eq!(out["baggage"], "user=J%C3%BCrgen%2C%20a%3Bb;pii;x=1");
        let back = BaggagePropagator::new().extract(&out);
        let (v, m) = back.baggage().get_with_metadata("user").unwrap();
        assert_eq!(v.as_str(), "Jürgen, a;b");
        assert_eq!(m.as_str(), "pii;x=1");
    }

    #[test]
    fn inject_nothing_for_empty_baggage() {
        let mut out = HashMap::new();
        BaggagePropagator::new().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn inject_drops_metadata_that_is_not_a_property_list() {
        let mut baggage = Baggage::new();
        baggage.insert_with_metadata("k", "v", BaggageMetadata::from("a,b"));
        let mut out = HashMap::new();
        BaggagePropagator::new().inject_context(&Context::new().with_baggage(baggage), &mut out);
        assert_eq!(out["baggage"], "k=v");
    }

    #[test]
    fn fields() {
        assert_eq!(
            BaggagePropagator::new().fields().collect::<Vec<_>>(),
            ["baggage"]
        );
    }
}
