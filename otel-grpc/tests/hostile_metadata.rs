//! Hostile metadata against a real tonic server behind `GrpcServerLayer` (127.0.0.1:0, a
//! plain tonic client without the client layer): 1,000 `tracestate` members, oversized
//! baggage, 500 repeated `traceparent` entries, non-UTF-8 values, forbidden request ids. The
//! call is served, the bad parts are dropped, nothing raw reaches an attribute or a log line.

mod support;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::SpanData;
use otel_core::attributes::{REQUEST_ID, REQUEST_ID_REJECTED};
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_grpc::GrpcServerLayer;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

use support::{Probe, str_attr};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const METHOD: &str = "test.Probe/WhoAmI";

fn traceparent() -> AsciiMetadataValue {
    format!("00-{TRACE}-{SPAN}-01").parse().unwrap()
}

/// Calls `WhoAmI` with `metadata`; returns what the handler saw
/// (`context id|header id|trace id|sampled`) and the server span.
async fn call(telemetry: &TestTelemetry, metadata: MetadataMap) -> (String, SpanData) {
    telemetry.reset();
    let layer = GrpcServerLayer::new()
        .propagator(CompositePropagator::from_names("tracecontext,baggage").unwrap())
        .meter_provider(telemetry.meter_provider().clone());
    let addr = serve_raised_limit(layer).await;
    let mut client = tonic::client::Grpc::new(support::channel(addr).await);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(Probe::default());
    *request.metadata_mut() = metadata;
    let response = client
        .unary(
            request,
            http::uri::PathAndQuery::from_static("/test.Probe/WhoAmI"),
            tonic_prost::ProstCodec::<Probe, Probe>::default(),
        )
        .await
        .expect("the call is served");
    let text = response.into_inner().text;
    for _ in 0..10_000 {
        if !telemetry.spans_named(METHOD).is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    (text, telemetry.span(METHOD))
}

/// Serves `test.Probe` behind `layer` with the HTTP/2 header list limit raised to 1 MB (the
/// default, 16 KB, answers 431 itself: see `default_header_limit_refuses_before_telemetry`).
async fn serve_raised_limit(layer: GrpcServerLayer) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .http2_max_header_list_size(1 << 20)
            .layer(layer)
            .add_service(support::ProbeService)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

fn assert_nothing_raw(telemetry: &TestTelemetry, needles: &[&str]) {
    let logs = telemetry.logs();
    for span in telemetry.spans() {
        let dump = format!("{:?} {:?} {:?}", span.name, span.attributes, span.events);
        assert!(
            !dump.contains('\u{1b}') && !dump.contains('\u{fffd}'),
            "{dump}"
        );
        for needle in needles {
            assert!(!dump.contains(needle), "{needle} in span: {dump}");
            assert!(!logs.contains(needle), "{needle} in logs: {logs}");
        }
    }
}

#[tokio::test]
async fn a_thousand_tracestate_members_drop_tracestate_and_keep_the_trace() {
    let telemetry = TestTelemetry::new();
    let mut md = MetadataMap::new();
    md.insert("traceparent", traceparent());
    let members: Vec<String> = (0..1000).map(|i| format!("vendor{i}=value{i}")).collect();
    md.insert("tracestate", members.join(",").parse().unwrap());
    let (seen, span) = call(&telemetry, md).await;
    assert!(seen.contains(TRACE), "{seen}");
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(span.parent_span_id, SpanId::from_hex(SPAN).unwrap());
    assert_eq!(span.span_context.trace_state().header(), "");
    assert_nothing_raw(&telemetry, &["vendor999"]);
}

#[tokio::test]
async fn five_hundred_traceparent_entries_start_a_new_trace() {
    let telemetry = TestTelemetry::new();
    let mut md = MetadataMap::new();
    for _ in 0..500 {
        md.append("traceparent", traceparent());
    }
    let (seen, span) = call(&telemetry, md).await;
    assert!(!seen.contains(TRACE), "{seen}");
    assert_ne!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert_nothing_raw(&telemetry, &[TRACE]);
}

#[tokio::test]
async fn oversized_baggage_is_bounded_and_never_recorded() {
    let telemetry = TestTelemetry::new();
    let mut md = MetadataMap::new();
    // 12 KB: within HTTP/2's default header list limit, past the W3C 8192-byte limit.
    let baggage: Vec<String> = (0..800).map(|i| format!("k{i}=hostile{i}")).collect();
    md.insert("baggage", baggage.join(",").parse().unwrap());
    let (_, span) = call(&telemetry, md).await;
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert_nothing_raw(&telemetry, &["hostile"]);
}

#[tokio::test]
async fn non_utf8_and_forbidden_request_ids_are_replaced() {
    let telemetry = TestTelemetry::new();
    for raw in [
        &b"id-\xff\xfe"[..],
        b"a\"quoted\"id",
        b"back\\slash",
        b"with space",
        &[b'x'; 200][..],
    ] {
        let mut md = MetadataMap::new();
        md.insert(
            "x-request-id",
            AsciiMetadataValue::try_from(raw).expect("a valid header value"),
        );
        let mut tp = traceparent().as_encoded_bytes().to_vec();
        tp[40] = 0xff;
        md.insert(
            "traceparent",
            AsciiMetadataValue::try_from(&tp[..]).unwrap(),
        );
        let (seen, span) = call(&telemetry, md).await;
        let context_id = seen.split('|').next().unwrap().to_owned();
        let recorded = str_attr(&span, REQUEST_ID).expect("request.id");
        assert_eq!(
            context_id, recorded,
            "the handler runs under the replacement"
        );
        assert_ne!(recorded.as_bytes(), raw);
        assert_eq!(
            TestTelemetry::attr(&span, REQUEST_ID_REJECTED),
            Some(opentelemetry::Value::Bool(true)),
            "{raw:?}"
        );
        assert_eq!(
            span.parent_span_id,
            SpanId::INVALID,
            "non-UTF-8 traceparent"
        );
        let lossy = String::from_utf8_lossy(raw).into_owned();
        assert_nothing_raw(&telemetry, &[&lossy]);
    }
}

#[tokio::test]
async fn default_header_limit_refuses_before_telemetry() {
    let telemetry = TestTelemetry::new();
    let addr = support::serve(GrpcServerLayer::new()).await;
    let mut client = tonic::client::Grpc::new(support::channel(addr).await);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(Probe::default());
    for _ in 0..500 {
        request.metadata_mut().append("traceparent", traceparent());
    }
    let status = client
        .unary(
            request,
            http::uri::PathAndQuery::from_static("/test.Probe/WhoAmI"),
            tonic_prost::ProstCodec::<Probe, Probe>::default(),
        )
        .await
        .unwrap_err();
    assert!(status.message().contains("431"), "{status:?}");
    assert!(telemetry.spans_named(METHOD).is_empty());
}
