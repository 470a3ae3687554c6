//! # otel-grpc
//!
//! OpenTelemetry for tonic: [`GrpcServerLayer`] and [`GrpcClientLayer`] are tower layers over
//! `http::Request` that give every gRPC call a span named `pkg.Service/Method` with the
//! current RPC conventions (`rpc.system.name`, `rpc.method`, `rpc.response.status_code`,
//! `error.type`), carry the trace context and the request id in metadata, read the status
//! where gRPC puts it (trailers-only headers or the trailers at the end of the stream) and
//! record `rpc.server.call.duration` / `rpc.client.call.duration`.
//!
//! Like the HTTP layers of this workspace, the server layer decides sampling before it builds
//! a span (`otel_core::sampling::decide`): an unsampled call builds no span at all and runs
//! with its non-recording context attached, so outgoing calls still forward `traceparent`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use otel_grpc::{GrpcClientLayer, GrpcServerLayer};
//!
//! // Server
//! let (_reporter, health) = tonic_health::server::health_reporter();
//! let server = tonic::transport::Server::builder()
//!     .layer(GrpcServerLayer::new())
//!     .add_service(health)
//!     .serve("127.0.0.1:50051".parse()?);
//! tokio::spawn(server);
//!
//! // Client
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let channel = tower::ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new().server_address("127.0.0.1", 50051))
//!     .service(channel);
//! let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
//! client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

/// The builder methods both gRPC layers share (they only differ in their docs): one body for
/// the client and the server layer.
macro_rules! shared_builder_methods {
    (propagator: $propagator_doc:literal, metric: $metric_doc:literal, request_id: $request_id_doc:literal) => {
        #[doc = $propagator_doc]
        pub fn propagator(
            mut self,
            propagator: impl opentelemetry::propagation::TextMapPropagator + Send + Sync + 'static,
        ) -> Self {
            self.config.propagator = Some(std::sync::Arc::new(propagator));
            self
        }

        #[doc = $metric_doc]
        pub fn meter_provider(
            mut self,
            provider: impl opentelemetry::metrics::MeterProvider + Send + Sync + 'static,
        ) -> Self {
            self.config.meter_provider = Some(std::sync::Arc::new(provider));
            self.config.reset_instruments();
            self
        }

        #[doc = $request_id_doc]
        pub fn request_id(mut self, config: otel_core::request_id::RequestIdConfig) -> Self {
            self.config.request_id = config;
            self
        }

        /// Records the legacy `rpc.system`, `rpc.service` and `rpc.grpc.status_code` as well
        /// (`true`), or not (`false`), whatever `OTEL_SEMCONV_STABILITY_OPT_IN` says.
        pub fn legacy_attributes(mut self, duplicate: bool) -> Self {
            self.config.mode = Some(if duplicate {
                crate::conventions::SemconvMode::Duplicate
            } else {
                crate::conventions::SemconvMode::Current
            });
            self
        }
    };
}

pub mod body;
mod call;
pub mod client;
pub mod conventions;
pub mod grpc_timeout;
pub mod method;
pub mod server;
pub mod status;

pub use body::ResponseBody;
pub use call::BoxError;
pub use client::{GrpcClient, GrpcClientLayer};
pub use server::{GrpcServer, GrpcServerLayer};

/// The README's example, compiled as a doc test so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
