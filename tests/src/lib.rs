//! Fixtures shared by the cross-crate end-to-end tests in `tests/tests/`.
//!
//! - [`chain`]: a shop on 127.0.0.1 — gateway (axum) → backend (axum) over reqwest with
//!   retry, breaker and tracing middlewares → `shop.Blog` (tonic) → SQLite through
//!   `otel_sql::TracedPool`, every hop traced by the workspace's layers;
//! - [`otlp_receiver`]: in-process OTLP trace receivers (gRPC and HTTP/protobuf) that decode
//!   what exporters send over a real socket;
//! - [`otlp_roundtrip`]: a traced service exported to such a receiver, and the checks;
//! - [`serve`]: real servers on 127.0.0.1:0;
//! - [`span_lookup`]: finding spans by name and kind, reading attributes as text.
//!
//! ```
//! use integration_tests::span_lookup::text_attr;
//! use otel_core::testing::TestTelemetry;
//!
//! let telemetry = TestTelemetry::new();
//! tracing::info_span!("work", "request.id" = "r-1").in_scope(|| {});
//! assert_eq!(text_attr(&telemetry.span("work"), "request.id").as_deref(), Some("r-1"));
//! ```
#![warn(missing_docs)]

pub mod chain;
pub mod otlp_receiver;
pub mod otlp_roundtrip;
pub mod serve;
pub mod span_lookup;
