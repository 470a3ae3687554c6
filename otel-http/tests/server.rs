//! The server layers seen from outside: real axum servers on 127.0.0.1, real HTTP clients,
//! exported spans and metrics. The tests that concern the response run against both layers
//! (`name::generic`: `HttpServerLayer`, `name::axum`: `AxumServerLayer`).

mod common;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use otel_core::testing::TestTelemetry;
use otel_http::HttpServerLayer;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

use common::{ServerLayer, for_both_layers, histogram_points, point_attr, serve, sum_points};

for_both_layers!(
    sampled_request_has_exact_server_span_and_echoes_request_id,
    generated_and_rejected_request_ids,
    client_error_is_not_a_span_error_but_server_error_is,
    unknown_route_and_method_names,
    panicking_handler_is_recorded_and_the_panic_propagates,
    panic_payload_is_re_raised_unchanged,
    server_span_ends_when_the_body_has_been_sent,
    span_ends_with_the_body_even_when_a_clone_of_it_lives_on,
    body_dropped_before_its_end_is_recorded_incomplete,
    without_an_opentelemetry_subscriber_context_and_request_id_still_flow,
);

fn str_attr(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    TestTelemetry::attr(span, key).map(|v| v.as_str().into_owned())
}

fn app(layer: ServerLayer, builder: otel_http::HttpServerLayerBuilder) -> Router {
    let router = Router::new()
        .route(
            "/users/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    if id == 0 {
                        Err(StatusCode::NOT_FOUND)
                    } else {
                        Ok(format!("user {id}"))
                    }
                },
            ),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler bug");
                }
                "unreachable"
            }),
        );
    layer.router(router, builder)
}

