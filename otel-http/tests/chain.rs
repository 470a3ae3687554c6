//! A chain client → server A → server B over real sockets: one trace, correct parent links,
//! one request id everywhere, with `tracecontext` and with `b3` as the configured propagator,
//! through either server layer.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::trace::{FutureExt, SpanKind};
use otel_core::RequestId;
use otel_core::extensions::UrlTemplate;
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_http::HttpServerLayer;
use otel_http::reqwest::TracingMiddleware;
use reqwest_middleware::ClientWithMiddleware;

use common::{ServerLayer, serve};

fn propagator(names: &str) -> CompositePropagator {
    CompositePropagator::from_names(names).expect("known propagator names")
}

fn client(names: &str) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            TracingMiddleware::builder()
                .propagator(propagator(names))
                .build(),
        )
        .build()
}

/// Server B answers with the propagation headers it received, one `name=value` a line.
async fn echo_headers(headers: HeaderMap) -> String {
    ["traceparent", "b3", "x-b3-traceid", "x-request-id"]
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

async fn run_chain(names: &'static str, layer: ServerLayer) -> (TestTelemetry, String, HeaderMap) {
    let telemetry = TestTelemetry::new();
    let server_b = layer.router(
        Router::new().route("/b/{id}", get(echo_headers)),
        HttpServerLayer::builder().propagator(propagator(names)),
    );
    let b_addr = serve(server_b).await;

    let server_a =
        Router::new().route(
            "/a/{id}",
            get(
                |State((client, b)): State<(ClientWithMiddleware, SocketAddr)>,
                 Path(id): Path<u32>| async move {
                    common::text_of(client.get(format!("http://{b}/b/{id}"))).await
                },
            ),
        );
    let server_a = layer
        .router(
            server_a,
            HttpServerLayer::builder().propagator(propagator(names)),
        )
        .with_state((client(names), b_addr));
    let a_addr = serve(server_a).await;

    let root = Context::new().with_value(RequestId::parse(b"chain-1").unwrap());
    let response = client(names)
        .get(format!("http://{a_addr}/a/7"))
        .with_extension(UrlTemplate::new("/a/{id}"))
        .send()
        .with_context(root)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    (telemetry, body, headers)
}

fn check_tree(
    telemetry: &TestTelemetry,
    headers: &HeaderMap,
) -> [opentelemetry_sdk::trace::SpanData; 4] {
    let spans = telemetry.spans();
    let named = |name: &str, kind: SpanKind| {
        let matching: Vec<_> = spans
            .iter()
            .filter(|s| s.name == name && s.span_kind == kind)
            .cloned()
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{name} {kind:?}: {:?}",
            spans
                .iter()
                .map(|s| (&s.name, &s.span_kind))
                .collect::<Vec<_>>()
        );
        matching.into_iter().next().unwrap()
    };
    let root_client = named("GET /a/{id}", SpanKind::Client);
    let server_a = named("GET /a/{id}", SpanKind::Server);
    let client_a = named("GET", SpanKind::Client);
    let server_b = named("GET /b/{id}", SpanKind::Server);
    assert_eq!(spans.len(), 4);

    let trace_id = root_client.span_context.trace_id();
    for span in [&server_a, &client_a, &server_b] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
    assert!(TestTelemetry::is_child_of(&server_a, &root_client));
    assert!(TestTelemetry::is_child_of(&client_a, &server_a));
    assert!(TestTelemetry::is_child_of(&server_b, &client_a));
    for span in [&root_client, &server_a, &client_a, &server_b] {
        assert_eq!(
            TestTelemetry::attr(span, "request.id")
                .map(|v| v.as_str().into_owned())
                .as_deref(),
            Some("chain-1"),
            "{} {:?}",
            span.name,
            span.span_kind
        );
    }
    assert_eq!(headers["x-request-id"], "chain-1");
    assert_eq!(
        TestTelemetry::attr(&root_client, "url.template")
            .map(|v| v.as_str().into_owned())
            .as_deref(),
        Some("/a/{id}")
    );
    [root_client, server_a, client_a, server_b]
}

common::for_both_layers!(tracecontext_chain_is_one_trace_with_one_request_id);

async fn tracecontext_chain_is_one_trace_with_one_request_id(layer: ServerLayer) {
    let (telemetry, body, headers) = run_chain("tracecontext", layer).await;
    let [_, _, client_a, _] = check_tree(&telemetry, &headers);
    assert_eq!(
        body,
        format!(
            "traceparent=00-{}-{}-01\nb3=-\nx-b3-traceid=-\nx-request-id=chain-1",
            client_a.span_context.trace_id(),
            client_a.span_context.span_id()
        )
    );
}

#[tokio::test]
async fn b3_chain_is_one_trace_with_one_request_id() {
    let (telemetry, body, headers) = run_chain("b3", ServerLayer::Axum).await;
    let [_, _, client_a, _] = check_tree(&telemetry, &headers);
    assert_eq!(
        body,
        format!(
            "traceparent=-\nb3={}-{}-1\nx-b3-traceid=-\nx-request-id=chain-1",
            client_a.span_context.trace_id(),
            client_a.span_context.span_id()
        )
    );
}

#[tokio::test]
async fn b3_multi_chain_is_one_trace() {
    let (telemetry, body, headers) = run_chain("b3multi", ServerLayer::Generic).await;
    let [_, _, client_a, _] = check_tree(&telemetry, &headers);
    assert_eq!(
        body,
        format!(
            "traceparent=-\nb3=-\nx-b3-traceid={}\nx-request-id=chain-1",
            client_a.span_context.trace_id(),
        )
    );
}
