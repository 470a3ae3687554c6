//! A tonic `Channel` under the retry and breaker layers (feature `tonic`): a real HTTP/2
//! server answers `UNAVAILABLE` (trailers-only, with pushback) once, then `SERVING`.
#![cfg(feature = "tonic")]

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use otel_core::testing::TestTelemetry;
use otel_resilience::{CircuitBreakerLayer, CircuitBreakerRegistry, RetryLayer};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tower::ServiceBuilder;

/// Serves gRPC health checks: the first call gets UNAVAILABLE with a 300 ms pushback.
async fn grpc_server() -> (
    std::net::SocketAddr,
    Arc<Mutex<Vec<(tokio::time::Instant, usize)>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls: Arc<Mutex<Vec<(tokio::time::Instant, usize)>>> = Arc::default();
    let c = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let c = c.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = {
                            let mut c = c.lock().unwrap();
                            c.push((tokio::time::Instant::now(), body.len()));
                            c.len()
                        };
                        Ok::<_, Infallible>(if n == 1 { unavailable() } else { serving() })
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, calls)
}

fn unavailable() -> Response<BoxBody<Bytes, Infallible>> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", "14")
        .header("grpc-message", "draining")
        .header("grpc-retry-pushback-ms", "300")
        .body(Empty::new().boxed())
        .unwrap()
}

fn serving() -> Response<BoxBody<Bytes, Infallible>> {
    // One length-prefixed message: HealthCheckResponse { status: SERVING (1) }.
    let message = Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01]);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(message)),
        Ok(Frame::trailers(trailers)),
    ];
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn channel_call_is_retried_on_unavailable_with_the_request_replayed() {
    let telemetry = TestTelemetry::new();
    let (addr, calls) = grpc_server().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let registry = CircuitBreakerRegistry::builder().build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().seed(21).build())
        .layer(CircuitBreakerLayer::with_registry(registry.clone()).named("health"))
        .service(channel);
    let mut client = HealthClient::new(svc);
    let resp = client
        .check(HealthCheckRequest {
            service: "inventory.v1.Stock".into(),
        })
        .await
        .unwrap();
    assert_eq!(resp.into_inner().status, ServingStatus::Serving as i32);

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].0 - calls[0].0,
        Duration::from_millis(300),
        "pushback honoured"
    );
    assert_eq!(
        calls[0].1, calls[1].1,
        "the same request body was sent twice"
    );
    assert!(calls[0].1 > 5);

    let span = telemetry.span("retry POST");
    assert_eq!(support::attr(&span, "retry.attempts").as_deref(), Some("2"));
    let retry = span
        .events
        .iter()
        .find(|e| e.name == "retry.attempt")
        .unwrap();
    assert_eq!(
        support::event_attr(retry, "retry.reason").as_deref(),
        Some("UNAVAILABLE")
    );
    assert_eq!(registry.get("health").failures(), 1);
}
