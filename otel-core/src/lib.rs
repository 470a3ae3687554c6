//! # otel-core
//!
//! The base of the workspace: strict context propagation (W3C trace-context and baggage, B3,
//! Jaeger, X-Ray), request ids, sampling before bridging, the names we chose where no
//! semantic convention exists, and one-call setup of the OpenTelemetry SDK.
//!
//! ```no_run
//! # async fn run() -> Result<(), otel_core::SetupError> {
//! let _telemetry = otel_core::Telemetry::builder()
//!     .service_name("checkout")
//!     .install()?;
//! tracing::info!("traces go to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else to the terminal");
//! # Ok(()) }
//! ```
//!
//! The OpenTelemetry crates it is built on are re-exported, so a user never fights version
//! skew: depend on `otel_core::opentelemetry` rather than a second copy.
#![warn(missing_docs)]

pub mod attributes;
pub mod context;
pub mod extensions;
pub mod propagation;
pub mod repeated_shape;
pub mod request_id;
pub mod sampling;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use request_id::RequestId;
pub use telemetry::{SetupError, Telemetry};

pub use opentelemetry;
#[cfg(any(feature = "otlp-grpc", feature = "otlp-http"))]
pub use opentelemetry_otlp;
pub use opentelemetry_sdk;
pub use opentelemetry_semantic_conventions;
pub use tracing_opentelemetry;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
