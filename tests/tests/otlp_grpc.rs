//! OTLP/gRPC over a real socket: `otel_core::Telemetry` with `.otlp_protocol(Grpc)` sends the
//! spans of requests served through `otel_http::AxumServerLayer` to an in-process
//! `TraceService` (opentelemetry-proto's tonic server), which decodes them from the wire.
//!
//! Its own test binary: `Telemetry::install` sets process-global state.

use integration_tests::otlp_receiver::OtlpReceiver;
use integration_tests::otlp_roundtrip::{check_orders, export_orders};
use otel_core::telemetry::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spans_reach_an_otlp_grpc_receiver() {
    let receiver = OtlpReceiver::grpc().await;
    export_orders(&receiver, OtlpProtocol::Grpc).await;
    assert!(
        !receiver.requests().is_empty(),
        "at least one export request"
    );
    check_orders(&receiver);
}
