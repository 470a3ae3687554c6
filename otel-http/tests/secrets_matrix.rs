//! The secrets matrix: every kind of secret a request can carry (credential and cookie
//! headers, API-key style headers, URL userinfo, configured query keys) against every place
//! telemetry writes text (span names, attributes, events, curl lines, log output), on the
//! server layer, the reqwest middleware and the tower client layer, with the defaults and with
//! header capture switched on for exactly those headers. Every test runs against both server
//! layers (`name::generic`: `HttpServerLayer`, `name::axum`: `AxumServerLayer`), with the same
//! reqwest middleware and tower client layer inside the handler.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::HeaderName;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::Value;
use opentelemetry::trace::FutureExt;
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_http::redact::QueryRedactor;
use otel_http::reqwest::TracingMiddleware;
use otel_http::{HttpClientLayer, HttpServerLayer, HttpServerLayerBuilder};
use reqwest_middleware::ClientWithMiddleware;
use tower::{ServiceBuilder, ServiceExt};

use common::{ServerLayer, for_both_layers, serve};

for_both_layers!(
    defaults_record_no_secret,
    capture_switched_on_for_the_secret_headers_records_only_redacted_values,
);

/// (header, value) pairs; every value holds a unique secret marker.
const SECRET_HEADERS: &[(&str, &str)] = &[
    ("authorization", "Bearer s3cr3t-authorization"),
    ("proxy-authorization", "Basic s3cr3t-proxy-authorization"),
    ("cookie", "session=s3cr3t-cookie"),
    ("x-api-key", "s3cr3t-x-api-key"),
    ("api-key", "s3cr3t-api-key"),
    ("x-auth-token", "s3cr3t-x-auth-token"),
    ("x-vendor-secret", "s3cr3t-vendor"),
];
/// Query keys redacted by default, plus `session_key`, configured.
const SECRET_QUERY: &str = "token=s3cr3t-q-token&sig=s3cr3t-q-sig&password=s3cr3t-q-password\
    &X-Amz-Signature=s3cr3t-q-amz&session_key=s3cr3t-q-configured&page=2";
const USERINFO: &str = "alice:s3cr3t-userinfo";
const SET_COOKIE: &str = "id=s3cr3t-set-cookie; HttpOnly";

fn redactor() -> QueryRedactor {
    QueryRedactor::with_defaults_and(["session_key"])
}

fn tracecontext() -> CompositePropagator {
    CompositePropagator::from_names("tracecontext").unwrap()
}

fn reqwest_client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            TracingMiddleware::builder()
                .propagator(tracecontext())
                .query_redactor(redactor())
                .curl_event(true)
                .build(),
        )
        .build()
}

