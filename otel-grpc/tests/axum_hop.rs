//! An HTTP request served by axum that calls a tonic service: the HTTP server span is the
//! ancestor of the gRPC client and server spans, all in one trace. The HTTP span here is a
//! plain `tracing` span (otel-grpc may not depend on otel-http); the end-to-end version with
//! otel-http's layer belongs to the workspace `tests/`.

mod support;

use axum::extract::State;
use opentelemetry::trace::SpanKind;
use otel_core::testing::TestTelemetry;
use otel_grpc::GrpcClient;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;

async fn hop(State(channel): State<GrpcClient<Channel>>) -> String {
    let span = tracing::info_span!("GET /hop", otel.kind = "server");
    async move {
        let mut health = HealthClient::new(channel);
        match health
            .check(HealthCheckRequest {
                service: "test.Probe".into(),
            })
            .await
        {
            Ok(response) => format!("status={}", response.get_ref().status),
            Err(status) => format!("error={:?}", status.code()),
        }
    }
    .instrument(span)
    .await
}

#[tokio::test]
async fn http_server_span_is_ancestor_of_grpc_client_and_server_spans() {
    let telemetry = TestTelemetry::new();
    let grpc_addr = serve(server_layer(&telemetry)).await;
    let channel = tower::ServiceBuilder::new()
        .layer(client_layer(&telemetry, grpc_addr))
        .service(channel(grpc_addr).await);

    let app = axum::Router::new()
        .route("/hop", axum::routing::get(hop))
        .with_state(channel);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut stream = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    stream
        .write_all(b"GET /hop HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("status=1"), "SERVING: {response}");

    let name = "grpc.health.v1.Health/Check";
    let spans = telemetry.spans();
    let http = telemetry.span("GET /hop");
    assert_eq!(http.span_kind, SpanKind::Server);
    let client = spans
        .iter()
        .find(|s| s.name == name && s.span_kind == SpanKind::Client)
        .expect("gRPC client span");
    let server = spans
        .iter()
        .find(|s| s.name == name && s.span_kind == SpanKind::Server)
        .expect("gRPC server span");
    assert!(
        TestTelemetry::is_child_of(client, &http),
        "client span under the HTTP span"
    );
    assert!(
        TestTelemetry::is_child_of(server, client),
        "server span under the client span"
    );
    assert_eq!(server.span_context.trace_id(), http.span_context.trace_id());
}
