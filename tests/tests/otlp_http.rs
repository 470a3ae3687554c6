//! OTLP/HTTP protobuf over a real socket: `otel_core::Telemetry` with
//! `.otlp_protocol(HttpProtobuf)` posts the spans of requests served through
//! `otel_http::AxumServerLayer` to an in-process `POST /v1/traces` handler, which decodes the
//! `ExportTraceServiceRequest` with prost.
//!
//! Its own test binary: `Telemetry::install` sets process-global state.

use integration_tests::otlp_receiver::OtlpReceiver;
use integration_tests::otlp_roundtrip::{check_orders, export_orders};
use otel_core::telemetry::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spans_reach_an_otlp_http_receiver() {
    let receiver = OtlpReceiver::http().await;
    export_orders(&receiver, OtlpProtocol::HttpProtobuf).await;
    assert!(
        !receiver.requests().is_empty(),
        "at least one export request"
    );
    check_orders(&receiver);
}
