//! The incident demo: a small shop in one process, and six incidents replayed one after the
//! other, each with what happened (in plain words, with the numbers) and its trace trees.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), examples::demo::DemoError> {
//! examples::demo::run().await
//! # }
//! ```
//!
//! One module per part: [`output`] (telemetry and what is printed), [`shop`] (the services),
//! [`database`], [`payments`], [`inventory`], [`rates`], then one module per incident:
//! [`retry_storm`], [`n_plus_one`], [`slow_api`], [`dead_inventory`],
//! [`shared_dependency`], [`request_id`].

pub mod database;
pub mod dead_inventory;
pub mod inventory;
pub mod n_plus_one;
pub mod output;
pub mod payments;
pub mod rates;
pub mod request_id;
pub mod retry_storm;
pub mod shared_dependency;
pub mod shop;
pub mod slow_api;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use output::Output;
pub use shop::Shop;

/// Any error of the demo's setup.
pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The whole demo must end well within a minute; each step is bounded on its own too.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Installs telemetry, starts the shop and replays the six incidents.
pub async fn run() -> Result<(), DemoError> {
    let output = Output::install()?;
    let started = Instant::now();
    output.line(&format!(
        "shop demo: gateway (axum) -> payments (HTTP), inventory (gRPC), SQLite; traces {}",
        if output.is_console() {
            "printed below as trees"
        } else {
            "sent to the OTLP endpoint"
        }
    ));
    // Setup (schema, seed data) is not an incident: its spans are not printed.
    output.mute(true);
    let shop = Shop::start().await;
    output.settle().await;
    output.mute(false);
    let _ = output.take_spans();
    let shop = shop?;
    for (name, port) in &shop.services {
        output.register_service(*port, name);
    }
    quiet_retried_charges();
    output.line(&format!("gateway listening on {}", shop.gateway));

    step(&output, retry_storm::replay(&shop, &output)).await;
    step(&output, n_plus_one::replay(&shop, &output)).await;
    step(&output, slow_api::replay(&shop, &output)).await;
    step(&output, dead_inventory::replay(&shop, &output)).await;
    step(&output, shared_dependency::replay(&shop, &output)).await;
    step(&output, request_id::replay(&shop, &output)).await;

    output.line(&format!(
        "\ndemo finished in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    output.shutdown();
    Ok(())
}

/// Runs one step with a time limit; a failed step is reported and the demo goes on.
async fn step(output: &Output, replay: impl Future<Output = Result<(), DemoError>>) {
    let result = tokio::time::timeout(STEP_TIMEOUT, replay).await;
    output.mute(false);
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => output.line(&format!("step failed: {e}")),
        Err(_) => output.line(&format!(
            "step failed: not finished after {} s",
            STEP_TIMEOUT.as_secs()
        )),
    }
    output.settle().await;
}

/// The N+1 detector as by default, except for the payments charge: the attempts of one
/// retried charge are not an N+1 (otel-http feeds resent attempts to the detector too).
fn quiet_retried_charges() {
    use otel_core::repeated_shape::{DetectorConfig, mode_from_env, set_config};
    let mut builder = DetectorConfig::builder().allow("/charge");
    if let Ok(Some(mode)) = mode_from_env() {
        builder = builder.mode(mode);
    }
    if let Ok(config) = builder.build() {
        set_config(config);
    }
}

/// Milliseconds of `d`, for the summaries.
pub(crate) fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// A handler error: 500 with the message (the demo's handlers have no secrets to hide).
#[derive(Debug)]
pub(crate) struct HandlerError(String);

impl<E: std::fmt::Display> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError(e.to_string())
    }
}

impl IntoResponse for HandlerError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}
