//! Telemetry disabled (`OTEL_SDK_DISABLED`, process-global, hence this file): the layers pass
//! requests straight through: no span, no request id, no propagation.

mod common;

use axum::Router;
use axum::routing::get;
use otel_core::testing::TestTelemetry;
use otel_http::HttpServerLayer;
use otel_http::reqwest::TracingMiddleware;

use common::serve;

#[tokio::test]
async fn disabled_layers_do_nothing() {
    otel_core::sampling::set_enabled(false);
    let telemetry = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|headers: http::HeaderMap| async move {
                format!("{}", headers.contains_key("x-request-id"))
            }),
        )
        .layer(HttpServerLayer::new());
    let addr = serve(app).await;
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
