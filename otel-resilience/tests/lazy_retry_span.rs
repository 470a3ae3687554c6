//! The healthy path: under a current span (a client call in a service handler) the retry
//! layer opens its `retry {method}` span only when an attempt fails; a healthy call has its
//! attempt's client span only. Breaker rejections still land under the retry span, and the
//! breaker attributes still reach the client span without the request extensions.

mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use opentelemetry_sdk::trace::SpanData;
use otel_core::extensions::SpanAttributes;
use otel_core::testing::TestTelemetry;
use otel_resilience::{
    BreakerMode, CircuitBreakerLayer, CircuitBreakerRegistry, CircuitOpen, RetryLayer,
};
use support::{
    StubService, attr, event_attr, recording_stub, request, scripted, status, taken_attributes,
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tracing::Instrument;

/// Per attempt: the attributes a client layer would record (handed off or in the extension).
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A stub client that answers from `script` and, like a tracing client layer, opens an
/// `attempt` span and takes the attributes meant for it.
fn stub(script: Vec<u16>) -> (Seen, impl StubService) {
    recording_stub(
        scripted(script.into_iter().map(Ok).collect()),
        taken_attributes,
    )
}

/// `GET http://payments/charge` through `svc`, inside a `request` span as in a handler.
async fn charge_in_request<S>(svc: S) -> Result<S::Response, S::Error>
where
    S: Service<Request<Full<Bytes>>>,
{
    svc.oneshot(request(Method::GET, "http://payments/charge"))
        .instrument(tracing::info_span!("request"))
        .await
}

fn one(telemetry: &TestTelemetry, name: &str) -> SpanData {
    let spans = telemetry.spans_named(name);
    assert_eq!(spans.len(), 1, "one {name}: {:?}", telemetry.spans());
    spans.into_iter().next().unwrap()
}

fn closed_attributes(failures: u32) -> Vec<(String, String)> {
    vec![
        ("circuit_breaker.state".to_owned(), "closed".to_owned()),
        ("circuit_breaker.failures".to_owned(), failures.to_string()),
    ]
}

#[tokio::test(start_paused = true)]
async fn a_healthy_call_under_a_span_has_no_retry_span_and_still_counts() {
    let telemetry = TestTelemetry::new();
    let (seen, inner) = stub(vec![200]);
    let registry = CircuitBreakerRegistry::builder().build();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .meter_provider(telemetry.meter_provider())
                .build(),
        )
        .layer(CircuitBreakerLayer::with_registry(registry.clone()))
        .service(inner);
    let resp = charge_in_request(svc).await.unwrap();
    assert_eq!(resp.status(), 200);

    assert!(telemetry.spans_named("retry GET").is_empty());
    let request_span = one(&telemetry, "request");
    let attempt = one(&telemetry, "attempt");
    assert!(TestTelemetry::is_child_of(&attempt, &request_span));
    assert_eq!(
        *seen.lock().unwrap(),
        [closed_attributes(0)],
        "breaker attributes handed to the client span"
    );
    assert_eq!(
        support::sum_counter(&telemetry.metrics(), "retry.attempts"),
        1
    );
    assert_eq!(registry.get("payments").failures(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_retry_span_opens_when_the_first_attempt_fails() {
    let telemetry = TestTelemetry::new();
    let (seen, inner) = stub(vec![503, 200]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().seed(7).build())
        .layer(CircuitBreakerLayer::new())
        .service(inner);
    let resp = charge_in_request(svc).await.unwrap();
    assert_eq!(resp.status(), 200);

    let request_span = one(&telemetry, "request");
    let retry = one(&telemetry, "retry GET");
    assert!(TestTelemetry::is_child_of(&retry, &request_span));
    assert_eq!(attr(&retry, "retry.attempts").as_deref(), Some("2"));
    assert_eq!(attr(&retry, "retry.max_attempts").as_deref(), Some("3"));
    assert_eq!(
        attr(&retry, "retry.budget_exhausted").as_deref(),
        Some("false")
    );
    let events: Vec<_> = retry
        .events
        .iter()
        .filter(|e| e.name == "retry.attempt")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(event_attr(events[0], "retry.attempt").as_deref(), Some("2"));
    assert_eq!(
        event_attr(events[0], "retry.reason").as_deref(),
        Some("503")
    );

    // The first attempt ended before the retry span opened: its sibling under the request.
    let attempts = telemetry.spans_named("attempt");
    assert_eq!(attempts.len(), 2);
    assert!(TestTelemetry::is_child_of(&attempts[0], &request_span));
    assert!(TestTelemetry::is_child_of(&attempts[1], &retry));
    assert!(retry.start_time >= attempts[0].end_time);
    assert_eq!(
        *seen.lock().unwrap(),
        [closed_attributes(0), closed_attributes(1)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_rejected_by_the_breaker_is_recorded_under_the_retry_span() {
    let telemetry = TestTelemetry::new();
    let (seen, inner) = stub(vec![]);
    let registry = CircuitBreakerRegistry::builder().build();
    registry.get("payments").set_mode(BreakerMode::ForcedOpen);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(CircuitBreakerLayer::with_registry(registry))
        .service(inner);
    let err = charge_in_request(svc).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert!(seen.lock().unwrap().is_empty(), "nothing sent");

    let request_span = one(&telemetry, "request");
    let retry = one(&telemetry, "retry GET");
    let rejection = one(&telemetry, "circuit_breaker payments");
    assert!(TestTelemetry::is_child_of(&retry, &request_span));
    assert!(TestTelemetry::is_child_of(&rejection, &retry));
    assert_eq!(attr(&retry, "retry.attempts").as_deref(), Some("1"));
    assert_eq!(attr(&retry, "error.type").as_deref(), Some("circuit_open"));
    assert_eq!(
        attr(&rejection, "error.type").as_deref(),
        Some("circuit_open")
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejection_swallowed_between_the_layers_is_still_recorded() {
    let telemetry = TestTelemetry::new();
    let (_seen, inner) = stub(vec![]);
    let registry = CircuitBreakerRegistry::builder().build();
    registry.get("payments").set_mode(BreakerMode::ForcedOpen);
    // A layer between retry and breaker that turns every error into a 500 response.
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .map_result(|result: Result<Response<Full<Bytes>>, tower::BoxError>| {
            Ok::<_, tower::BoxError>(result.unwrap_or_else(|_| status(500)))
        })
        .layer(CircuitBreakerLayer::with_registry(registry))
        .service(inner);
    let resp = charge_in_request(svc).await.unwrap();
    assert_eq!(resp.status(), 500);
    let rejection = one(&telemetry, "circuit_breaker payments");
    assert_eq!(
        attr(&rejection, "circuit_breaker.state").as_deref(),
        Some("open")
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_attributes_can_travel_in_the_request_extensions() {
    let _telemetry = TestTelemetry::new();
    let seen: Arc<Mutex<Option<usize>>> = Arc::default();
    let s = seen.clone();
    let inner = tower::service_fn(move |req: Request<Full<Bytes>>| {
        *s.lock().unwrap() = req.extensions().get::<SpanAttributes>().map(|a| a.0.len());
        async { Ok::<_, std::io::Error>(status(200)) }
    });
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new().attributes_in_extensions())
        .service(inner);
    svc.oneshot(request(Method::GET, "http://payments/charge"))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(2));
}
