//! The shop's backend goes down: the gateway's retries count in its circuit breaker, which
//! opens after 5 consecutive failures; from then on the gateway fails fast — no request
//! reaches the backend, and the trace says why (`circuit_breaker {host:port}` span,
//! `error.type = circuit_open`, `circuit_breaker.state = open`). When the backend is back and
//! the open duration has passed (an injected clock, no waiting), one probe closes it.

use integration_tests::chain::Shop;
use integration_tests::span_lookup::{
    all, assert_child_of, one, summary, text_attr, workspace_spans,
};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use otel_core::attributes::{self, error_type, semconv::attribute as sc};
use otel_core::testing::TestTelemetry;

/// One dashboard request with request id `id`: (status, the workspace's spans of its trace).
async fn dashboard(telemetry: &TestTelemetry, shop: &Shop, id: &str) -> (u16, Vec<SpanData>) {
    telemetry.reset();
    let response = reqwest::Client::new()
        .get(shop.dashboard_url())
        .header("x-request-id", id)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    response.bytes().await.expect("body");
    let (spans, _transport) = workspace_spans(&telemetry.spans());
    (status, spans)
}

#[tokio::test]
async fn breaker_opens_on_the_fifth_failure_and_the_gateway_fails_fast() {
    let telemetry = TestTelemetry::new();
    let shop = Shop::start("tracecontext", telemetry.meter_provider()).await;
    shop.fail_backend_calls(usize::MAX);

    // Request 1: three attempts, three 503s; the breaker has counted 3 failures.
    let (status, spans) = dashboard(&telemetry, &shop, "down-1").await;
    assert_eq!(status, 503, "the last 503 is passed through");
    assert_eq!(shop.backend_calls(), 3);
    let retry = one(&spans, "retry GET", SpanKind::Internal);
    assert_eq!(
        text_attr(&retry, attributes::RETRY_ATTEMPTS).as_deref(),
        Some("3")
    );
    assert_eq!(text_attr(&retry, sc::ERROR_TYPE).as_deref(), Some("503"));
    let gateway = one(&spans, "GET /dashboard", SpanKind::Server);
    let mut attempts = all(&spans, "GET /posts/{author}", SpanKind::Client);
    attempts.sort_by_key(|s| text_attr(s, sc::HTTP_REQUEST_RESEND_COUNT));
    assert_eq!(attempts.len(), 3, "{:?}", summary(&spans));
    // The retry span opens when the first attempt fails: the first attempt is its sibling
    // under the gateway, the retries its children.
    assert_child_of(&attempts[0], &gateway);
    for (i, attempt) in attempts.iter().enumerate() {
        if i > 0 {
            assert_child_of(attempt, &retry);
        }
        assert_eq!(
            text_attr(attempt, attributes::CIRCUIT_BREAKER_STATE).as_deref(),
            Some("closed")
        );
    }

    // Request 2: two more failures open the breaker (event on the retry span); the third
    // attempt is rejected without being sent, and a rejection is not retried.
    let (status, spans) = dashboard(&telemetry, &shop, "down-2").await;
    assert_eq!(status, 502, "the gateway's answer to the breaker's error");
    assert_eq!(shop.backend_calls(), 5);
    assert_eq!(
        spans.len(),
        7,
        "gateway, retry, 2 attempts, 2 backend, 1 rejection: {:?}",
        summary(&spans)
    );
    let gateway = one(&spans, "GET /dashboard", SpanKind::Server);
    let retry = one(&spans, "retry GET", SpanKind::Internal);
    let breaker = format!("circuit_breaker {}", shop.backend);
    let rejection = one(&spans, &breaker, SpanKind::Internal);
    assert_child_of(&retry, &gateway);
    assert_child_of(&rejection, &retry);
    let mut attempts = all(&spans, "GET /posts/{author}", SpanKind::Client);
    attempts.sort_by_key(|s| text_attr(s, sc::HTTP_REQUEST_RESEND_COUNT));
    assert_eq!(attempts.len(), 2);
    assert_child_of(&attempts[0], &gateway);
    assert_child_of(&attempts[1], &retry);
    for (attempt, failures_before) in attempts.iter().zip(["3", "4"]) {
        assert_eq!(
            text_attr(attempt, attributes::CIRCUIT_BREAKER_FAILURES).as_deref(),
            Some(failures_before)
        );
    }
    assert_eq!(
        text_attr(&retry, attributes::RETRY_ATTEMPTS).as_deref(),
        Some("3")
    );
    assert_eq!(
        text_attr(&retry, sc::ERROR_TYPE).as_deref(),
        Some(error_type::CIRCUIT_OPEN)
    );
    let opened = retry
        .events
        .iter()
        .find(|e| e.name == attributes::CIRCUIT_BREAKER_OPENED_EVENT)
        .unwrap_or_else(|| {
            panic!(
                "no {} event on the retry span",
                attributes::CIRCUIT_BREAKER_OPENED_EVENT
            )
        });
    let event_attr = |key: &str| {
        opened
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    };
    assert_eq!(
        event_attr(attributes::CIRCUIT_BREAKER_FAILURES).as_deref(),
        Some("5")
    );
    assert_eq!(
        event_attr(attributes::CIRCUIT_BREAKER_STATE).as_deref(),
        Some("open")
    );
    check_rejection(&rejection, &shop);
    assert_eq!(
        text_attr(&gateway, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("502")
    );
    assert!(matches!(gateway.status, Status::Error { .. }));

    // Request 3: rejected at once, one attempt, nothing sent.
    let (status, spans) = dashboard(&telemetry, &shop, "down-3").await;
    assert_eq!(status, 502);
    assert_eq!(shop.backend_calls(), 5, "nothing reaches the backend");
    assert_eq!(
        summary(&spans),
        [
            (breaker.clone(), SpanKind::Internal),
            ("retry GET".to_owned(), SpanKind::Internal),
            ("GET /dashboard".to_owned(), SpanKind::Server),
        ]
    );
    let retry = one(&spans, "retry GET", SpanKind::Internal);
    assert_eq!(
        text_attr(&retry, attributes::RETRY_ATTEMPTS).as_deref(),
        Some("1")
    );
    let rejection = one(&spans, &breaker, SpanKind::Internal);
    assert_child_of(&rejection, &retry);
    check_rejection(&rejection, &shop);
    let gateway = one(&spans, "GET /dashboard", SpanKind::Server);
    assert_eq!(
        text_attr(&gateway, attributes::REQUEST_ID).as_deref(),
        Some("down-3")
    );

    // The backend recovers; once the open duration (5 s, less up to 10% jitter) has passed,
    // request 4 is the half-open probe, it succeeds and closes the breaker.
    shop.fail_backend_calls(0);
    shop.breaker_clock().advance(Duration::from_secs(5));
    let (status, spans) = dashboard(&telemetry, &shop, "up-4").await;
    assert_eq!(status, 200);
    assert_eq!(shop.backend_calls(), 6);
    // The probe succeeded at the first attempt: the healthy path has no retry span, the
    // probe's client span is the gateway's child.
    assert!(all(&spans, "retry GET", SpanKind::Internal).is_empty());
    let gateway = one(&spans, "GET /dashboard", SpanKind::Server);
    let probe = one(&spans, "GET /posts/{author}", SpanKind::Client);
    assert_child_of(&probe, &gateway);
    assert_eq!(
        text_attr(&probe, attributes::CIRCUIT_BREAKER_STATE).as_deref(),
        Some("half_open")
    );
    let transitions: Vec<&str> = spans
        .iter()
        .flat_map(|s| s.events.iter())
        .map(|e| e.name.as_ref())
        .filter(|name| name.starts_with("circuit_breaker."))
        .collect();
    assert_eq!(
        transitions,
        [
            attributes::CIRCUIT_BREAKER_HALF_OPENED_EVENT,
            attributes::CIRCUIT_BREAKER_CLOSED_EVENT
        ]
    );
}

/// The span of a call the open breaker refused: what, why, and when it will probe again.
fn check_rejection(rejection: &SpanData, shop: &Shop) {
    let name = shop.backend.to_string();
    assert_eq!(
        text_attr(rejection, sc::ERROR_TYPE).as_deref(),
        Some(error_type::CIRCUIT_OPEN)
    );
    assert_eq!(
        text_attr(rejection, attributes::CIRCUIT_BREAKER_STATE).as_deref(),
        Some("open")
    );
    assert_eq!(
        text_attr(rejection, attributes::CIRCUIT_BREAKER_NAME).as_deref(),
        Some(name.as_str())
    );
    let next_probe: i64 = text_attr(rejection, attributes::CIRCUIT_BREAKER_NEXT_PROBE_MS)
        .and_then(|v| v.parse().ok())
        .expect("next probe in ms");
    assert!((0..=5_000).contains(&next_probe), "{next_probe}");
    match &rejection.status {
        Status::Error { description } => {
            assert!(
                description.contains("is open: call not sent"),
                "{description}"
            )
        }
        other => panic!("rejection status {other:?}"),
    }
}
