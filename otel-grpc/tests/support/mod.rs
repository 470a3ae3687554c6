//! Shared test fixtures: a hand-written tonic service (no protoc), servers on 127.0.0.1:0,
//! channels and metric lookups.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use opentelemetry::{Key, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SpanData;
use otel_grpc::{GrpcClient, GrpcClientLayer, GrpcServerLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::{Service, ServiceBuilder};

/// The one message of the `test.Probe` service.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Probe {
    /// Status code the server ends the call with (0 = OK).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Number of messages a streaming call sends before its status.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// Free text: the request id the server saw, echoed back.
    #[prost(string, tag = "3")]
    pub text: String,
}

/// `test.Probe`: `Fail` (unary, ends with `code`: errors are trailers-only), `Stream` (server
/// streaming, `count` messages then `code` in the trailers), `Hang` (never answers),
/// `WhoAmI` (answers `context id|header id|trace id|sampled` as the handler sees them).
#[derive(Clone, Default)]
pub struct ProbeService;

impl NamedService for ProbeService {
    const NAME: &'static str = "test.Probe";
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl Service<http::Request<Body>> for ProbeService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Probe, Probe>::default());
        match req.uri().path() {
            "/test.Probe/Fail" => Box::pin(async move {
                let svc = tower::service_fn(|req: tonic::Request<Probe>| async move {
                    let probe = req.into_inner();
                    match Code::from_i32(probe.code) {
                        Code::Ok => Ok(tonic::Response::new(probe)),
                        code => Err(Status::new(code, "probe failure")),
                    }
                });
                Ok(grpc.unary(svc, req).await)
            }),
            "/test.Probe/Stream" => Box::pin(async move {
                let svc = tower::service_fn(|req: tonic::Request<Probe>| async move {
                    let probe = req.into_inner();
                    let mut items: Vec<Result<Probe, Status>> = (0..probe.count)
                        .map(|i| {
                            Ok(Probe {
                                count: i,
                                ..Probe::default()
                            })
                        })
                        .collect();
                    if probe.code != 0 {
                        items.push(Err(Status::new(
                            Code::from_i32(probe.code),
                            "stream failure",
                        )));
                    }
                    Ok(tonic::Response::new(tokio_stream::iter(items)))
                });
                Ok(grpc.server_streaming(svc, req).await)
            }),
            "/test.Probe/Hang" => Box::pin(async move {
                let svc = tower::service_fn(|_req: tonic::Request<Probe>| async move {
                    std::future::pending::<()>().await;
                    Ok::<_, Status>(tonic::Response::new(Probe::default()))
                });
                Ok(grpc.unary(svc, req).await)
            }),
            "/test.Probe/WhoAmI" => Box::pin(async move {
                let svc = tower::service_fn(|req: tonic::Request<Probe>| async move {
                    let from_context = otel_core::request_id::RequestId::current()
                        .map(|id| id.to_string())
                        .unwrap_or_default();
                    let from_header = req
                        .metadata()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let cx = otel_core::context::current();
                    let sc = opentelemetry::trace::TraceContextExt::span(&cx)
                        .span_context()
                        .clone();
                    Ok::<_, Status>(tonic::Response::new(Probe {
                        text: format!(
                            "{from_context}|{from_header}|{}|{}",
                            sc.trace_id(),
                            sc.is_sampled()
                        ),
                        ..Probe::default()
                    }))
                });
                Ok(grpc.unary(svc, req).await)
            }),
            "/test.Probe/Repeat" => Box::pin(async move {
                // Reports `count` runs of one query shape to the N+1 detector, as a handler
                // that queries once per item would (through otel-sql).
                let svc = tower::service_fn(|req: tonic::Request<Probe>| async move {
                    let probe = req.into_inner();
                    for _ in 0..probe.count {
                        otel_core::repeated_shape::observe(
                            &otel_core::context::current(),
                            &otel_core::repeated_shape::Observation {
                                shape: "SELECT * FROM stock WHERE sku = ?",
                                fingerprint: 42,
                                kind: otel_core::repeated_shape::ShapeKind::Read,
                                values_hash: None,
                                started: std::time::Instant::now(),
                                duration: std::time::Duration::ZERO,
                                call_site: None,
                                suggestion: Some("WHERE sku = ANY($1)"),
                            },
                        );
                    }
                    Ok::<_, Status>(tonic::Response::new(probe))
                });
                Ok(grpc.unary(svc, req).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

/// A server layer isolated from global state: explicit propagator, meter provider, and
/// current-generation attributes.
pub fn server_layer(telemetry: &otel_core::testing::TestTelemetry) -> GrpcServerLayer {
    GrpcServerLayer::new()
        .propagator(TraceContextPropagator::new())
        .meter_provider(telemetry.meter_provider().clone())
        .legacy_attributes(false)
}

/// A client layer isolated from global state.
pub fn client_layer(
    telemetry: &otel_core::testing::TestTelemetry,
    addr: SocketAddr,
) -> GrpcClientLayer {
    GrpcClientLayer::new()
        .propagator(TraceContextPropagator::new())
        .meter_provider(telemetry.meter_provider().clone())
        .legacy_attributes(false)
        .server_address(addr.ip().to_string(), addr.port())
}

/// Serves `test.Probe` and `grpc.health.v1.Health` (with `""` and `test.Probe` SERVING) behind
/// `layer` on 127.0.0.1:0, on the current (test) thread.
pub async fn serve(layer: GrpcServerLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>>().await;
    reporter
        .set_service_status("test.Probe", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(async move {
        // Keep the reporter alive so Watch streams stay open.
        let _reporter = reporter;
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .add_service(ProbeService)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

/// A connected channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A tonic client over `channel` wrapped in `layer`.
pub fn client(
    channel: Channel,
    layer: GrpcClientLayer,
) -> tonic::client::Grpc<GrpcClient<Channel>> {
    tonic::client::Grpc::new(ServiceBuilder::new().layer(layer).service(channel))
}

/// Calls `/test.Probe/{method}` (unary).
pub async fn unary(
    client: &mut tonic::client::Grpc<GrpcClient<Channel>>,
    method: &'static str,
    request: tonic::Request<Probe>,
) -> Result<tonic::Response<Probe>, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(method);
    client
        .unary(
            request,
            path,
            tonic_prost::ProstCodec::<Probe, Probe>::default(),
        )
        .await
}

/// The string value of attribute `key`, if it is a string.
pub fn str_attr(span: &SpanData, key: &str) -> Option<String> {
    otel_core::testing::TestTelemetry::attr(span, key).map(|v| v.as_str().into_owned())
}

/// The integer value of attribute `key`.
pub fn int_attr(span: &SpanData, key: &str) -> Option<i64> {
    match otel_core::testing::TestTelemetry::attr(span, key) {
        Some(Value::I64(n)) => Some(n),
        _ => None,
    }
}

/// Data points of histogram `name`: (attributes sorted by key, count).
pub fn histogram_points(
    metrics: &[ResourceMetrics],
    name: &str,
) -> Vec<(Vec<(String, String)>, u64)> {
    let mut points = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for metric in sm.metrics().filter(|m| m.name() == name) {
                assert_eq!(metric.unit(), "s");
                if let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() {
                    for dp in h.data_points() {
                        let mut attrs: Vec<(String, String)> = dp
                            .attributes()
                            .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
                            .collect();
                        attrs.sort();
                        points.push((attrs, dp.count()));
                    }
                }
            }
        }
    }
    points
}

/// Whether `span` has attribute `key` at all.
pub fn has_attr(span: &SpanData, key: &str) -> bool {
    let key = Key::from(key.to_owned());
    span.attributes.iter().any(|kv| kv.key == key)
}
