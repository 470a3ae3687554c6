//! The client side: `HttpClientLayer` over hyper-util's `Client` and the reqwest middleware,
//! against a real echo server on 127.0.0.1.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{FutureExt, SpanKind, Status};
use opentelemetry::{Context, KeyValue, Value};
use otel_core::RequestId;
use otel_core::extensions::{NoPropagation, ResendCount, SpanAttributes, UrlTemplate};
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_http::HttpClientLayer;
use otel_http::reqwest::TracingMiddleware;
use tower::{ServiceBuilder, ServiceExt};

use common::{histogram_points, point_attr, serve};

fn str_attr(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    TestTelemetry::attr(span, key).map(|v| v.as_str().into_owned())
}

/// Echoes the propagation headers it received; `/status/{code}` answers with that status.
async fn echo_server() -> SocketAddr {
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
    serve(
        Router::new()
            .route("/users/{id}", get(echo))
            .route("/submit", post(echo))
            .route(
                "/status/{code}",
                get(|Path(code): Path<u16>| async move { StatusCode::from_u16(code).unwrap() }),
            ),
    )
    .await
}

/// otel-core's strict W3C propagator (the SDK's injects an empty `tracestate`).
fn tracecontext() -> CompositePropagator {
    CompositePropagator::from_names("tracecontext").unwrap()
}

fn in_request(id: &str) -> Context {
    Context::new().with_value(RequestId::parse(id.as_bytes()).unwrap())
}

