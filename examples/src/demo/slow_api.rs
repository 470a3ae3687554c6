//! Incident 3, a slow external API waited on inside the request: `GET /api/report` takes as
//! long as the rates API. Moved out of the request (`GET /api/report/background`), the call
//! runs in a spawned task with its own trace, linked to the request's span, and the request
//! answers at once.
//!
//! ```no_run
//! # async fn run(shop: &examples::demo::Shop, out: &examples::demo::Output) -> Result<(), examples::demo::DemoError> {
//! examples::demo::slow_api::replay(shop, out).await
//! # }
//! ```

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use otel_core::opentelemetry::trace::TraceContextExt as _;
use otel_core::tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing::Instrument as _;

use super::rates::RATES_DELAY;
use super::shop::{Gateway, Shop};
use super::{DemoError, HandlerError, Output, ms};

/// The name of the background job's span.
pub const JOB_SPAN: &str = "refresh_rates (background job)";
/// How long the demo waits for the background job at most.
const JOB_TIMEOUT: Duration = Duration::from_secs(5);

/// The gateway routes of this incident: `GET /api/report` (waits for the rates API) and
/// `GET /api/report/background` (hands the call to a background task).
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/api/report", get(report))
        .route("/api/report/background", get(report_background))
}

/// Replays both versions and prints how long the user waited.
pub async fn replay(shop: &Shop, out: &Output) -> Result<(), DemoError> {
    out.header(
        3,
        "A slow external API waited on inside the request vs moved out of it",
    );
    out.line("--- GET /api/report (calls the rates API and waits):");
    let started = Instant::now();
    shop.user
        .get(shop.url("/api/report"))
        .send()
        .await?
        .error_for_status()?;
    let sync_ms = ms(started.elapsed());
    out.settle().await;

    out.line(
        "--- GET /api/report/background (the call runs in a spawned task, its own trace, linked):",
    );
    let started = Instant::now();
    shop.user
        .get(shop.url("/api/report/background"))
        .send()
        .await?
        .error_for_status()?;
    let background_ms = ms(started.elapsed());
    let job = tokio::time::timeout(JOB_TIMEOUT, shop.jobs_done.notified()).await;
    let job_ms = ms(started.elapsed());
    out.settle().await;
    let spans = out.take_spans();
    let request_trace = spans
        .iter()
        .find(|s| s.name == "GET /api/report/background")
        .map(|s| s.trace_id.clone());
    let job_span = spans.iter().find(|s| s.name == JOB_SPAN);

    out.line("\nWhat happened:");
    out.line(&format!(
        "  synchronous: the request took {sync_ms} ms (the rates API takes {} ms)",
        ms(RATES_DELAY)
    ));
    out.line(&format!(
        "  background: the request took {background_ms} ms; the rates call {}",
        if job.is_ok() {
            format!("finished {job_ms} ms after the request started")
        } else {
            "had not finished in time".to_owned()
        }
    ));
    if let (Some(request), Some(job)) = (request_trace, job_span) {
        let linked = if job.links.contains(&request) {
            "linked to the request's trace"
        } else {
            "not linked"
        };
        out.line(&format!(
            "  the job is its own trace {}, {linked} {request}",
            job.trace_id
        ));
    }
    Ok(())
}

async fn report(State(gw): State<Gateway>) -> Result<String, HandlerError> {
    let rates = gw
        .http
        .get(&gw.rates_url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(format!("report with rates {rates}"))
}

async fn report_background(State(gw): State<Gateway>) -> (StatusCode, &'static str) {
    // A new trace (no parent) linked to the request, so the request's trace ends now and the
    // job's trace says which request started it.
    let request = otel_core::context::current().span().span_context().clone();
    let job = tracing::info_span!(parent: None, JOB_SPAN);
    job.add_link(request);
    tokio::spawn(
        async move {
            match gw.http.get(&gw.rates_url).send().await {
                Ok(response) => tracing::info!(status = %response.status(), "rates refreshed"),
                Err(e) => tracing::warn!("rates refresh failed: {e}"),
            }
            gw.jobs_done.notify_one();
        }
        .instrument(job),
    );
    (StatusCode::ACCEPTED, "report queued")
}
