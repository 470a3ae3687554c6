//! Hostile headers against a real server (axum + the server layer on 127.0.0.1:0, reqwest and
//! raw TCP clients): the request is served, the bad parts are dropped, and nothing raw reaches
//! a span attribute or a log line. Every test runs against both layers (`name::generic`:
//! `HttpServerLayer`, `name::axum`: `AxumServerLayer`).
//!
//! The server raises hyper's limits (4 MB of head, 2,000 header lines) so that the layer, not
//! hyper, meets the oversized input; `hyper_default_limits_refuse_before_telemetry` shows
//! what an unconfigured server does instead.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::SpanData;
use otel_core::attributes;
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_http::HttpServerLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use common::{ServerLayer, for_both_layers};

for_both_layers!(
    a_thousand_tracestate_members_drop_tracestate_and_keep_the_trace,
    one_megabyte_of_baggage_keeps_at_most_64_entries_in_8192_bytes,
    five_hundred_traceparent_headers_start_a_new_trace,
    non_utf8_values_are_dropped_or_replaced_never_passed_on,
    a_request_id_with_escapes_or_newline_attempts_is_replaced,
    ansi_escapes_and_bare_newlines_are_refused_by_hyper_before_telemetry,
    hyper_default_limits_refuse_before_telemetry,
);

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{SPAN}-01")
}

/// The app behind `layer`: `/echo` logs a line inside the request span and answers with the
/// number of baggage entries and bytes it sees.
fn app(layer: ServerLayer) -> Router {
    let router = Router::new().route(
        "/echo",
        get(|| async {
            tracing::info!("handler ran");
            let cx = opentelemetry::Context::current();
            let bag = cx.baggage();
            let bytes: usize = bag
                .iter()
                .map(|(k, (v, _))| k.as_str().len() + v.as_str().len())
                .sum();
            format!("{} {bytes}", bag.len())
        }),
    );
    layer.router(
        router,
        HttpServerLayer::builder()
            .propagator(CompositePropagator::from_names("tracecontext,baggage").unwrap())
            .capture_request_headers([
                http::header::USER_AGENT,
                http::HeaderName::from_static("x-note"),
            ]),
    )
}

