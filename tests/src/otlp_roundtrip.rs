//! A traced service exported over OTLP to an in-process receiver, end to end: install
//! `otel_core::Telemetry` with the receiver as endpoint, serve requests through
//! `otel_http::AxumServerLayer` on a real socket, shut telemetry down (which flushes), and
//! check the spans decoded from the wire.
//!
//! `Telemetry::install` sets the global subscriber: call [`export_orders`] once per test
//! binary, on a multi-thread runtime (the OTLP/gRPC exporter's connection runs on it while the
//! batch processor's thread waits for the export).
//!
//! ```no_run
//! # async fn run() {
//! use integration_tests::otlp_receiver::OtlpReceiver;
//! use integration_tests::otlp_roundtrip::{check_orders, export_orders};
//! use otel_core::telemetry::OtlpProtocol;
//!
//! let receiver = OtlpReceiver::http().await;
//! export_orders(&receiver, OtlpProtocol::HttpProtobuf).await;
//! check_orders(&receiver);
//! # }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use http::StatusCode;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use otel_core::Telemetry;
use otel_core::attributes::{self, semconv::attribute as sc};
use otel_core::telemetry::{OtlpProtocol, TRACER_NAME};
use otel_http::AxumServerLayer;

use crate::otlp_receiver::{OtlpReceiver, ReceivedSpan};

/// `service.name` of the exported resource.
pub const SERVICE_NAME: &str = "orders";
/// The trace the first request continues (sent as `traceparent`).
pub const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
/// The remote parent of the first request.
pub const PARENT_SPAN_ID: &str = "b7ad6b7169203331";
/// The request id sent with the first request.
pub const REQUEST_ID: &str = "otlp-req-1";

/// Installs telemetry exporting to `receiver` over `protocol` (no environment read: every
/// setting is given in code), serves `GET /orders/42` (200, continuing [`TRACE_ID`] with
/// request id [`REQUEST_ID`]) and `GET /orders/13` (500), then shuts telemetry down.
pub async fn export_orders(receiver: &OtlpReceiver, protocol: OtlpProtocol) {
    let guard = Telemetry::builder()
        .env(HashMap::<String, String>::new())
        .service_name(SERVICE_NAME)
        .otlp_endpoint(receiver.endpoint())
        .otlp_protocol(protocol)
        .otlp_timeout(Duration::from_secs(10))
        .log_writer(std::io::sink)
        .install()
        .expect("telemetry installs");

    // The default layer: the global propagator `install` set up (tracecontext,baggage).
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .layer(AxumServerLayer::new());
    let addr = crate::serve::http(app).await;
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("http://{addr}/orders/42"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
        .header("x-request-id", REQUEST_ID)
        .send()
        .await
        .expect("served");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "order 42");
    let failed = client
        .get(format!("http://{addr}/orders/13"))
        .send()
        .await
        .expect("served");
    assert_eq!(failed.status(), 500);
    failed.bytes().await.expect("body");

    // Shutdown flushes the batch queue and waits for the export. It blocks: keep it off the
    // runtime's workers, which the gRPC exporter's connection needs meanwhile.
    tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(20)))
        .await
        .expect("shutdown thread")
        .expect("flushed and shut down");
}

/// Checks what `receiver` decoded: exactly the two server spans of [`export_orders`], under
/// the resource with [`SERVICE_NAME`], with their names, kinds, attributes, status, and the
/// remote parent of the first.
pub fn check_orders(receiver: &OtlpReceiver) {
    let spans = receiver.spans();
    assert_eq!(
        spans.len(),
        2,
        "{:?}",
        spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
    );
    for span in &spans {
        assert_eq!(
            span.resource_attr(sc::SERVICE_NAME).as_deref(),
            Some(SERVICE_NAME)
        );
        assert_eq!(span.scope, TRACER_NAME);
        assert_eq!(span.span.name, "GET /orders/{id}");
        assert_eq!(span.span.kind, SpanKind::Server as i32);
        assert_eq!(span.attr(sc::HTTP_REQUEST_METHOD).as_deref(), Some("GET"));
        assert_eq!(span.attr(sc::HTTP_ROUTE).as_deref(), Some("/orders/{id}"));
        assert!(
            span.attr(attributes::REQUEST_ID).is_some(),
            "request.id always set"
        );
        assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
    }
    let by_path = |path: &str| -> &ReceivedSpan {
        spans
            .iter()
            .find(|s| s.attr(sc::URL_PATH).as_deref() == Some(path))
            .unwrap_or_else(|| panic!("no span for {path}"))
    };

    let ok = by_path("/orders/42");
    assert_eq!(ok.trace_id(), TRACE_ID);
    assert_eq!(ok.parent_span_id(), PARENT_SPAN_ID);
    assert_eq!(
        ok.attr(sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("200")
    );
    assert_eq!(ok.attr(attributes::REQUEST_ID).as_deref(), Some(REQUEST_ID));
    assert_eq!(ok.attr(sc::ERROR_TYPE), None);
    let status = ok.span.status.clone().unwrap_or_default();
    assert_eq!(status.code, OtlpStatus::Unset as i32);

    let failed = by_path("/orders/13");
    assert_ne!(failed.trace_id(), TRACE_ID, "a new trace");
    assert_eq!(failed.parent_span_id(), "", "a root span");
    assert_eq!(
        failed.attr(sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("500")
    );
    assert_eq!(failed.attr(sc::ERROR_TYPE).as_deref(), Some("500"));
    let status = failed.span.status.clone().unwrap_or_default();
    assert_eq!(status.code, OtlpStatus::Error as i32);
}

/// `GET /orders/{id}`: order 13 fails with 500.
async fn order(Path(id): Path<u32>) -> (StatusCode, String) {
    if id == 13 {
        (StatusCode::INTERNAL_SERVER_ERROR, "database on fire".into())
    } else {
        (StatusCode::OK, format!("order {id}"))
    }
}
