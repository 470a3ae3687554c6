//! The N+1 API call: a handler that calls a backend once per item is flagged on its server
//! span, through the same repeated-shape detector as the N+1 query (otel-core). The server
//! tests run against both layers (`name::generic`: `HttpServerLayer`, `name::axum`:
//! `AxumServerLayer`); the retry test concerns the reqwest middleware alone.

mod common;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use opentelemetry::trace::SpanKind;
use otel_core::testing::TestTelemetry;
use otel_http::HttpServerLayer;
use otel_http::reqwest::TracingMiddleware;

use common::{ServerLayer, for_both_layers, serve};

for_both_layers!(
    a_call_per_item_is_flagged_on_the_server_span,
    four_calls_stay_under_the_threshold,
);

fn str_attr(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    TestTelemetry::attr(span, key).map(|v| v.as_str().into_owned())
}

/// A gateway behind `layer` whose `/profile` fetches each of `n` friends one call at a time.
async fn gateway(layer: ServerLayer, n: u32) -> std::net::SocketAddr {
    let backend = serve(Router::new().route(
        "/users/{id}",
        get(|Path(id): Path<u32>| async move { format!("user {id}") }),
    ))
    .await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::new())
        .build();
    let app = Router::new().route(
        "/profile",
        get(move || {
            let client = client.clone();
            async move {
                for id in 0..n {
                    client
                        .get(format!("http://{backend}/users/{id}"))
                        .send()
                        .await
                        .unwrap();
                }
                "ok"
            }
        }),
    );
    serve(layer.router(app, HttpServerLayer::builder())).await
}

async fn a_call_per_item_is_flagged_on_the_server_span(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = gateway(layer, 7).await;
    let body = reqwest::get(format!("http://{addr}/profile"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");

    let server = telemetry.span("GET /profile");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(
        str_attr(&server, "n_plus_one.kind").as_deref(),
        Some("n_plus_one")
    );
    assert_eq!(
        str_attr(&server, "n_plus_one.shape").as_deref(),
        Some("GET 127.0.0.1/users/{id}")
    );
    assert_eq!(
        TestTelemetry::attr(&server, "n_plus_one.count").map(|v| v.to_string()),
        Some("7".to_owned())
    );
    let events: Vec<_> = server
        .events
        .iter()
        .filter(|e| e.name == "n_plus_one.detected")
        .collect();
    assert_eq!(events.len(), 1, "one finding event on the server span");
    // The warning with the final count is written when the request ends: it still carries the
    // request's trace id, so the log line leads to the trace.
    let logs = telemetry.logs();
    let final_line = logs
        .lines()
        .find(|line| line.contains("final count"))
        .unwrap_or_else(|| panic!("no final-count warning in {logs}"));
    assert!(
        final_line.contains(&format!("trace_id={}", server.span_context.trace_id())),
        "{final_line}"
    );
    assert_eq!(telemetry.spans_named("GET").len(), 7, "seven client spans");
}

async fn four_calls_stay_under_the_threshold(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = gateway(layer, 4).await;
    reqwest::get(format!("http://{addr}/profile"))
        .await
        .unwrap();
    let server = telemetry.span("GET /profile");
    assert_eq!(str_attr(&server, "n_plus_one.kind"), None);
    assert!(
        server
            .events
            .iter()
            .all(|e| e.name != "n_plus_one.detected")
    );
}

#[tokio::test]
async fn retried_attempts_are_not_repeats() {
    use otel_core::extensions::ResendCount;
    use otel_core::repeated_shape::{self, FindingKind};

    let _telemetry = TestTelemetry::new();
    let backend = serve(Router::new().route("/charge", get(|| async { "charged" }))).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::new())
        .build();
    let ((), findings) = repeated_shape::capture(async {
        // One logical call sent six times (as a retry layer does): attempts 2..6 carry their
        // resend count and are not counted as repeats of the shape.
        for resend in 0..6 {
            client
                .get(format!("http://{backend}/charge"))
                .with_extension(ResendCount(resend))
                .send()
                .await
                .unwrap();
        }
        // Six distinct calls of the same shape are.
        for _ in 0..6 {
            client
                .get(format!("http://{backend}/charge"))
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    let n_plus_one = findings
        .iter()
        .find(|f| f.kind == FindingKind::NPlusOne)
        .expect("the six distinct calls are an N+1");
    // 1 first attempt + 6 distinct calls; the 5 retries are not counted.
    assert_eq!(n_plus_one.count, 7, "{findings:?}");
}
