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

/// The whole demo must end within a minute: setup and steps stop at this deadline (the
/// final flush waits at most 5 s more)...
const DEMO_DEADLINE: Duration = Duration::from_secs(50);
/// ...and each step has its own limit (a normal run takes about 9 s in all).
const STEP_TIMEOUT: Duration = Duration::from_secs(12);

/// Installs telemetry, starts the shop and replays the six incidents.
pub async fn run() -> Result<(), DemoError> {
    let output = Output::install()?;
    let started = Instant::now();
    let deadline = started + DEMO_DEADLINE;
    output.line(&format!(
        "shop demo: gateway (axum) -> payments (HTTP), inventory (gRPC), SQLite; traces {}",
        if output.is_console() {
            "printed below as trees"
        } else {
            "sent to the OTLP endpoint"
        }
    ));
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        output.line(
            "OTEL_SDK_DISABLED=true: no spans and no trees; the numbers come from the services",
        );
    }
    // Setup (schema, seed data) is not an incident: its spans are not printed.
    output.mute(true);
    let shop = match tokio::time::timeout(STEP_TIMEOUT, Shop::start()).await {
        Ok(shop) => shop,
        Err(_) => Err("the shop did not start in time".into()),
    };
    output.settle().await;
    output.mute(false);
    let _ = output.take_spans();
    let shop = shop?;
    for (name, port) in &shop.services {
        output.register_service(*port, name);
    }
    configure_n_plus_one();
    output.line(&format!("gateway listening on {}", shop.gateway));

    step(&output, deadline, retry_storm::replay(&shop, &output)).await;
    step(&output, deadline, n_plus_one::replay(&shop, &output)).await;
    step(&output, deadline, slow_api::replay(&shop, &output)).await;
    step(&output, deadline, dead_inventory::replay(&shop, &output)).await;
    step(&output, deadline, shared_dependency::replay(&shop, &output)).await;
    step(&output, deadline, request_id::replay(&shop, &output)).await;

    output.line(&format!(
        "\ndemo finished in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    output.shutdown();
    Ok(())
}

/// Runs one step with a time limit (its own, and what is left before `deadline`); a failed
/// step is reported and the demo goes on.
async fn step(
    output: &Output,
    deadline: Instant,
    replay: impl Future<Output = Result<(), DemoError>>,
) {
    let limit = STEP_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
    let result = tokio::time::timeout(limit, replay).await;
    output.mute(false);
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => output.line(&format!("step failed: {e}")),
        Err(_) => output.line(&format!(
            "step failed: not finished after {} ms",
            limit.as_millis()
        )),
    }
    output.settle().await;
}

/// The N+1 detector for the demo: on (`warn`) in release builds too, unless
/// `OTEL_N_PLUS_ONE=off` (never `panic`: the demo serves its pages whatever they do); and
/// quiet about the payments charge, whose retried attempts are not an N+1 (otel-http feeds
/// resent attempts to the detector too).
fn configure_n_plus_one() {
    use otel_core::repeated_shape::{DetectorConfig, Mode, mode_from_env, set_config};
    let mode = match mode_from_env() {
        Ok(Some(Mode::Off)) => Mode::Off,
        _ => Mode::Warn,
    };
    if let Ok(config) = DetectorConfig::builder()
        .mode(mode)
        .allow("/charge")
        .build()
    {
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