/// Serves `app(layer)` with hyper's head limits raised.
async fn serve_raised_limits(layer: ServerLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(layer);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| app.clone().oneshot(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .max_buf_size(4 * 1024 * 1024)
                    .max_headers(2_000)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn server_span(telemetry: &TestTelemetry) -> SpanData {
    telemetry.span("GET /echo")
}

fn str_attr(span: &SpanData, key: &str) -> Option<String> {
    TestTelemetry::attr(span, key).map(|v| v.as_str().into_owned())
}

/// Nothing in `needles` appears in any span (name, attributes, events) nor in the logs, and
/// no attribute is longer than the 1024-byte header cap.
fn assert_nothing_raw(telemetry: &TestTelemetry, needles: &[&str]) {
    let logs = telemetry.logs();
    assert!(logs.contains("handler ran"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "escape in logs: {logs:?}");
    for span in telemetry.spans() {
        for kv in &span.attributes {
            assert!(
                kv.value.as_str().len() <= 1024,
                "{} is {} bytes",
                kv.key,
                kv.value.as_str().len()
            );
        }
        let dump = format!("{:?} {:?} {:?}", span.name, span.attributes, span.events);
        assert!(!dump.contains('\u{1b}'), "escape in span: {dump}");
        for needle in needles {
            assert!(!dump.contains(needle), "{needle} in span: {dump}");
        }
    }
    for needle in needles {
        assert!(!logs.contains(needle), "{needle} in logs");
    }
}

async fn a_thousand_tracestate_members_drop_tracestate_and_keep_the_trace(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve_raised_limits(layer).await;
    let members: Vec<String> = (0..1000).map(|i| format!("vendor{i}=value{i}")).collect();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/echo"))
        .header("traceparent", traceparent())
        .header("tracestate", members.join(","))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let span = server_span(&telemetry);
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(span.parent_span_id, SpanId::from_hex(SPAN).unwrap());
    assert_eq!(
        span.span_context.trace_state().header(),
        "",
        "over 32 members: discarded"
    );
    assert_nothing_raw(&telemetry, &["vendor999", "value0"]);
}

async fn one_megabyte_of_baggage_keeps_at_most_64_entries_in_8192_bytes(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve_raised_limits(layer).await;
    let mut baggage = String::with_capacity(1 << 20);
    let mut i = 0;
    while baggage.len() < 1 << 20 {
        baggage.push_str(&format!("key{i}=hostilevalue{i},"));
        i += 1;
    }
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/echo"))
        .header("baggage", baggage)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let (entries, bytes) = body.split_once(' ').unwrap();
    let (entries, bytes): (usize, usize) = (entries.parse().unwrap(), bytes.parse().unwrap());
    assert!((1..=64).contains(&entries), "{entries} entries");
    assert!(bytes <= 8192, "{bytes} bytes");
    assert_nothing_raw(&telemetry, &["hostilevalue"]);
}

async fn five_hundred_traceparent_headers_start_a_new_trace(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve_raised_limits(layer).await;
    let mut request = reqwest::Client::new().get(format!("http://{addr}/echo"));
    for _ in 0..500 {
        request = request.header("traceparent", traceparent());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let span = server_span(&telemetry);
    assert_ne!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(
        span.parent_span_id,
        SpanId::INVALID,
        "a new root, not the hostile parent"
    );
    assert_nothing_raw(&telemetry, &[TRACE, SPAN]);
}

async fn non_utf8_values_are_dropped_or_replaced_never_passed_on(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve_raised_limits(layer).await;
    let bad = |text: &[u8]| http::HeaderValue::from_bytes(text).unwrap();
    let mut traceparent_bytes = traceparent().into_bytes();
    traceparent_bytes[40] = 0xff; // inside the span id
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/echo"))
        .header("traceparent", bad(&traceparent_bytes))
        .header("tracestate", bad(b"a=\xff\xfe"))
        .header("baggage", bad(b"user=\xc3\x28,ok=1"))
        .header("x-request-id", bad(b"id-\xff\xfe"))
        .header("user-agent", bad(b"agent/\xff1.0"))
        .header("x-note", bad(b"\xe2\x82"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.text().await.unwrap();

    let span = server_span(&telemetry);
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert_ne!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    let id = str_attr(&span, attributes::REQUEST_ID).unwrap();
    assert_eq!(id, echoed, "the replacement id is the one echoed");
    assert!(!id.contains("id-"), "{id}");
    assert_eq!(
        TestTelemetry::attr(&span, attributes::REQUEST_ID_REJECTED),
        Some(opentelemetry::Value::Bool(true))
    );
    // Recorded header values are valid UTF-8 text with the bad bytes replaced.
    assert_eq!(
        str_attr(&span, "user_agent.original").as_deref(),
        Some("agent/\u{fffd}1.0")
    );
    assert_nothing_raw(&telemetry, &[]);
}

async fn a_request_id_with_escapes_or_newline_attempts_is_replaced(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve_raised_limits(layer).await;
    // What can reach the layer on the wire: a literal backslash-n, quotes, a percent-encoded
    // newline is valid text (kept), over-long ids.
    for (raw, replaced) in [
        (&b"abc\\ndef"[..], true),
        (b"\"quoted\"", true),
        (b"a b", true),
        (&[b'x'; 129][..], true),
        (b"abc%0Adef", false),
    ] {
        telemetry.reset();
        let response = raw_request(addr, &[(b"x-request-id", raw)]).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let span = server_span(&telemetry);
        let id = str_attr(&span, attributes::REQUEST_ID).unwrap();
        let rejected = TestTelemetry::attr(&span, attributes::REQUEST_ID_REJECTED);
        if replaced {
            assert_ne!(id.as_bytes(), raw);
            assert_eq!(rejected, Some(opentelemetry::Value::Bool(true)));
            assert_nothing_raw(&telemetry, &[std::str::from_utf8(raw).unwrap()]);
        } else {
            assert_eq!(id.as_bytes(), raw);
            assert_eq!(rejected, None);
        }
    }
}

async fn ansi_escapes_and_bare_newlines_are_refused_by_hyper_before_telemetry(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve_raised_limits(layer).await;
    // Control bytes in a header value and an obs-fold continuation line: hyper answers 400
    // itself; the layer never sees the request, so no span and no log line carries them.
    for header in [
        &b"x-request-id: abc\x1b[31mred\x1b[0m"[..],
        b"x-request-id: line1\r\n line2",
        b"x-request-id: line1\rline2",
    ] {
        let response = raw_request_lines(addr, header).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response:?}");
    }
    assert!(telemetry.spans().is_empty());
    let logs = telemetry.logs();
    assert!(
        !logs.contains('\u{1b}') && !logs.contains("line2"),
        "{logs:?}"
    );
}

async fn hyper_default_limits_refuse_before_telemetry(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = common::serve(app(layer)).await;
    // hyper's default head limit is ~400 KB and 100 headers: it answers 431 itself.
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/echo"))
        .header("baggage", "k=v,".repeat(200_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let mut request = reqwest::Client::new().get(format!("http://{addr}/echo"));
    for _ in 0..500 {
        request = request.header("traceparent", traceparent());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 431);
    assert!(telemetry.spans().is_empty());
    // A normal request on the same server is still served.
    let response = reqwest::get(format!("http://{addr}/echo")).await.unwrap();
    assert_eq!(response.status(), 200);
}

// ---- helpers ----------------------------------------------------------------------------

/// Sends `GET /echo` with `headers` over a raw TCP connection; returns the whole response.
async fn raw_request(addr: SocketAddr, headers: &[(&[u8], &[u8])]) -> String {
    let mut lines = Vec::new();
    for (name, value) in headers {
        lines.extend_from_slice(name);
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value);
        lines.extend_from_slice(b"\r\n");
    }
    lines.truncate(lines.len() - 2);
    raw_request_lines(addr, &lines).await
}

async fn raw_request_lines(addr: SocketAddr, header_lines: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = b"GET /echo HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n".to_vec();
    request.extend_from_slice(header_lines);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}
