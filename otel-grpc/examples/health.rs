//! A tonic health server and a client calling it, both instrumented.
//!
//! ```sh
//! cargo run -p otel-grpc --example health
//! ```
//!
//! In a debug build with no exporter configured, each finished trace prints as a tree in the
//! terminal: `grpc.health.v1.Health/Check` (client) with the server span under it. Set
//! `OTEL_EXPORTER_OTLP_ENDPOINT` to send them to a collector instead.

use otel_grpc::{GrpcClientLayer, GrpcServerLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = otel_core::Telemetry::builder()
        .service_name("health-example")
        .install()?;

    // Server: every call gets a SERVER span and `rpc.server.call.duration`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("inventory", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    // Client: a Channel wrapped in the client layer.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let channel = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new().server_address(addr.ip().to_string(), addr.port()))
        .service(channel);
    let mut client = HealthClient::new(channel);

    async {
        let ok = client
            .check(HealthCheckRequest {
                service: "inventory".into(),
            })
            .await?;
        println!("inventory: {:?}", ok.get_ref().status());
        // NOT_FOUND: an error on the client span, not on the server span.
        let missing = client
            .check(HealthCheckRequest {
                service: "payments".into(),
            })
            .await
            .unwrap_err();
        println!("payments: {:?}", missing.code());
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .instrument(tracing::info_span!("checkout"))
    .await
}
