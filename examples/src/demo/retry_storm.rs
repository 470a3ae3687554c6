//! Incident 1, a retry storm: payments is down and the gateway retries every charge.
//!
//! The naive client (otel-resilience's `RetryLayer` set up as many services start: 6
//! attempts, no delay, no budget) sends 6 attempts per request to a service that is already
//! down; the same calls through `RetryLayer` with exponential backoff and a 20% retry budget
//! send about 1.2 per request. The attempts are counted where they land, at payments.
//!
//! ```no_run
//! # async fn run(shop: &examples::demo::Shop, out: &examples::demo::Output) -> Result<(), examples::demo::DemoError> {
//! examples::demo::retry_storm::replay(shop, out).await
//! # }
//! ```

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use reqwest_middleware::ClientWithMiddleware;

use super::shop::{Gateway, NAIVE_ATTEMPTS, RESILIENT_ATTEMPTS, Shop};
use super::{DemoError, Output};

/// Checkout requests the user sends through each client.
pub const REQUESTS: u64 = 5;

/// The gateway routes of this incident: `POST /api/checkout/naive` (naive retries) and
/// `POST /api/checkout` (backoff and budget).
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route(
            "/api/checkout/naive",
            post(|State(gw): State<Gateway>| async move {
                checkout(&gw.naive_payments, &gw.payments_url).await
            }),
        )
        .route(
            "/api/checkout",
            post(|State(gw): State<Gateway>| async move {
                checkout(&gw.resilient_payments, &gw.payments_url).await
            }),
        )
}

/// Replays the incident and prints the attempt counts side by side.
pub async fn replay(shop: &Shop, out: &Output) -> Result<(), DemoError> {
    out.header(
        1,
        "A retry storm: payments is down, and the gateway retries every charge",
    );
    shop.payments.set_down(true);
    let _ = shop.payments.take_attempts();

    out.line(&format!(
        "--- naive client: POST /api/checkout/naive x{REQUESTS} \
         ({NAIVE_ATTEMPTS} attempts, no delay, no budget); the first request's traces:"
    ));
    let naive_failed = burst(shop, out, "/api/checkout/naive").await?;
    let naive = shop.payments.take_attempts();

    out.line(&format!(
        "--- the same calls through RetryLayer: POST /api/checkout x{REQUESTS} \
         ({RESILIENT_ATTEMPTS} attempts, 50 ms exponential backoff with jitter, 20% retry budget); \
         the first request's traces:"
    ));
    let resilient_failed = burst(shop, out, "/api/checkout").await?;
    let resilient = shop.payments.take_attempts();
    shop.payments.set_down(false);

    out.line("\nWhat happened:");
    out.line(&format!(
        "  naive client: {naive} attempts for {REQUESTS} requests ({naive_failed} failed)"
    ));
    out.line(&format!(
        "  retry with backoff and budget: {resilient} attempts for {REQUESTS} requests ({resilient_failed} failed)"
    ));
    out.line(&format!(
        "  load on the payments service that is already down: {:.1}x the requests vs {:.1}x; \
         the budget refused the retries beyond 20% (event retry.budget_exhausted)",
        naive as f64 / REQUESTS as f64,
        resilient as f64 / REQUESTS as f64,
    ));
    Ok(())
}

/// Sends the burst; the first request is printed, the other ones only counted. Returns how
/// many requests failed.
async fn burst(shop: &Shop, out: &Output, path: &str) -> Result<u64, DemoError> {
    let mut failed = 0;
    for i in 0..REQUESTS {
        if i == 1 {
            out.settle().await;
            out.mute(true);
        }
        let response = shop
            .user
            .post(shop.url(path))
            .body("order-1")
            .send()
            .await?;
        if !response.status().is_success() {
            failed += 1;
        }
    }
    out.settle().await;
    out.mute(false);
    Ok(failed)
}

async fn checkout(client: &ClientWithMiddleware, url: &str) -> (StatusCode, String) {
    match client.post(url).body("order-1").send().await {
        Ok(response) if response.status().is_success() => (StatusCode::OK, "paid".to_owned()),
        Ok(response) => (
            StatusCode::BAD_GATEWAY,
            format!("payment failed: payments answered {}", response.status()),
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("payment failed: {e}")),
    }
}
