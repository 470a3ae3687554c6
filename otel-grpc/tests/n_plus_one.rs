//! N+1 over gRPC: repeats made inside a handler are flagged on its server span (one detection
//! scope per call), and a caller that invokes the same method once per item is flagged too.

mod support;

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use otel_core::repeated_shape::{self, FindingKind};
use otel_core::testing::TestTelemetry;
use support::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const REPEAT: &str = "test.Probe/Repeat";

async fn server_span(telemetry: &TestTelemetry) -> SpanData {
    for _ in 0..10_000 {
        if let Some(span) = telemetry
            .spans_named(REPEAT)
            .into_iter()
            .find(|s| s.span_kind == SpanKind::Server)
        {
            return span;
        }
        tokio::task::yield_now().await;
    }
    panic!("no server span; spans: {:?}", telemetry.spans());
}

#[tokio::test]
async fn repeats_inside_a_handler_land_on_its_server_span_with_the_final_count() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut grpc = client(channel(addr).await, client_layer(&telemetry, addr));
    unary(
        &mut grpc,
        "/test.Probe/Repeat",
        tonic::Request::new(Probe {
            count: 9,
            ..Probe::default()
        }),
    )
    .await
    .unwrap();

    let server = server_span(&telemetry).await;
    assert_eq!(
        str_attr(&server, "n_plus_one.kind").as_deref(),
        Some("n_plus_one")
    );
    assert_eq!(
        str_attr(&server, "n_plus_one.shape").as_deref(),
        Some("SELECT * FROM stock WHERE sku = ?")
    );
    assert_eq!(int_attr(&server, "n_plus_one.count"), Some(9));
    assert_eq!(
        server
            .events
            .iter()
            .filter(|e| e.name == "n_plus_one.detected")
            .count(),
        1
    );
}

#[tokio::test]
async fn under_the_threshold_nothing_is_recorded() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut grpc = client(channel(addr).await, client_layer(&telemetry, addr));
    unary(
        &mut grpc,
        "/test.Probe/Repeat",
        tonic::Request::new(Probe {
            count: 4,
            ..Probe::default()
        }),
    )
    .await
    .unwrap();
    let server = server_span(&telemetry).await;
    assert!(!has_attr(&server, "n_plus_one.kind"));
}

#[tokio::test]
async fn calling_one_method_per_item_is_an_n_plus_one() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let channel = tower::ServiceBuilder::new()
        .layer(client_layer(&telemetry, addr))
        .service(channel(addr).await);
    let mut health = HealthClient::new(channel);
    let ((), findings) = repeated_shape::capture(async {
        for _ in 0..6 {
            health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .unwrap();
        }
    })
    .await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, FindingKind::NPlusOne);
    assert_eq!(findings[0].shape, "grpc.health.v1.Health/Check");
    assert_eq!(findings[0].count, 6);
}