async fn sampled_request_has_exact_server_span_and_echoes_request_id(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let builder = HttpServerLayer::builder().meter_provider(telemetry.meter_provider());
    let addr = serve(app(layer, builder)).await;

    let response = reqwest::Client::new()
        .get(format!("http://{addr}/users/42?page=2"))
        .header("user-agent", "otel-test/1.0")
        .header("x-request-id", "order-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "order-42");
    assert_eq!(response.text().await.unwrap(), "user 42");

    let span = telemetry.span("GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(span.instrumentation_scope.name(), "otel-core-test");
    let expect = [
        ("http.request.method", "GET"),
        ("url.path", "/users/42"),
        ("url.scheme", "http"),
        ("http.route", "/users/{id}"),
        ("server.address", "127.0.0.1"),
        ("client.address", "127.0.0.1"),
        ("user_agent.original", "otel-test/1.0"),
        ("network.protocol.version", "1.1"),
        ("request.id", "order-42"),
    ];
    for (key, value) in expect {
        assert_eq!(str_attr(&span, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(
        TestTelemetry::attr(&span, "server.port"),
        Some(Value::I64(i64::from(addr.port())))
    );
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        Some(Value::I64(200))
    );
    // Not recorded unless asked for / unless they happened.
    for absent in [
        "url.query",
        "http.request.method_original",
        "error.type",
        "request.id.rejected",
        "http.response.body.incomplete",
    ] {
        assert_eq!(TestTelemetry::attr(&span, absent), None, "{absent}");
    }

    let metrics = telemetry.metrics();
    let points = histogram_points(&metrics, "http.server.request.duration");
    assert_eq!(points.len(), 1, "{points:?}");
    let point = &points[0];
    assert_eq!(point.count(), 1);
    assert_eq!(
        point.bounds().collect::<Vec<_>>(),
        otel_http::metrics::DURATION_BUCKETS.to_vec()
    );
    let attrs: Vec<_> = point.attributes().cloned().collect();
    assert_eq!(
        point_attr(attrs.iter(), "http.route").as_deref(),
        Some("/users/{id}")
    );
    assert_eq!(
        point_attr(attrs.iter(), "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        point_attr(attrs.iter(), "url.scheme").as_deref(),
        Some("http")
    );
    assert_eq!(
        point_attr(attrs.iter(), "http.response.status_code").as_deref(),
        Some("200")
    );
    // Low cardinality only: no path, no ids, no addresses.
    for key in ["url.path", "request.id", "client.address", "server.address"] {
        assert_eq!(point_attr(attrs.iter(), key), None, "{key}");
    }
    let active = sum_points(&metrics, "http.server.active_requests");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].value(), 0);
}

async fn generated_and_rejected_request_ids(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve(app(layer, HttpServerLayer::builder())).await;
    let client = reqwest::Client::new();

    let response = client
        .get(format!("http://{addr}/users/1"))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID v7: {generated}");
    let span = telemetry.span("GET /users/{id}");
    assert_eq!(str_attr(&span, "request.id"), Some(generated));
    telemetry.reset();

    let response = client
        .get(format!("http://{addr}/users/1"))
        .header("x-request-id", "has\"quote")
        .send()
        .await
        .unwrap();
    let replaced = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!replaced.contains("quote"));
    let span = telemetry.span("GET /users/{id}");
    assert_eq!(str_attr(&span, "request.id"), Some(replaced));
    assert_eq!(
        TestTelemetry::attr(&span, "request.id.rejected"),
        Some(Value::Bool(true))
    );
}

async fn client_error_is_not_a_span_error_but_server_error_is(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let builder = HttpServerLayer::builder().meter_provider(telemetry.meter_provider());
    let addr = serve(app(layer, builder)).await;
    let client = reqwest::Client::new();

    let response = client
        .get(format!("http://{addr}/users/0"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let span = telemetry.span("GET /users/{id}");
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        Some(Value::I64(404))
    );
    assert_eq!(TestTelemetry::attr(&span, "error.type"), None);
    assert_eq!(span.status, Status::Unset);

    let response = client
        .get(format!("http://{addr}/fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let span = telemetry.span("GET /fail");
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        Some(Value::I64(500))
    );
    assert_eq!(str_attr(&span, "error.type").as_deref(), Some("500"));
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );

    // The duration metric carries error.type for the 5xx only.
    let metrics = telemetry.metrics();
    let points = histogram_points(&metrics, "http.server.request.duration");
    assert_eq!(points.len(), 2);
    for point in &points {
        let attrs: Vec<_> = point.attributes().cloned().collect();
        let status = point_attr(attrs.iter(), "http.response.status_code").unwrap();
        let error = point_attr(attrs.iter(), "error.type");
        match status.as_str() {
            "404" => assert_eq!(error, None),
            "500" => assert_eq!(error.as_deref(), Some("500")),
            other => panic!("unexpected status {other}"),
        }
    }
}

async fn unknown_route_and_method_names(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve(app(layer, HttpServerLayer::builder())).await;
    // A method outside the semconv list is `_OTHER` and the span name says `HTTP`; the route
    // still names it, never the raw path.
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            format!("http://{addr}/users/7"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let spans = telemetry.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span.name, "HTTP /users/{id}");
    assert_eq!(
        str_attr(span, "http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert!(!span.name.contains('7'));
}

async fn panicking_handler_is_recorded_and_the_panic_propagates(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let addr = serve(app(layer, HttpServerLayer::builder())).await;
    // axum without CatchPanic: the re-raised panic kills the connection task, so the client
    // sees the connection close without a response. Had the layer swallowed the panic, the
    // client would have received a response.
    let result = reqwest::Client::new()
        .get(format!("http://{addr}/panic"))
        .send()
        .await;
    assert!(
        result.is_err(),
        "expected a dropped connection, got {result:?}"
    );

    let span = telemetry.span("GET /panic");
    assert_eq!(str_attr(&span, "error.type").as_deref(), Some("panic"));
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        None
    );
}

async fn panic_payload_is_re_raised_unchanged(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let service = layer.service(
        HttpServerLayer::builder(),
        tower::service_fn(|_req: http::Request<Body>| async {
            if true {
                std::panic::panic_any("original payload");
            }
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }),
    );
    let future = service.oneshot(http::Request::new(Body::empty()));
    let caught = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(future)).await;
    let payload = caught.expect_err("the panic must reach the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"original payload"));
    let span = telemetry.span("GET");
    assert_eq!(str_attr(&span, "error.type").as_deref(), Some("panic"));
}

async fn server_span_ends_when_the_body_has_been_sent(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(4);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let app = Router::new().route(
        "/stream",
        get(move || {
            let rx = rx.lock().unwrap().take().expect("one request");
            async move {
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|chunk| (chunk, rx))
                });
                Body::from_stream(stream)
            }
        }),
    );
    let addr = serve(layer.router(app, HttpServerLayer::builder())).await;

    let mut response = reqwest::Client::new()
        .get(format!("http://{addr}/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tx.send(Ok(Bytes::from_static(b"first "))).await.unwrap();
    assert_eq!(response.chunk().await.unwrap().unwrap(), "first ");
    // Headers and a chunk are out, the body is not finished: no span yet.
    assert!(
        telemetry.spans().is_empty(),
        "span ended before the body did"
    );

    let before_last_chunk = std::time::SystemTime::now();
    tx.send(Ok(Bytes::from_static(b"last"))).await.unwrap();
    assert_eq!(response.chunk().await.unwrap().unwrap(), "last");
    assert!(
        telemetry.spans().is_empty(),
        "span ended before the body did"
    );
    drop(tx);
    assert!(response.chunk().await.unwrap().is_none());

    let span = telemetry.span("GET /stream");
    // The span's end time is the end of the body, not the moment the headers went out.
    assert!(span.end_time >= before_last_chunk);
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.body.incomplete"),
        None
    );
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        Some(Value::I64(200))
    );
}

async fn span_ends_with_the_body_even_when_a_clone_of_it_lives_on(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    // The handler hands a clone of the request span to work that outlives the response (a
    // spawned task instrumented with `Span::current()` does the same).
    let (keep_tx, keep_rx) = std::sync::mpsc::channel::<tracing::Span>();
    let service = layer.service(
        HttpServerLayer::builder(),
        tower::service_fn(move |_req: http::Request<Body>| {
            let keep_tx = keep_tx.clone();
            async move {
                keep_tx.send(tracing::Span::current()).unwrap();
                Ok::<_, Infallible>(http::Response::new(Body::from("done")))
            }
        }),
    );
    let response = service
        .oneshot(http::Request::new(Body::empty()))
        .await
        .unwrap();
    let before_body_end = std::time::SystemTime::now();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let after_body_end = std::time::SystemTime::now();
    assert_eq!(body, "done");
    let clone = keep_rx.recv().unwrap();
    assert!(!clone.is_disabled());

    // Exported at the end of the body, while the clone is still alive, with the body's end
    // as its end time.
    let span = telemetry.span("GET");
    assert!(span.end_time >= before_body_end);
    assert!(span.end_time <= after_body_end);
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.status_code"),
        Some(Value::I64(200))
    );
    // The clone closing later does not export it a second time.
    drop(clone);
    assert_eq!(telemetry.spans_named("GET").len(), 1);
}

