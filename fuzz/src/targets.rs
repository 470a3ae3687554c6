//! The fuzz target bodies. Each never panics on any input; the `assert!`s are the invariants
//! the parser promises, so a failed one is a bug found (libFuzzer reports it as a crash).
//!
//! ```
//! otel_fuzz::targets::w3c_tracecontext(
//!     b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\ntracestate: a=1",
//! );
//! ```

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use otel_core::RequestId;
use otel_core::propagation::{
    B3Encoding, B3Propagator, BaggagePropagator, JaegerPropagator, TraceContextPropagator,
    XrayPropagator, baggage::MAX_BYTES, baggage::MAX_MEMBERS, extract_with, inject_with,
};
use otel_core::request_id::{MAX_LEN, Outcome, RequestIdConfig};
use otel_sql::fingerprint::{
    Dialect, MAX_SANITIZED_LEN, MAX_SUMMARY_LEN, cached, fingerprint_with,
};

use crate::headers::header_map;

/// W3C `traceparent` + `tracestate` over an arbitrary header set: extraction is total, and a
/// valid context survives inject → extract unchanged (ids, all eight flag bits, tracestate).
pub fn w3c_tracecontext(data: &[u8]) {
    let p = TraceContextPropagator::new();
    let headers = header_map(data);
    let cx = extract_with(&p, &headers);
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return;
    }
    assert!(sc.is_remote());
    let out = round_trip(&p, &cx);
    assert_eq!(out.get_all("traceparent").iter().count(), 1);
    assert_eq!(out["traceparent"].len(), 55);
    let again = extract_with(&p, &out);
    let sc2 = again.span().span_context().clone();
    assert_same_ids(&sc, &sc2);
    assert_eq!(sc.trace_flags(), sc2.trace_flags());
    assert_eq!(sc.trace_state().header(), sc2.trace_state().header());
    assert!(sc.trace_state().header().split(',').count() <= 32);
}

/// W3C baggage: at most 64 members within 8192 bytes are kept, and what is kept survives
/// inject → extract.
pub fn baggage(data: &[u8]) {
    let p = BaggagePropagator::new();
    let headers = header_map(data);
    let cx = extract_with(&p, &headers);
    let bag = cx.baggage();
    assert!(bag.len() <= MAX_MEMBERS, "{} members kept", bag.len());
    let out = round_trip(&p, &cx);
    let written: usize = out.get_all("baggage").iter().map(|v| v.len()).sum();
    assert!(written <= MAX_BYTES, "{written} bytes injected");
    let again = extract_with(&p, &out);
    for (key, (value, _)) in again.baggage().iter() {
        assert_eq!(bag.get(key.as_str()), Some(value), "{key:?} changed");
    }
}

/// B3 single and multi header: extraction is total; a valid context keeps its ids and
/// sampling decision through injection in every encoding.
pub fn b3(data: &[u8]) {
    let headers = header_map(data);
    let cx = extract_with(&B3Propagator::new(), &headers);
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return;
    }
    for encoding in [
        B3Encoding::Single,
        B3Encoding::Multi,
        B3Encoding::SingleAndMulti,
    ] {
        let p = B3Propagator::with_encoding(encoding);
        let out = round_trip(&p, &cx);
        let again = extract_with(&p, &out);
        assert_same_ids(&sc, again.span().span_context());
        assert_eq!(sc.is_sampled(), again.span().span_context().is_sampled());
    }
}

/// Jaeger `uber-trace-id` and `uberctx-*`: extraction is total, baggage bounded, a valid
/// context keeps its ids and sampling decision through a round trip.
pub fn jaeger(data: &[u8]) {
    let p = JaegerPropagator::new();
    let headers = header_map(data);
    let cx = extract_with(&p, &headers);
    assert!(cx.baggage().len() <= MAX_MEMBERS);
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return;
    }
    let out = round_trip(&p, &cx);
    let again = extract_with(&p, &out);
    assert_same_ids(&sc, again.span().span_context());
    assert_eq!(sc.is_sampled(), again.span().span_context().is_sampled());
}

/// AWS X-Ray `X-Amzn-Trace-Id`: extraction is total; a valid context keeps its ids and
/// sampling decision through a round trip.
pub fn xray(data: &[u8]) {
    let p = XrayPropagator::new();
    let headers = header_map(data);
    let cx = extract_with(&p, &headers);
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return;
    }
    let out = round_trip(&p, &cx);
    let again = extract_with(&p, &out);
    assert_same_ids(&sc, again.span().span_context());
    assert_eq!(sc.is_sampled(), again.span().span_context().is_sampled());
}

