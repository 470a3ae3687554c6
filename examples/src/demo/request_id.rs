//! Incident 6, "my order failed, request id user-quoted-42": the user's `x-request-id` is
//! accepted by the gateway, forwarded to payments (HTTP) and inventory (gRPC), recorded as
//! `request.id` on every span of the request and printed on every log line, in all three
//! services.
//!
//! ```no_run
//! # async fn run(shop: &examples::demo::Shop, out: &examples::demo::Output) -> Result<(), examples::demo::DemoError> {
//! examples::demo::request_id::replay(shop, out).await
//! # }
//! ```

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use otel_core::attributes;

use super::inventory;
use super::shop::{Gateway, Shop};
use super::{DemoError, Output};

/// The request id the user quotes.
pub const USER_REQUEST_ID: &str = "user-quoted-42";

/// The gateway route of this incident: `POST /api/order` (payments, then inventory).
pub fn routes() -> Router<Gateway> {
    Router::new().route("/api/order", post(order))
}

/// Sends one order with the user's request id, then counts where the id shows up.
pub async fn replay(shop: &Shop, out: &Output) -> Result<(), DemoError> {
    out.header(
        6,
        "A request id quoted by the user, followed across gateway, payments and inventory",
    );
    let _ = out.take_spans();
    let _ = out.take_log_lines();
    out.line(&format!(
        "--- POST /api/order with x-request-id: {USER_REQUEST_ID}:"
    ));
    let response = shop
        .user
        .post(shop.url("/api/order"))
        .header("x-request-id", USER_REQUEST_ID)
        .body("order-42")
        .send()
        .await?;
    let status = response.status().as_u16();
    let echoed = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    out.settle().await;
    let spans = out.take_spans();
    let lines = out.take_log_lines();

    out.line("\nWhat happened:");
    out.line(&format!(
        "  POST /api/order -> {status}; the gateway echoed x-request-id: {echoed}"
    ));
    let id_attr =
        |s: &&super::output::SeenSpan| s.attr(attributes::REQUEST_ID) == Some(USER_REQUEST_ID);
    let with_id = spans.iter().filter(id_attr).count();
    if out.is_console() {
        let names: Vec<String> = spans
            .iter()
            .filter(id_attr)
            .map(|s| format!("{}: {}", s.service, s.name))
            .collect();
        let mut services: Vec<&str> = spans.iter().filter(id_attr).map(|s| s.service).collect();
        services.sort_unstable();
        services.dedup();
        out.line(&format!(
            "  request id {USER_REQUEST_ID}: on {with_id} of {} spans, in {} services ({})",
            spans.len(),
            services.len(),
            names.join(", ")
        ));
    }
    // The log lines of this request: those of its trace (or with its id, without spans).
    let trace_ids: Vec<String> = spans
        .iter()
        .filter(id_attr)
        .map(|s| format!("trace_id={}", s.trace_id))
        .collect();
    let needle = format!("request_id={USER_REQUEST_ID}");
    let of_request: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&needle) || trace_ids.iter().any(|t| l.contains(t)))
        .collect();
    let carrying = of_request.iter().filter(|l| l.contains(&needle)).count();
    out.line(&format!(
        "  request id {USER_REQUEST_ID}: on {carrying} of {} log lines of the request",
        of_request.len()
    ));
    out.line(&format!(
        "  find it: grep {USER_REQUEST_ID} in the logs, or search request.id={USER_REQUEST_ID} in your tracing backend"
    ));
    Ok(())
}

async fn order(State(gw): State<Gateway>) -> (StatusCode, String) {
    tracing::info!("gateway: order received");
    let paid = gw.http.post(&gw.payments_url).body("order-42").send().await;
    if !matches!(&paid, Ok(r) if r.status().is_success()) {
        tracing::warn!("gateway: payment failed");
        return (StatusCode::BAD_GATEWAY, "payment failed".to_owned());
    }
    match inventory::reserve(&gw.inventory, "sku-42", 1).await {
        Ok(true) => {
            tracing::info!("gateway: order placed");
            (StatusCode::OK, "order placed".to_owned())
        }
        Ok(false) => (StatusCode::CONFLICT, "out of stock".to_owned()),
        Err(status) => {
            tracing::warn!(code = ?status.code(), "gateway: stock reservation failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "inventory unavailable".to_owned(),
            )
        }
    }
}
