//! A slow external API (`GET /rates`, axum, traced): answers after [`RATES_DELAY`], like a
//! third-party exchange-rate service on a bad day.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let addr = examples::demo::shop::serve(examples::demo::rates::router()).await?;
//! # let _ = addr; Ok(()) }
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use otel_http::AxumServerLayer;

/// How long the external API takes to answer.
pub const RATES_DELAY: Duration = Duration::from_millis(400);

/// The external API's routes, traced.
pub fn router() -> Router {
    Router::new()
        .route(
            "/rates",
            get(|| async {
                tokio::time::sleep(RATES_DELAY).await;
                "EUR=1.08"
            }),
        )
        .layer(AxumServerLayer::new())
}
