//! Side-by-side benchmarks of the otel-rust toolkit against bare services and peer crates.
//!
//! Not part of the main workspace (see `Cargo.toml`); run from this directory:
//! `cargo bench --bench server -- --warm-up-time 1 --measurement-time 3`. Results, goals and
//! commands are in `BENCHMARKS.md` at the repository root. This library holds what the bench
//! binaries share: the SDK provider every bridged variant uses, and the hello-world router.

use axum::Router;
use axum::routing::get;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use otel_core::sampling::PreSampled;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

/// The route every server variant serves: one path parameter, so that span names use the
/// template (`GET /users/{id}`).
pub fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

/// An SDK provider that samples everything its parent (or our layer's pre-decision) allows,
/// with no exporter: the benches measure building, bridging and ending spans, not an exporter
/// that grows with every iteration.
pub fn provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(PreSampled::new(Sampler::ParentBased(Box::new(
            Sampler::AlwaysOn,
        ))))
        .build()
}

/// An SDK meter provider like the one `otel_core::Telemetry::install` sets up for OTLP (a
/// periodic reader, cumulative temporality), whose exporter discards what it is given and whose
/// interval is longer than any bench: the benches measure recording, not exporting.
pub fn meter_provider() -> opentelemetry_sdk::metrics::SdkMeterProvider {
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::data::ResourceMetrics;
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

    struct Discard;
    impl PushMetricExporter for Discard {
        async fn export(&self, _: &ResourceMetrics) -> OTelSdkResult {
            Ok(())
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> Temporality {
            Temporality::Cumulative
        }
    }
    let reader = PeriodicReader::builder(Discard)
        .with_interval(std::time::Duration::from_secs(24 * 3600))
        .build();
    SdkMeterProvider::builder().with_reader(reader).build()
}

/// A `tracing` subscriber that bridges spans to `provider` (tracing-opentelemetry 0.34),
/// filtered by [`service_filter`].
pub fn bridged_subscriber(provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry()
        .with(service_filter())
        .with(otel_core::telemetry::otel_layer(provider))
}

/// The filter a service runs with: INFO, plus the levels the peers' spans need (tower-http's
/// `TraceLayer` spans are DEBUG, axum-tracing-opentelemetry's TRACE under `otel::tracing`).
/// Without it, hyper's and reqwest's own TRACE events would be recorded as span events under
/// every client span (four per request, each formatted with `Debug`) and dominate the cost.
pub fn service_filter() -> Targets {
    Targets::new()
        .with_default(Level::INFO)
        .with_target("tower_http", Level::DEBUG)
        .with_target("otel::tracing", Level::TRACE)
}

pub mod reference {
    //! The reference for the sampled case: one bridged `tracing` span with the same fields as
    //! ours, recorded and entered around the inner future, nothing else.

    use tracing::Instrument;
    use tracing::field::Empty;

    /// Wraps `inner` in one bridged `tracing` span per request, with the server layer's fields.
    #[derive(Clone)]
    pub struct SpanOnly<S> {
        /// The wrapped service.
        pub inner: S,
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
                "user_agent.original" = "criterion",
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
}

/// The floor of any retry layer that can resend a request: a policy for tower's own
/// `tower::retry::Retry` that keeps a clone of every request (as any retry must) and
/// retries an error or a 5xx at once, up to 3 attempts in all: no backoff, no budget, no
/// telemetry.
#[derive(Clone)]
pub struct CloneRetry {
    retries_left: u32,
}

impl Default for CloneRetry {
    fn default() -> Self {
        CloneRetry { retries_left: 2 }
    }
}

impl<B: Clone, RB, E> tower::retry::Policy<http::Request<B>, http::Response<RB>, E> for CloneRetry {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut http::Request<B>,
        result: &mut Result<http::Response<RB>, E>,
    ) -> Option<Self::Future> {
        let failed = match result {
            Ok(resp) => resp.status().is_server_error(),
            Err(_) => true,
        };
        (failed && self.retries_left > 0).then(|| {
            self.retries_left -= 1;
            std::future::ready(())
        })
    }

    fn clone_request(&mut self, req: &http::Request<B>) -> Option<http::Request<B>> {
        Some(req.clone())
    }
}
