//! Exporter faults: `otel_core::Telemetry` exporting over OTLP to a collector that refuses
//! connections, accepts and never answers, answers 503, or answers garbage. Requests served
//! through the server layer meanwhile all complete (none waits on the exporter), the export
//! queue stays bounded (drops counted), shutdown returns within its timeout, and the
//! exporter's own HTTP/gRPC calls are never traced (no feedback loop). The layers record their
//! metrics into the setup's own meter provider, so the broken collector gets the metrics
//! exports too, shutdown included. Every test runs against both layers (`name::generic`:
//! `HttpServerLayer`, `name::axum`: `AxumServerLayer`).
//!
//! The subscriber is set per thread (`TelemetryParts::set_default`), so no global state is
//! touched and the tests of this file can run in parallel. The fake collectors run on plain
//! threads, independent of the test's runtime.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use otel_core::Telemetry;
use otel_core::propagation::CompositePropagator;
use otel_core::telemetry::{OtlpProtocol, TelemetryGuard};
use otel_http::HttpServerLayer;

use common::{ServerLayer, for_both_layers};

for_both_layers!(
    refusing_collector_over_http,
    hanging_collector_over_http,
    collector_answering_503_over_http,
    collector_answering_garbage_over_http,
    refusing_collector_over_grpc,
    hanging_collector_over_grpc,
    collector_answering_garbage_over_grpc,
    the_exporters_own_calls_are_never_traced,
);

const REQUESTS: usize = 600;
const QUEUE: usize = 64;
const EXPORT_TIMEOUT: Duration = Duration::from_millis(300);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Nothing listens: connection refused.
    Refuse,
    /// Accepts, reads, never answers.
    Hang,
    /// `503 Service Unavailable`.
    Unavailable,
    /// Bytes that are not HTTP at all.
    Garbage,
    /// `200 OK` with an empty (valid) OTLP response.
    Healthy,
}

/// A fake collector; counts the export requests it received (`POST` request lines), and
/// among them the trace exports over HTTP (`POST /v1/traces`).
struct Collector {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    trace_requests: Arc<AtomicUsize>,
}

fn collector(fault: Fault) -> Collector {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let trace_requests = Arc::new(AtomicUsize::new(0));
    if let Fault::Refuse = fault {
        drop(listener);
        return Collector {
            addr,
            requests,
            trace_requests,
        };
    }
    let count = requests.clone();
    let traces = trace_requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let count = count.clone();
            let traces = traces.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64 * 1024];
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let posts = buf[..n].windows(5).filter(|w| w == b"POST ").count();
                    count.fetch_add(posts, Ordering::SeqCst);
                    let trace_posts = buf[..n]
                        .windows(16)
                        .filter(|w| w == b"POST /v1/traces ")
                        .count();
                    traces.fetch_add(trace_posts, Ordering::SeqCst);
                    if posts == 0 && matches!(fault, Fault::Healthy | Fault::Unavailable) {
                        continue; // the rest of a body: answer once per request
                    }
                    let answer: &[u8] = match fault {
                        Fault::Hang => continue,
                        Fault::Unavailable => {
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                        }
                        Fault::Garbage => b"\x00\xffnot http at all\r\n\r\n\x16\x03\x01",
                        Fault::Healthy => {
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                        }
                        Fault::Refuse => unreachable!(),
                    };
                    if stream.write_all(answer).is_err() {
                        return;
                    }
                    if let Fault::Garbage = fault {
                        return;
                    }
                }
            });
        }
    });
    Collector {
        addr,
        requests,
        trace_requests,
    }
}

fn telemetry(
    collector: &Collector,
    protocol: OtlpProtocol,
) -> (TelemetryGuard, tracing::subscriber::DefaultGuard) {
    Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .service_name("exporter-faults")
        .otlp_endpoint(format!("http://{}", collector.addr))
        .otlp_protocol(protocol)
        .otlp_timeout(EXPORT_TIMEOUT)
        .max_queue_size(QUEUE)
        .log_writer(std::io::sink)
        .build()
        .expect("valid settings")
        .set_default()
}

/// Serves `/work` behind `layer`, its metrics recorded into the meter provider of `guard`
/// (the setup's own: `set_default` leaves the global one alone).
async fn serve_app(layer: ServerLayer, guard: &TelemetryGuard) -> SocketAddr {
    let meters = guard
        .meter_provider()
        .expect("metrics go to OTLP with traces");
    let app = layer.router(
        Router::new().route("/work", get(|| async { "done" })),
        HttpServerLayer::builder()
            .propagator(CompositePropagator::from_names("tracecontext").unwrap())
            .meter_provider(meters),
    );
    common::serve(app).await
}

