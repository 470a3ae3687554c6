//! Side-by-side benchmarks of the otel-rust toolkit against bare services and peer crates.
//!
//! Not part of the main workspace (see `Cargo.toml`); run from this directory:
//! `cargo bench --bench server -- --warm-up-time 1 --measurement-time 3`. Results, goals and
//! commands are in `BENCHMARKS.md` at the repository root. This library holds what the bench
//! binaries share: the SDK provider every bridged variant uses, and the hello-world router.

use axum::Router;
use axum::routing::get;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use otel_core::sampling::PreSampled;
use tracing_subscriber::layer::SubscriberExt;

/// The route every server variant serves: one path parameter, so that span names use the
/// template (`GET /users/{id}`).
pub fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

/// An SDK provider that samples everything its parent (or our layer's pre-decision) allows,
/// with no exporter: the benches measure building, bridging and ending spans, not an exporter
/// that grows with every iteration.
pub fn provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(PreSampled::new(Sampler::ParentBased(Box::new(
            Sampler::AlwaysOn,
        ))))
        .build()
}

/// A `tracing` subscriber that bridges every span to `provider` (tracing-opentelemetry 0.34).
pub fn bridged_subscriber(provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry().with(otel_core::telemetry::otel_layer(provider))
}
