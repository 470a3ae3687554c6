//! In-process cost of the server layer: `tower::Service::call` of an axum router, bare vs
//! with `HttpServerLayer`, for an unsampled request, a sampled one, and telemetry disabled.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use opentelemetry_sdk::trace::Sampler;
use otel_core::propagation::CompositePropagator;
use otel_http::HttpServerLayer;
use tower::ServiceExt;

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

fn request() -> http::Request<Body> {
    http::Request::get("/users/42")
        .header("x-request-id", "bench-1")
        .body(Body::empty())
        .unwrap()
}

fn run(c: &mut Criterion, name: &str, app: &Router, rt: &tokio::runtime::Runtime) {
    c.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = app.clone().oneshot(request()).await.unwrap();
                response.into_body().collect().await.unwrap();
            })
        })
    });
}

fn server_layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bare = router();
    let layered = router().layer(
        HttpServerLayer::builder()
            .propagator(CompositePropagator::from_names("tracecontext").unwrap())
            .build(),
    );
    run(c, "bare", &bare, &rt);
    // `Router::layer` itself costs a re-boxed route: the fair baseline for any layer.
    let noop = router().layer(tower::layer::layer_fn(|inner| inner));
    run(c, "noop_layer", &noop, &rt);

    otel_core::sampling::set_enabled(false);
    run(c, "layer_disabled", &layered, &rt);
    otel_core::sampling::set_enabled(true);

    otel_core::sampling::set_sampler(Sampler::AlwaysOff);
    // A bridged subscriber whose SDK keeps no exporter: the cost measured is building,
    // bridging and ending spans, not an in-memory exporter that grows with every iteration.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(otel_core::sampling::PreSampled::new(Sampler::ParentBased(
            Box::new(Sampler::AlwaysOn),
        )))
        .build();
    let subscriber = tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        tracing_opentelemetry::layer().with_tracer(opentelemetry::trace::TracerProvider::tracer(
            &provider, "bench",
        )),
    );
    let guard = tracing::subscriber::set_default(subscriber);
    run(c, "layer_unsampled", &layered, &rt);

    otel_core::sampling::set_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    run(c, "layer_sampled", &layered, &rt);
    run(
        c,
        "bare_with_one_bridged_span",
        &router().layer(tower::layer::layer_fn(|inner| SpanOnly { inner })),
        &rt,
    );
    drop(guard);
}

/// The reference for the sampled case: one bridged `tracing` span with the same fields.
#[derive(Clone)]
struct SpanOnly<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for SpanOnly<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use tracing::Instrument;
        use tracing::field::Empty;
        let span = tracing::info_span!(
            target: "otel_http",
            "HTTP request",
            otel.name = "GET /users/{id}",
            otel.kind = "server",
            otel.status_code = Empty,
            "http.request.method" = "GET",
            "url.path" = req.uri().path(),
            "url.scheme" = "http",
            "url.query" = Empty,
            "http.route" = "/users/{id}",
            "server.address" = Empty,
            "server.port" = Empty,
            "client.address" = Empty,
            "user_agent.original" = Empty,
            "network.protocol.version" = "1.1",
            "http.response.status_code" = Empty,
            "error.type" = Empty,
            "request.id" = "bench-1",
            "request.id.rejected" = Empty,
            "http.response.body.incomplete" = Empty,
        );
        span.record("http.response.status_code", 200);
        self.inner.call(req).instrument(span)
    }
}

criterion_group!(benches, server_layer);
criterion_main!(benches);
