//! The `inventory` gRPC service: a hand-written tonic service (no protoc, the message is a
//! `prost` derive) with one unary method, `shop.Inventory/Reserve`, traced by otel-grpc's
//! `GrpcServerLayer`; and the gateway's clients for it (`GrpcClientLayer`, with or without
//! otel-resilience's `CircuitBreakerLayer`).
//!
//! While "dead", the service accepts calls and never answers them in time (the worst kind of
//! down: every caller waits its whole timeout).
//!
//! ```no_run
//! # async fn run() -> Result<(), examples::demo::DemoError> {
//! use examples::demo::inventory::{self, Inventory};
//! let inventory = Inventory::default();
//! let addr = inventory.serve().await?;
//! let client = inventory::client(addr, None)?;
//! let reserved = inventory::reserve(&client, "sku-1", 1).await?;
//! assert!(reserved);
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use otel_grpc::{GrpcClientLayer, GrpcServerLayer};
use otel_resilience::CircuitBreakerLayer;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::transport::Endpoint;
use tonic::{Code, Status};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

use super::DemoError;

/// The timeout of one call to the inventory (short, so the demo stays fast; production
/// services often wait 30 s).
pub const CALL_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a dead inventory stalls a call before it gives up (far past [`CALL_TIMEOUT`]).
const DEAD_STALL: Duration = Duration::from_secs(10);
/// The full path of the one method.
pub const RESERVE_PATH: &str = "/shop.Inventory/Reserve";

/// The message of `shop.Inventory/Reserve`, both ways.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reservation {
    /// The article.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// How many.
    #[prost(uint32, tag = "2")]
    pub quantity: u32,
    /// In the answer: whether the stock was reserved.
    #[prost(bool, tag = "3")]
    pub reserved: bool,
}

/// The inventory service (a tower `Service` tonic can serve). Cheap to clone.
#[derive(Clone, Default)]
pub struct Inventory {
    dead: Arc<AtomicBool>,
}

/// A gateway-side client channel: tracing (and maybe a breaker) over a tonic `Channel`.
/// Its error is a `Status` (a transport or breaker error as the source of an `UNKNOWN`
/// status), not a `BoxError`: tonic's client cannot prove its future `Send` with the latter.
pub type InventoryChannel = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Status>;

impl Inventory {
    /// Kills the service (calls hang) or revives it.
    pub fn set_dead(&self, dead: bool) {
        self.dead.store(dead, Ordering::SeqCst);
    }

    /// Serves the service behind `GrpcServerLayer` on 127.0.0.1 (port 0) in the background.
    pub async fn serve(&self) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(self.clone())
            .serve_with_incoming(TcpListenerStream::new(listener));
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!("inventory server stopped: {e}");
            }
        });
        Ok(addr)
    }
}

/// A client for the inventory at `addr`: a `Channel` (per-call timeout [`CALL_TIMEOUT`])
/// under `GrpcClientLayer`, under `breaker` when one is given (named `inventory`).
pub fn client(
    addr: SocketAddr,
    breaker: Option<CircuitBreakerLayer>,
) -> Result<InventoryChannel, DemoError> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    let traced = ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(GrpcClientLayer::new().server_address(addr.ip().to_string(), addr.port()))
        .service(channel);
    Ok(match breaker {
        Some(breaker) => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_err(Status::from_error)
                .layer(breaker.named("inventory"))
                .service(traced),
        ),
        None => BoxCloneSyncService::new(traced.map_err(|e: BoxError| Status::from_error(e))),
    })
}

/// Calls `shop.Inventory/Reserve`: `Ok(true)` when reserved, the gRPC status otherwise.
pub fn reserve(
    channel: &InventoryChannel,
    sku: &str,
    quantity: u32,
) -> impl Future<Output = Result<bool, Status>> + Send + 'static {
    let channel = channel.clone();
    let request = tonic::Request::new(Reservation {
        sku: sku.to_owned(),
        quantity,
        reserved: false,
    });
    async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<Reservation, Reservation>::default();
        let path = http::uri::PathAndQuery::from_static(RESERVE_PATH);
        let response = grpc.unary(request, path, codec).await?;
        Ok(response.into_inner().reserved)
    }
}

impl NamedService for Inventory {
    const NAME: &'static str = "shop.Inventory";
}

/// Boxed: tonic's generated servers box their futures too; this is not a hot path.
type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl Service<http::Request<Body>> for Inventory {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> ResponseFuture {
        if req.uri().path() != RESERVE_PATH {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let dead = self.dead.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                Reservation,
                Reservation,
            >::default());
            let method = tower::service_fn(move |req: tonic::Request<Reservation>| {
                let dead = dead.load(Ordering::SeqCst);
                async move {
                    if dead {
                        tokio::time::sleep(DEAD_STALL).await;
                        return Err(Status::new(Code::Unavailable, "inventory is dead"));
                    }
                    let mut reservation = req.into_inner();
                    tracing::info!(
                        sku = %reservation.sku,
                        quantity = reservation.quantity,
                        "inventory: stock reserved"
                    );
                    reservation.reserved = true;
                    Ok(tonic::Response::new(reservation))
                }
            });
            Ok(grpc.unary(method, req).await)
        })
    }
}
