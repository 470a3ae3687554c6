//! # otel-http
//!
//! OpenTelemetry for HTTP services built on tower: a server layer for axum and hyper, client
//! layers for hyper-util and reqwest, the stable HTTP semantic conventions, HTTP metrics,
//! request ids and redaction of secrets. Spans are `tracing` spans bridged by
//! `tracing-opentelemetry`; sampling is decided before any span is built (see
//! [`otel_core::sampling`]).
//!
//! On an axum router, [`AxumServerLayer`] (feature `axum`, on by default); on hyper or any
//! other tower service, [`HttpServerLayer`]. Both are configured by
//! [`HttpServerLayer::builder()`] and trace the same way; the axum one answers axum's own
//! response type, so axum has no response body to box again.
//!
//! ```
//! use axum::{Router, routing::get};
//! use otel_http::AxumServerLayer;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "alice" }))
//!     .layer(AxumServerLayer::new());
//! # drop(app);
//! ```
//!
//! Modules: [`server`] (the server layers), [`client`] (tower client layer and shared client
//! builder), `reqwest` (feature `reqwest`), [`redact`] (what never reaches telemetry),
//! [`metrics`], [`curl`], [`error_class`], [`shape`] (N+1 call shapes).
#![warn(missing_docs)]

pub mod client;
pub mod curl;
pub mod error_class;
pub mod metrics;
pub mod redact;
#[cfg(feature = "reqwest")]
pub mod reqwest;
pub mod server;
pub mod shape;

pub use client::{ClientBuilder, HttpClientLayer, HttpClientService};
#[cfg(feature = "axum")]
pub use server::{AxumServerLayer, AxumServerService};
pub use server::{HttpServerLayer, HttpServerLayerBuilder, HttpServerService};
pub use shape::call_shape;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
