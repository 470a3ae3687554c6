//! Client side: reqwest against an in-process hyper/axum server on 127.0.0.1 (real sockets,
//! loopback), bare and under each instrumentation, in one criterion group; and the retry +
//! circuit-breaker healthy path as a bare tower service call without network.
//!
//! Run (from `benches/`): `cargo bench --bench client -- --warm-up-time 1 --measurement-time 3`.
//!
//! Goal: retry + breaker on the healthy path ≤ 100 ns per call (`client-no-network`, the
//! difference between `retry+breaker` and `bare`; `*/in-span` inside a sampled request span).
//! `tower-retry` is the floor of any retry layer that can resend: tower's own
//! `tower::retry::Retry` with a minimal policy that clones the request (no backoff, no
//! budget, no telemetry). `reqwest-tracing` 0.7 supports
//! OpenTelemetry up to 0.32: it runs on its own 0.32 SDK stack (tracing-opentelemetry 0.33),
//! with the W3C propagator installed as that version's global one so it injects `traceparent`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use http_body_util::{Empty, Full};
use opentelemetry_0_32::trace::TracerProvider as _;
use opentelemetry_sdk::trace::Sampler;
use otel_benches::{CloneRetry, bridged_subscriber, provider, router};
use otel_core::propagation::TraceContextPropagator;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower::{Service, ServiceBuilder, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

fn send(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    client: &ClientWithMiddleware,
    url: &str,
    rt: &tokio::runtime::Runtime,
) {
    let once = || async {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap()
    };
    assert_eq!(rt.block_on(once()), "ok", "{name}");
    group.bench_function(name, |b| b.iter(|| rt.block_on(once())));
}

fn client(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/users/42", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, router()).await.unwrap() });

    let reqwest = reqwest::Client::new();
    let mut group = c.benchmark_group("client");

    // Bare: reqwest alone, then the same client behind an empty middleware chain (the fair
    // baseline for every middleware).
    group.bench_function("bare/reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = reqwest.get(&url).send().await.unwrap();
                response.bytes().await.unwrap()
            })
        })
    });
    let empty_chain = ClientBuilder::new(reqwest.clone()).build();
    send(
        &mut group,
        "bare/reqwest-middleware",
        &empty_chain,
        &url,
        &rt,
    );

    // The peer, on its own OpenTelemetry 0.32 stack.
    {
        opentelemetry_0_32::global::set_text_map_propagator(
            opentelemetry_sdk_0_32::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk_0_32::trace::SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk_0_32::trace::Sampler::AlwaysOn)
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(otel_benches::service_filter())
            .with(tracing_opentelemetry_0_33::layer().with_tracer(provider.tracer("bench")));
        let _guard = tracing::subscriber::set_default(subscriber);
        let peer = ClientBuilder::new(reqwest.clone())
            .with(reqwest_tracing::TracingMiddleware::default())
            .build();
        send(&mut group, "peer/reqwest-tracing", &peer, &url, &rt);
    }

    let provider = provider();
    let _guard = tracing::subscriber::set_default(bridged_subscriber(&provider));
    otel_core::sampling::set_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let ours_middleware = || {
        otel_http::reqwest::TracingMiddleware::builder()
            .propagator(TraceContextPropagator::new())
            .curl_event(false)
            .build()
    };
    let ours = ClientBuilder::new(reqwest.clone())
        .with(ours_middleware())
        .build();
    send(&mut group, "ours/sampled", &ours, &url, &rt);

    let breaker = otel_resilience::CircuitBreakerLayer::new();
    let resilient = ClientBuilder::new(reqwest.clone())
        .with(otel_resilience::RetryMiddleware::new(
            otel_resilience::RetryLayer::new(),
        ))
        .with(otel_resilience::CircuitBreakerMiddleware::from_layer(
            &breaker,
        ))
        .with(ours_middleware())
        .build();
    send(
        &mut group,
        "ours/sampled+retry+breaker",
        &resilient,
        &url,
        &rt,
    );
    group.finish();

    // The healthy path of retry + breaker with no network: a tower service that answers at
    // once, polled once with a no-op waker (no runtime in the measurement).
    let mut group = c.benchmark_group("client-no-network");
    let inner = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        Ok::<_, std::io::Error>(http::Response::new(Empty::<Bytes>::new()))
    });
    let mut bare = inner;
    group.bench_function("bare", |b| {
        b.iter(|| call_now(&mut bare, request()).status())
    });
    let _rt_guard = rt.enter();
    let mut layered = ServiceBuilder::new()
        .layer(otel_resilience::RetryLayer::new())
        .layer(otel_resilience::CircuitBreakerLayer::new())
        .service(inner);
    assert_eq!(call_now(&mut layered, request()).status(), 200);
    group.bench_function("retry+breaker", |b| {
        b.iter(|| call_now(&mut layered, request()).status())
    });
    let mut tower_retry = tower::retry::Retry::new(CloneRetry::default(), inner);
    assert_eq!(call_now(&mut tower_retry, request()).status(), 200);
    group.bench_function("tower-retry", |b| {
        b.iter(|| call_now(&mut tower_retry, request()).status())
    });
    // The same two inside a sampled request span, as a client call in a service handler is
    // (the retry layer opens its span only when an attempt fails; see otel-resilience).
    {
        let request_span = tracing::info_span!("request");
        let _entered = request_span.enter();
        group.bench_function("bare/in-span", |b| {
            b.iter(|| call_now(&mut bare, request()).status())
        });
        group.bench_function("retry+breaker/in-span", |b| {
            b.iter(|| call_now(&mut layered, request()).status())
        });
        group.bench_function("tower-retry/in-span", |b| {
            b.iter(|| call_now(&mut tower_retry, request()).status())
        });
    }
    group.finish();
}

fn request() -> http::Request<Full<Bytes>> {
    http::Request::get("http://api.internal/users/42")
        .body(Full::new(Bytes::from_static(b"")))
        .unwrap()
}

/// Readies and calls `service`, polling once: the services measured here answer at once.
fn call_now<S, R>(service: &mut S, req: http::Request<Full<Bytes>>) -> R
where
    S: Service<http::Request<Full<Bytes>>, Response = R>,
    S::Error: std::fmt::Debug,
{
    let service = poll_now(service.ready()).unwrap();
    poll_now(service.call(req)).unwrap()
}

fn poll_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the service was expected to answer at once"),
    }
}

criterion_group!(benches, client);
criterion_main!(benches);
