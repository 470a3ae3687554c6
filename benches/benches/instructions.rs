//! Instruction-count versions of the hottest paths, for `benches/callgrind.sh`: wall-clock
//! numbers on a loaded 2-core machine are noisy, instruction counts are not, so a regression
//! shows up here first.
//!
//! `instructions <path> <iterations>` sets the path up, runs it once to warm caches and lazy
//! statics, then calls it `<iterations>` times inside `measure`, the only function callgrind
//! collects in (`--collect-atstart=no --toggle-collect=*instructions*measure*`). Paths:
//! `w3c_extract`, `request_id`, `fingerprint`, `server_bare`, `server_unsampled`,
//! `server_disabled` (ours with `sampling::set_enabled(false)`), and the
//! retry + breaker healthy path as a tower call without network: `tower_bare`, `retry_breaker`
//! (both boxed, so the difference is the two layers).
//! Under `cargo bench` (no path given) it only says how to run it.

use std::hint::black_box;

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Full};
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use otel_core::propagation::{HeaderExtractor, TraceContextPropagator};
use tower::{Service, ServiceExt};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let (Some(path), Some(iterations)) = (args.next(), args.next().and_then(|n| n.parse().ok()))
    else {
        eprintln!("instruction counts: run `benches/callgrind.sh` (valgrind --tool=callgrind)");
        return;
    };
    let iterations: u64 = iterations;
    match path.as_str() {
        "w3c_extract" => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap(),
            );
            let propagator = TraceContextPropagator::new();
            let base = Context::new();
            let mut f = || {
                black_box(
                    propagator.extract_with_context(&base, &HeaderExtractor(black_box(&headers))),
                );
            };
            f();
            measure(iterations, &mut f);
        }
        "request_id" => {
            let mut f = || {
                black_box(otel_core::RequestId::generate());
            };
            f();
            measure(iterations, &mut f);
        }
        "fingerprint" => {
            let sql = "SELECT u.id, u.name, u.email FROM users u WHERE u.org_id = 42 AND u.active = 1 ORDER BY name LIMIT 1";
            let mut f = || {
                black_box(otel_sql::fingerprint::fingerprint(black_box(sql)));
            };
            f();
            measure(iterations, &mut f);
        }
        "server_bare" | "server_unsampled" | "server_disabled" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let provider = otel_benches::provider();
            let _subscriber =
                tracing::subscriber::set_default(otel_benches::bridged_subscriber(&provider));
            otel_core::sampling::set_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff);
            otel_core::sampling::set_enabled(path != "server_disabled");
            let app = if path == "server_bare" {
                otel_benches::router().layer(tower::layer::layer_fn(|inner| inner))
            } else {
                otel_benches::router().layer(
                    otel_http::HttpServerLayer::builder()
                        .propagator(TraceContextPropagator::new())
                        .build(),
                )
            };
            let mut f = || {
                rt.block_on(async {
                    let request = http::Request::get("/users/42")
                        .header("x-request-id", "bench-1")
                        .body(Body::empty())
                        .unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                })
            };
            f();
            measure(iterations, &mut f);
        }
        "tower_bare" | "retry_breaker" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _rt = rt.enter();
            let inner = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
                Ok::<_, std::io::Error>(http::Response::new(Empty::<Bytes>::new()))
            });
            let mut service: tower::util::BoxService<_, _, tower::BoxError> =
                if path == "tower_bare" {
                    tower::util::BoxService::new(inner.map_err(tower::BoxError::from))
                } else {
                    tower::util::BoxService::new(
                        tower::ServiceBuilder::new()
                            .layer(otel_resilience::RetryLayer::new())
                            .layer(otel_resilience::CircuitBreakerLayer::new())
                            .service(inner),
                    )
                };
            let mut f = || {
                let request = http::Request::get("http://api.internal/users/42")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let ready = poll_now(service.ready()).unwrap();
                assert_eq!(poll_now(ready.call(request)).unwrap().status(), 200);
            };
            f();
            measure(iterations, &mut f);
        }
        other => {
            eprintln!("unknown path {other}");
            std::process::exit(2);
        }
    }
}

/// Polls `future` once with a no-op waker: the services measured here answer at once.
fn poll_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the service was expected to answer at once"),
    }
}

/// The only function callgrind collects in.
#[inline(never)]
fn measure(iterations: u64, f: &mut dyn FnMut()) {
    for _ in 0..iterations {
        f();
    }
}
