//! HTTP metrics of the stable semantic conventions, with low-cardinality attributes only.
//!
//! - `http.server.request.duration` (histogram, seconds, the semconv bucket boundaries):
//!   `http.request.method`, `url.scheme`, `http.route`, `http.response.status_code`,
//!   `error.type`, `network.protocol.version`.
//! - `http.server.active_requests` (up-down counter): `http.request.method`, `url.scheme`.
//! - `http.client.request.duration` (histogram, seconds): `http.request.method`,
//!   `server.address`, `server.port`, `url.scheme`, `http.response.status_code`, `error.type`.
//!
//! Layers build their instruments from the meter provider given to their builder
//! (`.meter_provider(..)`), the global one by default.
//!
//! ```
//! let provider = opentelemetry::global::meter_provider();
//! let layer = otel_http::HttpServerLayer::builder().meter_provider(&*provider).build();
//! # drop(layer);
//! ```

use opentelemetry::metrics::{Histogram, Meter, MeterProvider, UpDownCounter};

use otel_core::attributes::semconv;

/// Bucket boundaries of the HTTP duration histograms (seconds), from the semantic conventions.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Instruments of the server layer.
#[derive(Clone, Debug)]
pub(crate) struct ServerMetrics {
    pub(crate) duration: Histogram<f64>,
    pub(crate) active: UpDownCounter<i64>,
}

impl ServerMetrics {
    pub(crate) fn new<P: MeterProvider + ?Sized>(provider: &P) -> Self {
        let meter = meter(provider);
        ServerMetrics {
            duration: meter
                .f64_histogram(semconv::metric::HTTP_SERVER_REQUEST_DURATION)
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter(semconv::metric::HTTP_SERVER_ACTIVE_REQUESTS)
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build(),
        }
    }
}

/// Instruments of the client layers.
#[derive(Clone, Debug)]
pub(crate) struct ClientMetrics {
    pub(crate) duration: Histogram<f64>,
}

impl ClientMetrics {
    pub(crate) fn new<P: MeterProvider + ?Sized>(provider: &P) -> Self {
        ClientMetrics {
            duration: meter(provider)
                .f64_histogram(semconv::metric::HTTP_CLIENT_REQUEST_DURATION)
                .with_unit("s")
                .with_description("Duration of HTTP client requests.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        }
    }
}

fn meter<P: MeterProvider + ?Sized>(provider: &P) -> Meter {
    provider.meter_with_scope(
        opentelemetry::InstrumentationScope::builder("otel-http")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}