/// Request ids: `RequestId::parse` on the raw bytes and `RequestIdConfig::accept` on a header
/// set. An accepted id is the exact input, 1 to 128 visible ASCII bytes without quotes,
/// backslashes or spaces; whatever arrives, the id served under is valid and prefixable.
pub fn request_id(data: &[u8]) {
    if let Ok(id) = RequestId::parse(data) {
        assert_eq!(id.as_str().as_bytes(), data);
        assert_valid_id(id.as_str());
        let _ = id.to_header_value();
    }
    let headers = header_map(data);
    let config = RequestIdConfig::default()
        .headers(["x-request-id", "x-correlation-id"])
        .expect("static header names are valid");
    let accepted = config.accept(&headers);
    assert_valid_id(accepted.id.as_str());
    if accepted.outcome == Outcome::Accepted {
        let raw = headers
            .get("x-request-id")
            .filter(|v| RequestId::parse(v.as_bytes()).is_ok())
            .or_else(|| headers.get("x-correlation-id"))
            .expect("an accepted id came from a header");
        assert_eq!(raw.as_bytes(), accepted.id.as_str().as_bytes());
    }
    let prefixed = accepted.id.with_prefix("svc");
    assert_valid_id(prefixed.as_str());
    let mut out = HeaderMap::new();
    config.forward(&accepted.id, &mut out);
    config.echo(&accepted.id, &mut out);
}

/// SQL fingerprint in every dialect: never panics, output bounded, deterministic, and the
/// per-thread cache answers exactly what a fresh pass does.
pub fn sql_fingerprint(data: &[u8]) {
    let sql = String::from_utf8_lossy(data);
    for dialect in [
        Dialect::Generic,
        Dialect::Postgres,
        Dialect::MySql,
        Dialect::Sqlite,
    ] {
        let fp = fingerprint_with(&sql, dialect);
        // The cut keeps whole UTF-8 characters, hence up to 3 bytes of slack.
        assert!(fp.sanitized().len() <= MAX_SANITIZED_LEN + 3);
        assert!(fp.summary().len() <= MAX_SUMMARY_LEN + 3);
        let again = cached(&sql, dialect);
        assert_eq!(fp.hash(), again.hash());
        assert_eq!(fp.sanitized(), again.sanitized());
        assert_eq!(fp.summary(), again.summary());
        assert_eq!(fp.literals_hash(), again.literals_hash());
    }
}

/// `Retry-After` (delta-seconds or HTTP date): never panics; a delay in seconds is the number
/// written; a date gives a delay no longer than the distance from `now`.
pub fn retry_after(data: &[u8]) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let parsed = otel_resilience::retry_policy::parse_retry_after(data, now);
    if let Ok(text) = std::str::from_utf8(data) {
        let text = text.trim();
        if let Ok(n) = text.parse::<u64>()
            && text.bytes().all(|b| b.is_ascii_digit())
        {
            assert_eq!(parsed, Some(Duration::from_secs(n)));
        }
    }
    // Using the delay the way the retry layer does never overflows once capped.
    if let Some(delay) = parsed {
        let _ = tokio_like_deadline(delay.min(Duration::from_secs(300)));
    }
}

/// `grpc-timeout`: never panics; an accepted value is 1 to 8 digits and a unit.
pub fn grpc_timeout(data: &[u8]) {
    if let Some(timeout) = otel_grpc::grpc_timeout::parse(data) {
        assert!((2..=9).contains(&data.len()));
        assert!(timeout <= Duration::from_secs(99_999_999 * 3600));
    }
}

// ---- helpers ----------------------------------------------------------------------------

fn round_trip(p: &dyn TextMapPropagator, cx: &Context) -> HeaderMap {
    let mut out = HeaderMap::new();
    inject_with(p, cx, &mut out);
    out
}

fn assert_same_ids(a: &SpanContext, b: &SpanContext) {
    assert_eq!(a.trace_id(), b.trace_id());
    assert_eq!(a.span_id(), b.span_id());
}

fn assert_valid_id(id: &str) {
    assert!(!id.is_empty() && id.len() <= MAX_LEN, "length {}", id.len());
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
        "{id:?}"
    );
}

fn tokio_like_deadline(delay: Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(delay)
}