/// Calls the downstream with every secret through the reqwest middleware and through the
/// tower client layer over hyper-util.
async fn call_downstream(client: ClientWithMiddleware, down: SocketAddr) {
    tracing::info!(down = %down, "calling downstream");
    let mut request = client.get(format!("http://{USERINFO}@{down}/down?{SECRET_QUERY}"));
    for (name, value) in SECRET_HEADERS {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let tower_client = ServiceBuilder::new()
        .layer(
            HttpClientLayer::builder()
                .propagator(tracecontext())
                .query_redactor(redactor())
                .curl_event(true)
                .build(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let mut request = http::Request::get(format!("http://{down}/tower?{SECRET_QUERY}"))
        .body(Empty::new())
        .unwrap();
    for (name, value) in SECRET_HEADERS {
        request
            .headers_mut()
            .insert(HeaderName::from_static(name), value.parse().unwrap());
    }
    let response = tower_client
        .oneshot(request)
        .with_current_context()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tracing::warn!(status = %response.status(), "downstream answered");
}

/// The server layer's configuration, built into either layer by `ServerLayer::router`.
fn server_layer(capture: bool) -> HttpServerLayerBuilder {
    let mut builder = HttpServerLayer::builder()
        .propagator(tracecontext())
        .query_redactor(redactor())
        .capture_query(true);
    if capture {
        builder = builder
            .capture_request_headers(
                SECRET_HEADERS
                    .iter()
                    .map(|(n, _)| HeaderName::from_static(n))
                    .chain([http::header::USER_AGENT]),
            )
            .capture_response_headers([http::header::SET_COOKIE, http::header::AUTHORIZATION]);
    }
    builder
}

async fn run(layer: ServerLayer, capture: bool) -> TestTelemetry {
    let telemetry = TestTelemetry::new();
    // The downstream answers with a secret cookie too; it is not traced itself.
    let down =
        serve(Router::new().fallback(|| async { ([("set-cookie", SET_COOKIE)], "down") })).await;
    let router = Router::new().route(
        "/login",
        get(
            |State((client, down)): State<(ClientWithMiddleware, SocketAddr)>| async move {
                call_downstream(client, down).await;
                (
                    [
                        ("set-cookie", SET_COOKIE),
                        ("authorization", "Bearer s3cr3t-response-authorization"),
                    ],
                    "ok",
                )
            },
        ),
    );
    let app = layer
        .router(router, server_layer(capture))
        .with_state((reqwest_client(), down));
    let addr = serve(app).await;

    // The caller is a plain client: the only traced hops are the server and its two calls.
    let mut request = reqwest::Client::new().get(format!("http://{addr}/login?{SECRET_QUERY}"));
    for (name, value) in SECRET_HEADERS {
        request = request.header(*name, *value);
    }
    let response = request
        .header("user-agent", "matrix-test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    telemetry
}

fn assert_no_secret(telemetry: &TestTelemetry) {
    let spans = telemetry.spans();
    assert_eq!(
        spans.len(),
        3,
        "server + reqwest client + tower client: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for span in &spans {
        let dump = format!(
            "{:?} {:?} {:?} {:?}",
            span.name, span.attributes, span.events, span.links
        );
        assert!(
            !dump.contains("s3cr3t"),
            "secret in span {}: {dump}",
            span.name
        );
    }
    let logs = telemetry.logs();
    assert!(logs.contains("calling downstream") && logs.contains("downstream answered"));
    assert!(!logs.contains("s3cr3t"), "secret in logs: {logs}");
    // The curl lines are there (so the check above saw them), with credentials redacted.
    let curls: Vec<String> = spans
        .iter()
        .flat_map(|s| s.events.iter())
        .flat_map(|e| e.attributes.iter())
        .map(|kv| kv.value.as_str().into_owned())
        .filter(|v| v.starts_with("curl"))
        .collect();
    assert_eq!(curls.len(), 2, "{curls:?}");
    for curl in &curls {
        for (name, _) in SECRET_HEADERS {
            assert!(
                curl.contains(&format!("-H '{name}: [REDACTED]'")),
                "{name}: {curl}"
            );
        }
        assert!(curl.contains("token=[REDACTED]") && curl.contains("session_key=[REDACTED]"));
        assert!(!curl.contains("alice"), "userinfo in {curl}");
    }
    // What the server span records instead: redacted query, address without userinfo.
    let server = telemetry.span("GET /login");
    assert_eq!(
        TestTelemetry::attr(&server, "url.query").map(|v| v.as_str().into_owned()),
        Some(
            "token=[REDACTED]&sig=[REDACTED]&password=[REDACTED]&X-Amz-Signature=[REDACTED]\
             &session_key=[REDACTED]&page=2"
                .to_owned()
        )
    );
}

async fn defaults_record_no_secret(layer: ServerLayer) {
    let telemetry = run(layer, false).await;
    assert_no_secret(&telemetry);
    let server = telemetry.span("GET /login");
    assert!(
        server
            .attributes
            .iter()
            .all(|kv| !kv.key.as_str().starts_with("http.request.header.")),
        "no header captured by default"
    );
}

async fn capture_switched_on_for_the_secret_headers_records_only_redacted_values(
    layer: ServerLayer,
) {
    let telemetry = run(layer, true).await;
    assert_no_secret(&telemetry);
    let server = telemetry.span("GET /login");
    let redacted = Value::Array(opentelemetry::Array::String(vec!["[REDACTED]".into()]));
    for (name, _) in SECRET_HEADERS {
        let key = format!("http.request.header.{name}");
        assert_eq!(
            TestTelemetry::attr(&server, &key),
            Some(redacted.clone()),
            "{key}"
        );
    }
    for key in [
        "http.response.header.set-cookie",
        "http.response.header.authorization",
    ] {
        assert_eq!(
            TestTelemetry::attr(&server, key),
            Some(redacted.clone()),
            "{key}"
        );
    }
    // A harmless header captured alongside keeps its value: capture is really on.
    assert_eq!(
        TestTelemetry::attr(&server, "http.request.header.user-agent"),
        Some(Value::Array(opentelemetry::Array::String(vec![
            "matrix-test".into()
        ])))
    );
}
