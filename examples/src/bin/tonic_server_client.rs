//! A traced tonic server and client: `cargo run -p examples --bin tonic_server_client`
//!
//! The server (tonic-health) and the client run in one process; the client's span
//! `grpc.health.v1.Health/Check` is the parent of the server's, through the `traceparent`
//! metadata the client layer injects.
use otel_grpc::{GrpcClientLayer, GrpcServerLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = otel_core::Telemetry::builder()
        .service_name("inventory")
        .install()?;

    // Server: a SERVER span per call, parent taken from the metadata.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("inventory", ServingStatus::Serving)
        .await;
    tokio::spawn(
        Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    // Client: a Channel under the client layer (CLIENT span, traceparent, x-request-id).
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let channel = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new().server_address(addr.ip().to_string(), addr.port()))
        .service(channel);
    let mut client = HealthClient::new(channel);

    let request = HealthCheckRequest {
        service: "inventory".into(),
    };
    let response = client
        .check(request)
        .instrument(tracing::info_span!("check inventory"))
        .await?;
    println!("inventory: {:?}", response.get_ref().status());
    Ok(())
}
