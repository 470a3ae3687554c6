//! # otel-http
//!
//! OpenTelemetry for HTTP services built on tower: a server layer for axum and hyper, client
//! layers for hyper-util and reqwest, the stable HTTP semantic conventions, HTTP metrics,
//! request ids and redaction of secrets. Spans are `tracing` spans bridged by
//! `tracing-opentelemetry`; sampling is decided before any span is built (see
//! [`otel_core::sampling`]).
//!
//! ```
//! use axum::{Router, routing::get};
//! use otel_http::HttpServerLayer;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "alice" }))
//!     .layer(HttpServerLayer::new());
//! # drop(app);
//! ```
//!
//! Modules: [`server`] (the server layer), [`client`] (tower client layer and shared client
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
pub use server::{HttpServerLayer, HttpServerLayerBuilder, HttpServerService};
pub use shape::call_shape;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