#[tokio::test]
async fn tower_client_span_propagation_and_metrics() {
    let telemetry = TestTelemetry::new();
    let addr = echo_server().await;
    let client = ServiceBuilder::new()
        .layer(
            HttpClientLayer::builder()
                .propagator(tracecontext())
                .meter_provider(telemetry.meter_provider())
                .curl_event(true)
                .build(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let mut request = http::Request::get(format!("http://{addr}/users/5?token=abc&x=1"))
        .body(Empty::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(UrlTemplate::new("/users/{id}"));
    request.extensions_mut().insert(ResendCount(2));
    SpanAttributes::push(
        request.extensions_mut(),
        KeyValue::new("circuit_breaker.state", "closed"),
    );
    let response = client
        .oneshot(request)
        .with_context(in_request("cli-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();

    let span = telemetry.span("GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(span.status, Status::Unset);
    let expect = [
        ("http.request.method", "GET"),
        ("server.address", "127.0.0.1"),
        ("url.template", "/users/{id}"),
        ("circuit_breaker.state", "closed"),
        ("request.id", "cli-1"),
    ];
    for (key, value) in expect {
        assert_eq!(str_attr(&span, key).as_deref(), Some(value), "{key}");
    }
    let url = format!("http://{addr}/users/5?token=[REDACTED]&x=1");
    assert_eq!(str_attr(&span, "url.full"), Some(url.clone()));
    assert_eq!(
        TestTelemetry::attr(&span, "server.port"),
        Some(Value::I64(i64::from(addr.port())))
    );
    assert_eq!(
        TestTelemetry::attr(&span, "http.request.resend_count"),
        Some(Value::I64(2))
    );
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert_eq!(TestTelemetry::attr(&span, "error.type"), None);

    // On the wire: the client span's context with flag 01, and the request id.
    let traceparent = format!(
        "00-{}-{}-01",
        span.span_context.trace_id(),
        span.span_context.span_id()
    );
    assert_eq!(
        body,
        format!("traceparent={traceparent}\nx-request-id=cli-1").as_bytes()
    );

    // The curl event reproduces the request as sent, query value redacted.
    let event = span
        .events
        .iter()
        .find(|e| e.name == "http.request.curl")
        .expect("curl event");
    let command = event
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.request.curl.command")
        .unwrap()
        .value
        .as_str()
        .into_owned();
    assert_eq!(
        command,
        format!("curl -X GET '{url}' -H 'traceparent: {traceparent}' -H 'x-request-id: cli-1'")
    );

    let metrics = telemetry.metrics();
    let points = histogram_points(&metrics, "http.client.request.duration");
    assert_eq!(points.len(), 1);
    let attrs: Vec<_> = points[0].attributes().cloned().collect();
    assert_eq!(
        point_attr(attrs.iter(), "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        point_attr(attrs.iter(), "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        point_attr(attrs.iter(), "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(point_attr(attrs.iter(), "url.full"), None);
}

#[tokio::test]
async fn no_propagation_sends_neither_context_nor_request_id() {
    let telemetry = TestTelemetry::new();
    let addr = echo_server().await;
    let client = ServiceBuilder::new()
        .layer(
            HttpClientLayer::builder()
                .propagator(tracecontext())
                .build(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let mut request = http::Request::get(format!("http://{addr}/users/5"))
        .body(Empty::new())
        .unwrap();
    request.extensions_mut().insert(NoPropagation);
    let response = client
        .oneshot(request)
        .with_context(in_request("cli-2"))
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "traceparent=-\nx-request-id=-");
    // The span is still recorded.
    let span = telemetry.span("GET");
    assert_eq!(span.span_kind, SpanKind::Client);
}

#[tokio::test]
async fn client_spans_are_errors_on_4xx_and_5xx() {
    let telemetry = TestTelemetry::new();
    let addr = echo_server().await;
    let client = ServiceBuilder::new()
        .layer(HttpClientLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    for code in [404u16, 503] {
        let response = client
            .clone()
            .oneshot(
                http::Request::get(format!("http://{addr}/status/{code}"))
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code);
        let span = telemetry.span("GET");
        assert_eq!(str_attr(&span, "error.type"), Some(code.to_string()));
        assert!(
            matches!(span.status, Status::Error { .. }),
            "{:?}",
            span.status
        );
        telemetry.reset();
    }
}

async fn refused_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[tokio::test]
async fn tower_client_classifies_connection_refused() {
    let telemetry = TestTelemetry::new();
    let addr = refused_addr().await;
    let client = ServiceBuilder::new()
        .layer(
            HttpClientLayer::builder()
                .meter_provider(telemetry.meter_provider())
                .build(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let result = client
        .oneshot(
            http::Request::get(format!("http://{addr}/users/1"))
                .body(Empty::new())
                .unwrap(),
        )
        .await;
    assert!(result.is_err());
    let span = telemetry.span("GET");
    assert_eq!(
        str_attr(&span, "error.type").as_deref(),
        Some("connection_refused")
    );
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        None
    );
    let metrics = telemetry.metrics();
    let points = histogram_points(&metrics, "http.client.request.duration");
    let attrs: Vec<_> = points[0].attributes().cloned().collect();
    assert_eq!(
        point_attr(attrs.iter(), "error.type").as_deref(),
        Some("connection_refused")
    );
}

#[tokio::test]
async fn reqwest_middleware_span_curl_body_and_errors() {
    let telemetry = TestTelemetry::new();
    let addr = echo_server().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            TracingMiddleware::builder()
                .propagator(tracecontext())
                .curl_event(true)
                .build(),
        )
        .build();
    let response = client
        .post(format!("http://{addr}/submit"))
        .header("authorization", "Bearer top-secret")
        .header("content-type", "application/json")
        .body(r#"{"item":"it's"}"#)
        .with_extension(ResendCount(1))
        .send()
        .with_context(in_request("rq-1"))
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    let span = telemetry.span("POST");
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(str_attr(&span, "request.id").as_deref(), Some("rq-1"));
    assert_eq!(
        TestTelemetry::attr(&span, "http.request.resend_count"),
        Some(Value::I64(1))
    );
    let traceparent = format!(
        "00-{}-{}-01",
        span.span_context.trace_id(),
        span.span_context.span_id()
    );
    assert_eq!(
        body,
        format!("traceparent={traceparent}\nx-request-id=rq-1")
    );
    let command = span
        .events
        .iter()
        .find(|e| e.name == "http.request.curl")
        .unwrap()
        .attributes[0]
        .value
        .as_str()
        .into_owned();
    assert_eq!(
        command,
        format!(
            "curl -X POST 'http://{addr}/submit' -H 'authorization: [REDACTED]' \
             -H 'content-type: application/json' -H 'traceparent: {traceparent}' \
             -H 'x-request-id: rq-1' --data-raw '{{\"item\":\"it'\\''s\"}}'"
        )
    );
    telemetry.reset();

    let refused = refused_addr().await;
    let result = client.get(format!("http://{refused}/x")).send().await;
    assert!(result.is_err());
    let span = telemetry.span("GET");
    assert_eq!(
        str_attr(&span, "error.type").as_deref(),
        Some("connection_refused")
    );
    assert!(matches!(span.status, Status::Error { .. }));
}

#[tokio::test]
async fn reqwest_timeout_is_classified() {
    let telemetry = TestTelemetry::new();
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hold_tx, mut hold_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = hold_tx.send(stream);
        }
    });
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .with(TracingMiddleware::new())
    .build();
    let result = client.get(format!("http://{addr}/slow")).send().await;
    assert!(result.is_err());
    let span = telemetry.span("GET");
    assert_eq!(str_attr(&span, "error.type").as_deref(), Some("timeout"));
    hold_rx.close();
}
