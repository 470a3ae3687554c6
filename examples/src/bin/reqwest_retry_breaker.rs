//! A reqwest client with retry and a circuit breaker: `cargo run -p examples --bin reqwest_retry_breaker`
//!
//! A flaky server answers 503 twice, then 200. The client retries (backoff with jitter,
//! under a retry budget), each attempt is its own CLIENT span with
//! `http.request.resend_count`, under a `retry GET` span; the breaker counts every attempt.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use otel_http::reqwest::TracingMiddleware;
use otel_resilience::{CircuitBreakerMiddleware, RetryMiddleware};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = otel_core::Telemetry::builder()
        .service_name("checkout")
        .install()?;

    // A flaky service: 503, 503, then 200.
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let flaky = Router::new().route(
        "/stock/{sku}",
        get(move || async move {
            match seen.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
                _ => (StatusCode::OK, "12 in stock"),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(axum::serve(listener, flaky).into_future());

    // Outermost first: retry, breaker, then the tracing middleware (one span per attempt).
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryMiddleware::default()) // 3 attempts, 100 ms backoff, full jitter, budget
        .with(CircuitBreakerMiddleware::default()) // one breaker per host:port
        .with(TracingMiddleware::new())
        .build();

    let response = client.get(format!("http://{addr}/stock/42")).send().await?;
    println!(
        "{} {} after {} attempts",
        response.status(),
        response.text().await?,
        calls.load(Ordering::SeqCst)
    );
    Ok(())
}
