//! `AxumServerLayer` against `HttpServerLayer`: for the same requests on real servers, the same
//! spans, attributes, metrics and echoed headers; and a request the layer does not trace gets
//! the inner response back untouched, with no allocation beyond a no-op layer's.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use otel_core::propagation::CompositePropagator;
use otel_core::testing::TestTelemetry;
use otel_http::{HttpServerLayer, HttpServerLayerBuilder};

use common::{ServerLayer, allocations_per_request, histogram_points, serve, sum_points};

#[global_allocator]
static ALLOCATOR: common::CountingAllocator = common::CountingAllocator;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn routes() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|| async { ([("cache-control", "no-cache")], "alice") }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        // An empty body: the request ends with the response head.
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route("/health", get(|| async { "ok" }))
}

/// Everything the layers are configured to do, on the shared builder.
fn builder(telemetry: &TestTelemetry) -> HttpServerLayerBuilder {
    HttpServerLayer::builder()
        .meter_provider(telemetry.meter_provider())
        .propagator(CompositePropagator::from_names("tracecontext").unwrap())
        .capture_request_headers([http::header::USER_AGENT, http::header::AUTHORIZATION])
        .capture_response_headers([http::header::CACHE_CONTROL])
        .capture_query(true)
        .traceparent_in_response(true)
        .filter(|path| path != "/health")
}

/// What one layer did with the same four requests.
#[derive(Debug, PartialEq)]
struct Observed {
    responses: Vec<SeenResponse>,
    /// The exported spans, in the order they ended.
    spans: Vec<SeenSpan>,
    /// `http.server.request.duration`: count and attributes of each point, sorted.
    durations: Vec<(u64, Attributes)>,
    /// `http.server.active_requests`, per point.
    active: Vec<i64>,
}

type Attributes = BTreeMap<String, Value>;

#[derive(Debug, PartialEq)]
struct SeenResponse {
    path: String,
    status: u16,
    /// The echoed `x-request-id`.
    request_id: Option<String>,
    /// Trace id and flags of the response `traceparent` (the span id differs between runs).
    trace: Option<String>,
    body: String,
}

#[derive(Debug, PartialEq)]
struct SeenSpan {
    name: String,
    kind: SpanKind,
    status: Status,
    parent: String,
    /// Without `server.port` (each server's own, checked apart).
    attributes: Attributes,
}

async fn observe(layer: ServerLayer) -> Observed {
    let telemetry = TestTelemetry::new();
    let addr: SocketAddr = serve(layer.router(routes(), builder(&telemetry))).await;
    let client = reqwest::Client::new();
    let mut responses = Vec::new();
    for (path, id) in [
        ("/users/42?page=2&token=secret", "same-1"),
        ("/fail", "same-2"),
        ("/empty", "same-3"),
        ("/health", "same-4"),
    ] {
        let response = client
            .get(format!("http://{addr}{path}"))
            .header("traceparent", TRACEPARENT)
            .header("x-request-id", id)
            .header("user-agent", "same-agent")
            .header("authorization", "Bearer secret")
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let request_id = header("x-request-id");
        let trace = header("traceparent").map(|value| {
            let parts: Vec<&str> = value.split('-').collect();
            format!("{}-{}", parts[1], parts[3])
        });
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        responses.push(SeenResponse {
            path: path.to_owned(),
            status,
            request_id,
            trace,
            body,
        });
    }

    let spans = telemetry
        .spans()
        .into_iter()
        .map(|span| {
            let mut attributes: Attributes = span
                .attributes
                .iter()
                .map(|kv| (kv.key.as_str().to_owned(), kv.value.clone()))
                .collect();
            assert_eq!(
                attributes.remove("server.port"),
                Some(Value::I64(i64::from(addr.port())))
            );
            SeenSpan {
                name: span.name.to_string(),
                kind: span.span_kind.clone(),
                status: span.status.clone(),
                parent: span.parent_span_id.to_string(),
                attributes,
            }
        })
        .collect();
    let metrics = telemetry.metrics();
    let mut durations: Vec<_> = histogram_points(&metrics, "http.server.request.duration")
        .iter()
        .map(|point| {
            let attributes = point
                .attributes()
                .map(|kv| (kv.key.as_str().to_owned(), kv.value.clone()))
                .collect::<Attributes>();
            (point.count(), attributes)
        })
        .collect();
    durations.sort_by_key(|(_, attributes)| format!("{attributes:?}"));
    let active = sum_points(&metrics, "http.server.active_requests")
        .iter()
        .map(|point| point.value())
        .collect();
    Observed {
        responses,
        spans,
        durations,
        active,
    }
}

