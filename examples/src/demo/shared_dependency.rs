//! Incident 5, a shared dependency down: the cache refuses connections, and every gateway
//! endpoint that reads it fails. Each failing request has its own trace, but their client
//! spans share one `server.address` (`cache.internal`) and `error.type=connection_refused`:
//! the common cause, visible at a glance.
//!
//! ```no_run
//! # async fn run(shop: &examples::demo::Shop, out: &examples::demo::Output) -> Result<(), examples::demo::DemoError> {
//! examples::demo::shared_dependency::replay(shop, out).await
//! # }
//! ```

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use otel_core::attributes::semconv;

use super::shop::{Gateway, Shop};
use super::{DemoError, Output};

/// The gateway endpoints that read the cache, and the cache key each reads.
pub const ENDPOINTS: [(&str, &str); 3] = [
    ("/api/profile", "/profile/42"),
    ("/api/cart", "/cart/42"),
    ("/api/recommendations", "/recommendations/42"),
];

/// The gateway routes of this incident: the three endpoints that read the cache.
pub fn routes() -> Router<Gateway> {
    let mut router = Router::new();
    for (path, key) in ENDPOINTS {
        router = router.route(
            path,
            get(move |State(gw): State<Gateway>| async move { read_cache(&gw, key).await }),
        );
    }
    router
}

/// Calls every endpoint once (and one that does not use the cache), then names the common
/// cause from the failing client spans.
pub async fn replay(shop: &Shop, out: &Output) -> Result<(), DemoError> {
    out.header(
        5,
        "A shared dependency down: the cache refuses connections, several endpoints fail",
    );
    let mut statuses = Vec::new();
    for (path, _) in ENDPOINTS {
        let response = shop.user.get(shop.url(path)).send().await?;
        statuses.push(format!("GET {path} -> {}", response.status().as_u16()));
    }
    let other = shop
        .user
        .get(shop.url("/api/dashboard/batched"))
        .send()
        .await?;
    let other = format!(
        "GET /api/dashboard/batched (no cache) -> {}",
        other.status().as_u16()
    );
    out.settle().await;
    let spans = out.take_spans();

    out.line("\nWhat happened:");
    out.line(&format!("  {}; {other}", statuses.join(", ")));
    // Failing client spans (they carry `url.full`), grouped by the address they called.
    let mut by_address: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for span in spans.iter().filter(|s| s.error) {
        if let (Some(address), Some(_)) = (
            span.attr(semconv::attribute::SERVER_ADDRESS),
            span.attr(semconv::attribute::URL_FULL),
        ) {
            let entry = by_address.entry(address.to_owned()).or_default();
            entry.0 += 1;
            entry.1 = span
                .attr(semconv::attribute::ERROR_TYPE)
                .unwrap_or("?")
                .to_owned();
        }
    }
    match by_address.iter().max_by_key(|(_, (count, _))| *count) {
        Some((address, (count, error))) => out.line(&format!(
            "  common cause: {count} failing client spans share server.address={address} \
             (error.type={error}); the cache at {} is down",
            shop.cache_authority
        )),
        None if out.is_console() => out.line("  (no failing client span was recorded)"),
        None => out.line(&format!(
            "  in your backend, the failing client spans share server.address={}",
            super::shop::CACHE_HOST
        )),
    }
    Ok(())
}

async fn read_cache(gw: &Gateway, key: &str) -> (StatusCode, String) {
    match gw.cache.get(format!("{}{key}", gw.cache_url)).send().await {
        Ok(response) => match response.text().await {
            Ok(value) => (StatusCode::OK, value),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cache read failed: {e}"),
            ),
        },
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cache unavailable: {e}"),
        ),
    }
}
