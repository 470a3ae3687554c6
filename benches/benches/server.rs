//! Server side, in process: an axum router called with `tower::ServiceExt::oneshot`, bare and
//! under each instrumentation, all in one criterion group so the ratios come from one run.
//!
//! Run (from `benches/`): `cargo bench --bench server -- --warm-up-time 1 --measurement-time 3`.
//!
//! `ours/*` is `AxumServerLayer`, the layer for axum routers; `ours_generic/*` the generic
//! `HttpServerLayer` on the same router (its `ResponseBody` boxed again by axum), for
//! comparison.
//!
//! Goals: ours unsampled ≤ bare + 1.0 µs; ours with the SDK disabled ≤ bare + 100 ns; ours
//! sampled ≤ 1.15x the overhead of one bare bridged `tracing` span carrying the same fields
//! (`reference/one_bridged_span`). The peers run fully sampled (their only mode) on the same
//! SDK provider, which keeps no exporter: what is measured is building, bridging and ending
//! the spans.

use axum::Router;
use axum::body::Body;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use http_body_util::BodyExt;
use opentelemetry_sdk::trace::Sampler;
use otel_benches::{bridged_subscriber, provider, router};
use otel_core::propagation::CompositePropagator;
use otel_http::HttpServerLayer;
use tower::ServiceExt;

fn request() -> http::Request<Body> {
    http::Request::get("/users/42")
        .header("x-request-id", "bench-1")
        .header("user-agent", "criterion")
        .body(Body::empty())
        .unwrap()
}

fn run(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    app: &Router,
    rt: &tokio::runtime::Runtime,
) {
    // Given its state once, as `axum::serve` does at startup: a `Router` called without it
    // rebuilds every route (with its layers) on each request, which is not what a server pays.
    let app = &app.clone().with_state(());
    // A sanity check outside the timed loop: every variant still serves the route.
    rt.block_on(async {
        let response = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
    });
    group.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = app.clone().oneshot(request()).await.unwrap();
                response.into_body().collect().await.unwrap();
            })
        })
    });
}

fn server(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let provider = provider();
    // opentelemetry-instrumentation-tower only takes the global provider (its builder's
    // `with_tracer_provider` is test-only).
    opentelemetry::global::set_tracer_provider(provider.clone());
    let _subscriber = tracing::subscriber::set_default(bridged_subscriber(&provider));

    let builder = || {
        HttpServerLayer::builder()
            .propagator(CompositePropagator::from_names("tracecontext").unwrap())
    };
    let ours = router().layer(builder().build_axum());
    let ours_generic = router().layer(builder().build());

    let mut group = c.benchmark_group("server");
    run(&mut group, "bare", &router(), &rt);
    // `Router::layer` itself costs a re-boxed route: the fair baseline for any layer.
    let noop = router().layer(tower::layer::layer_fn(|inner| inner));
    run(&mut group, "bare/noop_layer", &noop, &rt);

    otel_core::sampling::set_enabled(false);
    run(&mut group, "ours/sdk_disabled", &ours, &rt);
    run(&mut group, "ours_generic/sdk_disabled", &ours_generic, &rt);
    otel_core::sampling::set_enabled(true);

    // With an SDK meter provider, as after `Telemetry::install` with OTLP (the variants above
    // record their metrics on the no-op global provider).
    let meters = otel_benches::meter_provider();
    let ours_metered = router().layer(builder().meter_provider(&meters).build_axum());

    otel_core::sampling::set_sampler(Sampler::AlwaysOff);
    run(&mut group, "ours/unsampled", &ours, &rt);
    run(&mut group, "ours_generic/unsampled", &ours_generic, &rt);
    run(&mut group, "ours/unsampled+sdk_metrics", &ours_metered, &rt);

    otel_core::sampling::set_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    run(&mut group, "ours/sampled", &ours, &rt);
    run(&mut group, "ours_generic/sampled", &ours_generic, &rt);
    run(&mut group, "ours/sampled+sdk_metrics", &ours_metered, &rt);
    run(
        &mut group,
        "reference/one_bridged_span",
        &router().layer(tower::layer::layer_fn(|inner| {
            otel_benches::reference::SpanOnly { inner }
        })),
        &rt,
    );

    let tower_http = router().layer(tower_http::trace::TraceLayer::new_for_http());
    run(&mut group, "peer/tower-http_TraceLayer", &tower_http, &rt);
    let axum_tracing =
        router().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default());
    run(
        &mut group,
        "peer/axum-tracing-opentelemetry",
        &axum_tracing,
        &rt,
    );
    let contrib = router().layer(opentelemetry_instrumentation_tower::http::server::Layer::new());
    run(
        &mut group,
        "peer/opentelemetry-instrumentation-tower",
        &contrib,
        &rt,
    );
    group.finish();
}

criterion_group!(benches, server);
criterion_main!(benches);