#[tokio::test]
async fn axum_layer_traces_exactly_as_the_generic_one() {
    let generic = observe(ServerLayer::Generic).await;
    let axum = observe(ServerLayer::Axum).await;
    assert_eq!(axum, generic);

    // And what that is: three traced requests, the health check untouched.
    let response = |path: &str, status, request_id: Option<&str>, body: &str| SeenResponse {
        path: path.to_owned(),
        status,
        request_id: request_id.map(str::to_owned),
        trace: request_id.map(|_| "0af7651916cd43dd8448eb211c80319c-01".to_owned()),
        body: body.to_owned(),
    };
    assert_eq!(
        axum.responses,
        [
            response(
                "/users/42?page=2&token=secret",
                200,
                Some("same-1"),
                "alice"
            ),
            response("/fail", 500, Some("same-2"), "boom"),
            response("/empty", 204, Some("same-3"), ""),
            response("/health", 200, None, "ok"),
        ]
    );
    let names: Vec<&str> = axum.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["GET /users/{id}", "GET /fail", "GET /empty"]);
    let users = &axum.spans[0];
    assert_eq!(users.kind, SpanKind::Server);
    assert_eq!(users.status, Status::Unset);
    assert_eq!(users.parent, "b7ad6b7169203331");
    let attributes = &users.attributes;
    let text = |key: &str| attributes.get(key).map(|v| v.as_str().into_owned());
    assert_eq!(text("http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(text("request.id").as_deref(), Some("same-1"));
    assert_eq!(
        text("url.query").as_deref(),
        Some("page=2&token=[REDACTED]")
    );
    let strings = |values: &[&str]| {
        Some(Value::Array(opentelemetry::Array::String(
            values.iter().map(|v| v.to_string().into()).collect(),
        )))
    };
    assert_eq!(
        attributes.get("http.request.header.authorization").cloned(),
        strings(&["[REDACTED]"])
    );
    assert_eq!(
        attributes
            .get("http.response.header.cache-control")
            .cloned(),
        strings(&["no-cache"])
    );
    assert_eq!(
        attributes.get("http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(attributes.get("http.response.body.incomplete"), None);
    let fail = &axum.spans[1];
    assert!(matches!(fail.status, Status::Error { .. }), "{fail:?}");
    assert_eq!(
        fail.attributes.get("error.type"),
        Some(&Value::String("500".into()))
    );
    assert_eq!(
        axum.spans[2].attributes.get("http.response.status_code"),
        Some(&Value::I64(204))
    );
    assert_eq!(axum.durations.len(), 3, "{:?}", axum.durations);
    assert_eq!(axum.active, [0]);
}

#[test]
fn a_filtered_path_gets_the_inner_response_untouched() {
    let telemetry = TestTelemetry::new();
    let noop = allocations_per_request(
        &routes().layer(tower::layer::layer_fn(|inner| inner)),
        "/health",
    );
    let axum =
        allocations_per_request(&routes().layer(builder(&telemetry).build_axum()), "/health");
    let generic = allocations_per_request(&routes().layer(builder(&telemetry).build()), "/health");
    assert_eq!(axum, noop, "the axum layer allocated on a filtered path");
    // The generic layer's `ResponseBody` is one more box for axum: what the axum layer saves.
    assert_eq!(generic, noop + 1);
    assert!(telemetry.spans().is_empty());
}

#[test]
fn a_traced_response_is_boxed_once_as_with_the_generic_layer() {
    // Each layer with its own telemetry: the exporters start alike.
    let traced = |layer: ServerLayer| {
        let telemetry = TestTelemetry::new();
        let app = layer.router(routes(), builder(&telemetry));
        let allocations = allocations_per_request(&app, "/users/1");
        assert_eq!(telemetry.spans_named("GET /users/{id}").len(), 2);
        allocations
    };
    assert_eq!(traced(ServerLayer::Axum), traced(ServerLayer::Generic));
}
