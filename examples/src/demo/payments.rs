//! The `payments` HTTP service (axum, traced by otel-http's `AxumServerLayer`): `POST /charge`
//! answers 200, or 503 while it is "down". It counts every attempt it receives, so the
//! retry-storm step can show the load each client really sent.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let payments = examples::demo::payments::Payments::default();
//! payments.set_down(true);
//! let addr = examples::demo::shop::serve(payments.router()).await?;
//! # let _ = addr; Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use otel_http::AxumServerLayer;

/// The payments service's switches and counters. Cheap to clone.
#[derive(Clone, Default)]
pub struct Payments {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    down: AtomicBool,
    attempts: AtomicU64,
}

impl Payments {
    /// The service's routes, traced.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/charge", post(charge))
            .with_state(self.clone())
            .layer(AxumServerLayer::new())
    }

    /// Takes the service down (every charge answers 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Attempts received since the last call, and resets the count.
    pub fn take_attempts(&self) -> u64 {
        self.inner.attempts.swap(0, Ordering::SeqCst)
    }
}

async fn charge(State(payments): State<Payments>) -> (StatusCode, &'static str) {
    payments.inner.attempts.fetch_add(1, Ordering::SeqCst);
    if payments.inner.down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "payments is down")
    } else {
        tracing::info!("payments: card charged");
        (StatusCode::OK, "charged")
    }
}
