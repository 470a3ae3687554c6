//! The retry storm of the seed incident: against a server that always fails, the default
//! budget keeps upstream attempts at or below 1.2× the requests, while a naive 5-retry
//! policy (no budget, 6 attempts, no delay) multiplies them by 6. Counted at the server.

mod support;

use http::Method;
use otel_resilience::backoff::Backoff;
use otel_resilience::{RetryLayer, RetryPolicy};
use support::{request, serve, status};
use tower::{Layer, ServiceExt};

const REQUESTS: usize = 1000;

/// Sends REQUESTS GETs through `layer`, 100 at a time.
async fn storm(layer: RetryLayer) -> usize {
    let server = serve(|_, _| status(503)).await;
    let svc = layer.layer(support::client());
    for _wave in 0..REQUESTS / 100 {
        let calls = (0..100).map(|_| {
            let svc = svc.clone();
            let url = server.url("/pay");
            async move {
                svc.oneshot(request(Method::GET, &url))
                    .await
                    .unwrap()
                    .status()
            }
        });
        for status in futures_util::future::join_all(calls).await {
            assert_eq!(status, 503);
        }
    }
    server.hits()
}

#[tokio::test(start_paused = true)]
async fn default_budget_caps_amplification_at_1_2x() {
    let start = tokio::time::Instant::now();
    let hits = storm(RetryLayer::builder().seed(11).build()).await;
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "the storm fits in one budget window: {:?}",
        start.elapsed()
    );
    eprintln!("budgeted storm: {hits} upstream attempts for {REQUESTS} requests");
    assert!(
        hits > REQUESTS,
        "retries still happen within the budget: {hits}"
    );
    assert!(
        hits <= REQUESTS * 12 / 10,
        "amplification {hits} / {REQUESTS}"
    );
}

#[tokio::test(start_paused = true)]
async fn naive_five_retries_multiply_load_by_six() {
    let naive = RetryLayer::builder()
        .policy(
            RetryPolicy::default()
                .max_attempts(6)
                .backoff(Backoff::none()),
        )
        .no_budget()
        .build();
    assert_eq!(storm(naive).await, REQUESTS * 6);
}
