//! The reqwest-middleware adapters (feature `reqwest`): same policies, same telemetry.
#![cfg(feature = "reqwest")]

mod support;

use std::sync::{Arc, Mutex};

use http::Extensions;
use otel_core::extensions::{ResendCount, SpanAttributes};
use otel_core::testing::TestTelemetry;
use otel_resilience::{
    CircuitBreakerMiddleware, CircuitBreakerRegistry, CircuitOpen, RetryLayer, RetryMiddleware,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use support::{attr, serve, status};

/// Stands where the tracing middleware would: records what it is told per attempt.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

/// (`ResendCount`, number of `SpanAttributes`) seen by one attempt.
type Seen = (Option<u32>, usize);

#[async_trait::async_trait]
impl Middleware for Recorder {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0.lock().unwrap().push((
            extensions.get::<ResendCount>().map(|r| r.0),
            extensions.get::<SpanAttributes>().map_or(0, |a| a.0.len()),
        ));
        next.run(req, extensions).await
    }
}

fn client(registry: Arc<CircuitBreakerRegistry>, recorder: Recorder) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(RetryMiddleware::new(RetryLayer::builder().seed(8).build()))
        .with(CircuitBreakerMiddleware::new(registry))
        .with(recorder)
        .build()
}

#[tokio::test(start_paused = true)]
async fn get_is_retried_with_resend_count_and_breaker_attributes() {
    let telemetry = TestTelemetry::new();
    let server = serve(|n, _| if n < 2 { status(503) } else { status(200) }).await;
    let recorder = Recorder::default();
    let client = client(CircuitBreakerRegistry::builder().build(), recorder.clone());
    let resp = client.get(server.url("/stock")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.hits(), 3);
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [(None, 2), (Some(1), 2), (Some(2), 2)],
        "ResendCount per retry; breaker attributes pushed on every attempt"
    );
    let span = telemetry.span("retry GET");
    assert_eq!(attr(&span, "retry.attempts").as_deref(), Some("3"));
    assert_eq!(
        attr(&span, "retry.budget_exhausted").as_deref(),
        Some("false")
    );
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_and_an_open_breaker_fails_fast() {
    let telemetry = TestTelemetry::new();
    let server = serve(|_, _| status(503)).await;
    let registry = CircuitBreakerRegistry::builder().seed(9).build();
    let client = client(registry, Recorder::default());
    for _ in 0..5 {
        let resp = client
            .post(server.url("/pay"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
    }
    assert_eq!(server.hits(), 5, "POST never retried");
    let err = client
        .post(server.url("/pay"))
        .body("x")
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(e) = err else {
        panic!("expected the breaker's error")
    };
    assert!(e.downcast_ref::<CircuitOpen>().is_some(), "{e}");
    assert_eq!(server.hits(), 5);
    let name = format!("circuit_breaker {}", server.addr);
    let rejection = telemetry.span(&name);
    assert_eq!(
        attr(&rejection, "error.type").as_deref(),
        Some("circuit_open")
    );
}
