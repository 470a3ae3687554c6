//! Secrets in requests (Authorization, Cookie, API keys, `?token=`) reach no exported span,
//! no span event and no log line, on the server span, the client spans and the curl events.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::HeaderName;
use opentelemetry::Value;
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_http::HttpServerLayer;
use otel_http::reqwest::TracingMiddleware;
use reqwest_middleware::ClientWithMiddleware;

use common::{ServerLayer, for_both_layers, serve};

for_both_layers!(secrets_reach_no_span_and_no_log);

const SECRETS: &[&str] = &[
    "secret-auth-value",
    "secret-cookie-value",
    "secret-api-key",
    "secret-query-value",
    "secret-set-cookie",
    "secret-userinfo",
];

fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            TracingMiddleware::builder()
                .propagator(CompositePropagator::from_names("tracecontext").unwrap())
                .curl_event(true)
                .build(),
        )
        .build()
}

async fn secrets_reach_no_span_and_no_log(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let downstream = serve(Router::new().route("/down", get(|| async { "down" }))).await;
    let app = Router::new().route(
        "/login",
        get(
            |State((client, down)): State<(ClientWithMiddleware, SocketAddr)>| async move {
                tracing::info!("handling login");
                client
                    .get(format!(
                        "http://user:secret-userinfo@{down}/down?token=secret-query-value"
                    ))
                    .header("authorization", "Bearer secret-auth-value")
                    .header("x-api-key", "secret-api-key")
                    .send()
                    .await
                    .unwrap();
                tracing::warn!("login done");
                ([("set-cookie", "id=secret-set-cookie")], "ok")
            },
        ),
    );
    let builder = HttpServerLayer::builder()
        .capture_request_headers([
            http::header::AUTHORIZATION,
            http::header::COOKIE,
            http::header::USER_AGENT,
            HeaderName::from_static("x-api-key"),
        ])
        .capture_response_headers([http::header::SET_COOKIE])
        .capture_query(true);
    let app = layer
        .router(app, builder)
        .with_state((client(), downstream));
    let addr = serve(app).await;

    let response = client()
        .get(format!(
            "http://{addr}/login?token=secret-query-value&page=1"
        ))
        .header("authorization", "Bearer secret-auth-value")
        .header("cookie", "session=secret-cookie-value")
        .header("x-api-key", "secret-api-key")
        .header("user-agent", "redaction-test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    let spans = telemetry.spans();
    // Test client, server, downstream client (the downstream server is not traced).
    assert_eq!(
        spans.len(),
        3,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for span in &spans {
        let dump = format!("{:?} {:?} {:?}", span.name, span.attributes, span.events);
        for secret in SECRETS {
            assert!(
                !dump.contains(secret),
                "{secret} in span {}: {dump}",
                span.name
            );
        }
    }
    let logs = telemetry.logs();
    assert!(logs.contains("handling login"), "{logs}");
    // The log lines carry the span fields (redacted query included), never the secrets.
    assert!(logs.contains("token=[REDACTED]"), "{logs}");
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret} in logs: {logs}");
    }

    // What is recorded instead.
    let server = telemetry.span("GET /login");
    let redacted = Value::Array(opentelemetry::Array::String(vec!["[REDACTED]".into()]));
    for key in [
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.request.header.x-api-key",
        "http.response.header.set-cookie",
    ] {
        assert_eq!(
            TestTelemetry::attr(&server, key),
            Some(redacted.clone()),
            "{key}"
        );
    }
    assert_eq!(
        TestTelemetry::attr(&server, "http.request.header.user-agent"),
        Some(Value::Array(opentelemetry::Array::String(vec![
            "redaction-test".into()
        ])))
    );
    assert_eq!(
        TestTelemetry::attr(&server, "url.query").map(|v| v.as_str().into_owned()),
        Some("token=[REDACTED]&page=1".to_owned())
    );
    let downstream_call = spans
        .iter()
        .find(|s| TestTelemetry::attr(s, "url.full").is_some_and(|v| v.as_str().contains("/down")))
        .expect("downstream client span");
    assert_eq!(
        TestTelemetry::attr(downstream_call, "url.full").map(|v| v.as_str().into_owned()),
        Some(format!("http://{downstream}/down?token=[REDACTED]"))
    );
    let curl = format!("{:?}", downstream_call.events);
    assert!(curl.contains("-H 'authorization: [REDACTED]'"), "{curl}");
    assert!(curl.contains("-H 'x-api-key: [REDACTED]'"), "{curl}");
}
