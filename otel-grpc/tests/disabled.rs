//! With telemetry switched off (`OTEL_SDK_DISABLED`), the layers do nothing at all. This
//! changes process-global state, hence its own test binary.

use std::sync::{Arc, Mutex};

use otel_core::testing::TestTelemetry;
use tonic::codegen::http;

#[tokio::test]
async fn disabled_telemetry_passes_calls_through_untouched() {
    otel_core::sampling::set_enabled(false);
    let telemetry = TestTelemetry::new();
    let seen = Arc::new(Mutex::new(None));
    let captured = seen.clone();
    let inner = tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        *captured.lock().unwrap() = Some(req.headers().clone());
        async move {
            let mut response = http::Response::new(tonic::body::Body::empty());
            response
                .headers_mut()
                .insert("grpc-status", "14".parse().unwrap());
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let client = tower::ServiceBuilder::new()
        .layer(
            otel_grpc::GrpcClientLayer::new()
                .propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new())
                .meter_provider(telemetry.meter_provider().clone()),
        )
        .layer(
            otel_grpc::GrpcServerLayer::new()
                .propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new())
                .meter_provider(telemetry.meter_provider().clone()),
        )
        .service(inner);
    let request = http::Request::builder()
        .uri("/test.Probe/Fail")
        .body(tonic::body::Body::empty())
        .unwrap();
    let span = tracing::info_span!("caller");
    let response = {
        let _entered = span.enter();
        tower::ServiceExt::oneshot(client, request).await.unwrap()
    };
    drop(span);
    assert_eq!(response.headers()["grpc-status"], "14");
    let headers = seen.lock().unwrap().take().unwrap();
    assert!(headers.get("traceparent").is_none());
    assert!(headers.get("x-request-id").is_none());
    assert_eq!(
        telemetry
            .spans()
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>(),
        ["caller"]
    );
    assert!(support_points(&telemetry).is_empty());
}

fn support_points(telemetry: &TestTelemetry) -> Vec<String> {
    use opentelemetry_sdk::metrics::data::ResourceMetrics;
    let metrics: Vec<ResourceMetrics> = telemetry.metrics();
    metrics
        .iter()
        .flat_map(|rm| {
            rm.scope_metrics()
                .flat_map(|sm| sm.metrics().map(|m| m.name().to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}