/// Serves `REQUESTS` requests one after the other; returns how many completed with 200.
async fn serve_requests(addr: SocketAddr) -> usize {
    let client = reqwest::Client::new();
    let mut ok = 0;
    for _ in 0..REQUESTS {
        let response = client
            .get(format!("http://{addr}/work"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 && response.text().await.unwrap() == "done" {
            ok += 1;
        }
    }
    ok
}

async fn fault_case(fault: Fault, protocol: OtlpProtocol, layer: ServerLayer) {
    let collector = collector(fault);
    let (guard, _default) = telemetry(&collector, protocol);
    let addr = serve_app(layer, &guard).await;

    // Every request completes although the exporter fails the whole time.
    assert_eq!(serve_requests(addr).await, REQUESTS, "{fault:?}");
    // The queue is bounded: what did not fit was dropped and counted, never buffered.
    let dropped = guard.dropped_spans();
    assert!(dropped <= REQUESTS as u64, "{fault:?}: {dropped}");
    if let Fault::Hang = fault {
        // Each export hangs for EXPORT_TIMEOUT while the requests keep finishing spans: only
        // the batch in flight and one queue's worth get in, the rest is dropped.
        assert!(dropped > 0, "{fault:?}: nothing dropped");
    }
    // Shutdown returns within its timeout (plus scheduling slack), whatever the collector.
    let started = Instant::now();
    let _ = tokio::task::spawn_blocking(move || guard.shutdown(SHUTDOWN_TIMEOUT))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < SHUTDOWN_TIMEOUT + Duration::from_millis(700),
        "{fault:?}: shutdown took {took:?}"
    );
}

async fn refusing_collector_over_http(layer: ServerLayer) {
    fault_case(Fault::Refuse, OtlpProtocol::HttpProtobuf, layer).await;
}

async fn hanging_collector_over_http(layer: ServerLayer) {
    fault_case(Fault::Hang, OtlpProtocol::HttpProtobuf, layer).await;
}

async fn collector_answering_503_over_http(layer: ServerLayer) {
    fault_case(Fault::Unavailable, OtlpProtocol::HttpProtobuf, layer).await;
}

async fn collector_answering_garbage_over_http(layer: ServerLayer) {
    fault_case(Fault::Garbage, OtlpProtocol::HttpProtobuf, layer).await;
}

async fn refusing_collector_over_grpc(layer: ServerLayer) {
    fault_case(Fault::Refuse, OtlpProtocol::Grpc, layer).await;
}

async fn hanging_collector_over_grpc(layer: ServerLayer) {
    fault_case(Fault::Hang, OtlpProtocol::Grpc, layer).await;
}

async fn collector_answering_garbage_over_grpc(layer: ServerLayer) {
    fault_case(Fault::Garbage, OtlpProtocol::Grpc, layer).await;
}

/// If the exporter's own HTTP calls were traced, every export would finish a span, which
/// the next flush would export: the collector would keep receiving trace exports with no
/// application traffic. It receives none once the application's spans are out. (Each flush
/// does send metrics again: their sums are cumulative, so every export repeats the totals.)
async fn the_exporters_own_calls_are_never_traced(layer: ServerLayer) {
    let collector = collector(Fault::Healthy);
    let (guard, _default) = telemetry(&collector, OtlpProtocol::HttpProtobuf);
    let addr = serve_app(layer, &guard).await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        client
            .get(format!("http://{addr}/work"))
            .send()
            .await
            .unwrap();
    }
    let flushed = tokio::task::spawn_blocking(move || {
        guard.force_flush();
        guard
    })
    .await
    .unwrap();
    let exports = collector.trace_requests.load(Ordering::SeqCst);
    assert!(exports >= 1, "the application's spans were exported");
    let all = collector.requests.load(Ordering::SeqCst);
    assert!(all > exports, "the layer's metrics were exported too");
    let flushed = tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            flushed.force_flush();
        }
        flushed
    })
    .await
    .unwrap();
    assert_eq!(
        collector.trace_requests.load(Ordering::SeqCst),
        exports,
        "an idle application caused trace exports: the exporter traced itself"
    );
    assert_eq!(flushed.dropped_spans(), 0);
    let _ = tokio::task::spawn_blocking(move || flushed.shutdown(SHUTDOWN_TIMEOUT)).await;
}
