//! Incident 4, a dead inventory service: it accepts calls and never answers. With no
//! breaker, every request waits the whole call timeout; behind otel-resilience's
//! `CircuitBreakerLayer`, the breaker opens after a few failures and the following calls
//! fail fast, without being sent: a `circuit_breaker inventory` span with
//! `error.type=circuit_open` and `circuit_breaker.state=open`.
//!
//! ```no_run
//! # async fn run(shop: &examples::demo::Shop, out: &examples::demo::Output) -> Result<(), examples::demo::DemoError> {
//! examples::demo::dead_inventory::replay(shop, out).await
//! # }
//! ```

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use otel_core::attributes::error_type;
use otel_resilience::CircuitOpen;

use super::inventory::{self, CALL_TIMEOUT, InventoryChannel};
use super::shop::{BREAKER_FAILURES, Gateway, Shop};
use super::{DemoError, Output, ms};

/// Stock requests the user sends through each client.
pub const REQUESTS: usize = 6;

/// The gateway routes of this incident: `GET /api/stock/{sku}` (no breaker) and
/// `GET /api/stock/{sku}/guarded` (circuit breaker).
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route(
            "/api/stock/{sku}",
            get(
                |State(gw): State<Gateway>, Path(sku): Path<String>| async move {
                    stock(&gw.inventory, &sku).await
                },
            ),
        )
        .route(
            "/api/stock/{sku}/guarded",
            get(
                |State(gw): State<Gateway>, Path(sku): Path<String>| async move {
                    stock(&gw.inventory_with_breaker, &sku).await
                },
            ),
        )
}

/// Replays the incident with and without the breaker.
pub async fn replay(shop: &Shop, out: &Output) -> Result<(), DemoError> {
    out.header(
        4,
        "A dead inventory service: no breaker (every call waits the timeout) vs a circuit breaker",
    );
    shop.inventory.set_dead(true);

    out.line(&format!(
        "--- no breaker: GET /api/stock/sku-1 x{REQUESTS} (call timeout {} ms); the first request's traces:",
        ms(CALL_TIMEOUT)
    ));
    let plain = burst(shop, out, "/api/stock/sku-1", &[0]).await?;

    out.line(&format!(
        "--- with CircuitBreakerLayer (opens after {BREAKER_FAILURES} consecutive failures): \
         GET /api/stock/sku-1/guarded x{REQUESTS}; the traces of request 1 (timeout) and \
         request {} (rejected):",
        BREAKER_FAILURES + 1
    ));
    let guarded = burst(
        shop,
        out,
        "/api/stock/sku-1/guarded",
        &[0, BREAKER_FAILURES as usize],
    )
    .await?;
    shop.inventory.set_dead(false);

    out.line("\nWhat happened:");
    out.line(&format!(
        "  no breaker: {REQUESTS} calls took {} ms in all; {} waited the {} ms timeout (error.type=timeout)",
        ms(plain.total),
        plain.timeouts,
        ms(CALL_TIMEOUT)
    ));
    out.line(&format!(
        "  with breaker: {REQUESTS} calls took {} ms in all; {} waited the timeout, then the breaker \
         opened and {} failed fast in {:.1} ms at most (error.type=circuit_open, circuit_breaker.state=open)",
        ms(guarded.total),
        guarded.timeouts,
        guarded.rejected,
        guarded.slowest_rejection.as_secs_f64() * 1000.0
    ));
    Ok(())
}

/// What a burst of stock requests met.
struct Burst {
    total: Duration,
    timeouts: usize,
    rejected: usize,
    slowest_rejection: Duration,
}

/// Sends the burst; only the requests at the indexes in `shown` print their traces.
async fn burst(shop: &Shop, out: &Output, path: &str, shown: &[usize]) -> Result<Burst, DemoError> {
    let mut result = Burst {
        total: Duration::ZERO,
        timeouts: 0,
        rejected: 0,
        slowest_rejection: Duration::ZERO,
    };
    for i in 0..REQUESTS {
        let show = shown.contains(&i);
        out.settle().await;
        out.mute(!show);
        let started = Instant::now();
        let response = shop.user.get(shop.url(path)).send().await?;
        let took = started.elapsed();
        result.total += took;
        let text = response.text().await?;
        if text.contains(error_type::CIRCUIT_OPEN) {
            result.rejected += 1;
            result.slowest_rejection = result.slowest_rejection.max(took);
        } else if text.contains(error_type::TIMEOUT) {
            result.timeouts += 1;
        }
    }
    out.settle().await;
    out.mute(false);
    Ok(result)
}

async fn stock(channel: &InventoryChannel, sku: &str) -> (StatusCode, String) {
    match inventory::reserve(channel, sku, 1).await {
        Ok(true) => (StatusCode::OK, "reserved".to_owned()),
        Ok(false) => (StatusCode::CONFLICT, "out of stock".to_owned()),
        Err(status) => {
            let class = if is_circuit_open(&status) {
                error_type::CIRCUIT_OPEN
            } else if matches!(
                status.code(),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ) || status.message().contains("Timeout")
            {
                error_type::TIMEOUT
            } else {
                "inventory error"
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("inventory unavailable: {class}"),
            )
        }
    }
}

/// Whether the breaker refused the call (somewhere in the status's source chain).
fn is_circuit_open(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<CircuitOpen>() {
            return true;
        }
        source = e.source();
    }
    status.message().contains("is open")
}
