//! Unsampled requests (the sampler `decide` consults is process-global, hence this file):
//! no span is exported, yet `traceparent` is forwarded with flag 00 and the request id travels.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::trace::Sampler;
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_http::{HttpClientLayer, HttpServerLayer};
use tower::{ServiceBuilder, ServiceExt};

use common::{ServerLayer, for_both_layers, serve};

for_both_layers!(unsampled_requests_export_nothing_but_still_propagate);

fn tracecontext() -> CompositePropagator {
    CompositePropagator::from_names("tracecontext").unwrap()
}

async fn echo(headers: HeaderMap) -> String {
    ["traceparent", "x-request-id"]
        .iter()
        .map(|name| {
            let value = headers
                .get(*name)
                .map(|v| v.to_str().unwrap())
                .unwrap_or("-");
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn chain(layer: ServerLayer) -> SocketAddr {
    let server_b = layer.router(
        Router::new().route("/b", get(echo)),
        HttpServerLayer::builder().propagator(tracecontext()),
    );
    let b = serve(server_b).await;
    let app = Router::new().route(
        "/a",
        get(|State(b): State<SocketAddr>| {
            // A user span below an unsampled request stays unsampled.
            tracing::Instrument::instrument(call_b(b), tracing::info_span!("user work"))
        }),
    );
    let app = layer
        .router(app, HttpServerLayer::builder().propagator(tracecontext()))
        .with_state(b);
    serve(app).await
}

async fn call_b(b: SocketAddr) -> String {
    let client = ServiceBuilder::new()
        .layer(
            HttpClientLayer::builder()
                .propagator(tracecontext())
                .build(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let response = client
        .oneshot(
            http::Request::get(format!("http://{b}/b"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn unsampled_requests_export_nothing_but_still_propagate(layer: ServerLayer) {
    otel_core::sampling::set_sampler(Sampler::AlwaysOff);
    // The SDK samples everything: only the layer's own decision can keep spans out.
    let telemetry = TestTelemetry::new();
    let a = chain(layer).await;
    let client = reqwest::Client::new();

    // With an incoming sampled parent: the trace id is kept, the flag goes to 00.
    let response = client
        .get(format!("http://{a}/a"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("x-request-id", "unsampled-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "unsampled-1");
    let body = response.text().await.unwrap();
    let (traceparent, request_id) = body.split_once('\n').unwrap();
    let parts: Vec<&str> = traceparent
        .trim_start_matches("traceparent=")
        .split('-')
        .collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], "0af7651916cd43dd8448eb211c80319c");
    assert_ne!(parts[2], "b7ad6b7169203331");
    assert_eq!(parts[3], "00");
    assert_eq!(request_id, "x-request-id=unsampled-1");

    // Without a parent: a fresh trace id, flag 00, a generated request id.
    let response = client.get(format!("http://{a}/a")).send().await.unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    let (traceparent, request_id) = body.split_once('\n').unwrap();
    assert!(traceparent.starts_with("traceparent=00-"), "{traceparent}");
    assert!(traceparent.ends_with("-00"), "{traceparent}");
    assert_eq!(request_id, format!("x-request-id={generated}"));

    assert!(
        telemetry.spans().is_empty(),
        "{:?}",
        telemetry
            .spans()
            .iter()
            .map(|s| &s.name)
            .collect::<Vec<_>>()
    );
}
