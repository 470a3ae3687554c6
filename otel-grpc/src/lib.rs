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
