//! Telemetry disabled (`OTEL_SDK_DISABLED`, process-global, hence this file): the layers pass
//! requests straight through: no span, no request id, no propagation, and the axum layer hands
//! the inner response on untouched.

mod common;

use axum::Router;
use axum::routing::get;
use otel_core::testing::TestTelemetry;
use otel_http::HttpServerLayer;
use otel_http::reqwest::TracingMiddleware;

use common::{ServerLayer, allocations_per_request, for_both_layers, serve};

#[global_allocator]
static ALLOCATOR: common::CountingAllocator = common::CountingAllocator;

for_both_layers!(disabled_layers_do_nothing);

async fn disabled_layers_do_nothing(layer: ServerLayer) {
    otel_core::sampling::set_enabled(false);
    let telemetry = TestTelemetry::new();
    let app = Router::new().route(
        "/users/{id}",
        get(|headers: http::HeaderMap| async move {
            format!("{}", headers.contains_key("x-request-id"))
        }),
    );
    let addr = serve(layer.router(app, HttpServerLayer::builder())).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::new())
        .build();
    let response = client
        .get(format!("http://{addr}/users/1"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-request-id").is_none());
    assert_eq!(response.text().await.unwrap(), "false");
    assert!(telemetry.spans().is_empty());
}

#[test]
fn disabled_axum_layer_allocates_nothing_beyond_a_no_op_layer() {
    otel_core::sampling::set_enabled(false);
    let routes = || Router::new().route("/users/{id}", get(|| async { "ok" }));
    let noop = allocations_per_request(
        &routes().layer(tower::layer::layer_fn(|inner| inner)),
        "/users/1",
    );
    let axum = allocations_per_request(
        &routes().layer(otel_http::AxumServerLayer::new()),
        "/users/1",
    );
    let generic = allocations_per_request(&routes().layer(HttpServerLayer::new()), "/users/1");
    assert_eq!(axum, noop, "the disabled axum layer allocated");
    // The generic layer's `ResponseBody` is one more box for axum: what the axum layer saves.
    assert_eq!(generic, noop + 1);
}