async fn body_dropped_before_its_end_is_recorded_incomplete(layer: ServerLayer) {
    let telemetry = TestTelemetry::new();
    let service = layer.service(
        HttpServerLayer::builder(),
        tower::service_fn(|_req: http::Request<Body>| async {
            let chunks = futures_util::stream::iter([
                Ok::<_, Infallible>(Bytes::from_static(b"a")),
                Ok(Bytes::from_static(b"b")),
            ]);
            Ok::<_, Infallible>(http::Response::new(Body::from_stream(chunks)))
        }),
    );
    let mut response = service
        .oneshot(http::Request::new(Body::empty()))
        .await
        .unwrap();
    let first = response.body_mut().frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "a");
    assert!(telemetry.spans().is_empty());
    drop(response);
    let span = telemetry.span("GET");
    assert_eq!(
        TestTelemetry::attr(&span, "http.response.body.incomplete"),
        Some(Value::Bool(true))
    );
}

#[tokio::test]
async fn hyper_server_with_route_extractor_and_filter() {
    let telemetry = TestTelemetry::new();
    let layer = HttpServerLayer::builder()
        .route_extractor(|uri, _| {
            uri.path()
                .starts_with("/items/")
                .then(|| "/items/{id}".to_owned())
        })
        .filter(|path| path != "/health")
        .traceparent_in_response(true)
        .propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new())
        .build();
    let service = layer.layer(tower::service_fn(
        |_req: http::Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from_static(b"ok"),
            )))
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-request-id").is_none());
    assert!(telemetry.spans().is_empty(), "filtered path traced");

    let response = client
        .get(format!("http://{addr}/items/9"))
        .send()
        .await
        .unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    response.bytes().await.unwrap();
    let span = telemetry.span("GET /items/{id}");
    assert_eq!(
        str_attr(&span, "http.route").as_deref(),
        Some("/items/{id}")
    );
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            span.span_context.trace_id(),
            span.span_context.span_id()
        )
    );
}

async fn without_an_opentelemetry_subscriber_context_and_request_id_still_flow(layer: ServerLayer) {
    // No TestTelemetry: the thread has no subscriber, every `tracing` span is disabled.
    let tracecontext =
        || otel_core::propagation::CompositePropagator::from_names("tracecontext").unwrap();
    let downstream = serve(Router::new().route(
        "/echo",
        get(|headers: http::HeaderMap| async move {
            format!(
                "{} {}",
                headers["traceparent"].to_str().unwrap(),
                headers["x-request-id"].to_str().unwrap()
            )
        }),
    ))
    .await;
    let app = Router::new().route(
        "/call",
        get(move || async move {
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(
                    otel_http::reqwest::TracingMiddleware::builder()
                        .propagator(tracecontext())
                        .build(),
                )
                .build();
            common::text_of(client.get(format!("http://{downstream}/echo"))).await
        }),
    );
    let app = layer.router(app, HttpServerLayer::builder().propagator(tracecontext()));
    let addr = serve(app).await;
    let body = reqwest::Client::new()
        .get(format!("http://{addr}/call"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("x-request-id", "no-otel-1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 no-otel-1"
    );
}
