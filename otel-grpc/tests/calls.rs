//! Real tonic servers on 127.0.0.1:0 behind `GrpcServerLayer`, called through a `Channel`
//! wrapped in `GrpcClientLayer`: span names, kinds, attributes, status, parent links,
//! metadata on the wire and metrics.

mod support;

use opentelemetry::Context;
use opentelemetry::trace::{SpanKind, Status as SpanStatus, TraceContextExt};
use opentelemetry_sdk::trace::SpanData;
use otel_core::extensions::{NoPropagation, ResendCount, SpanAttributes};
use otel_core::request_id::{RequestId, RequestIdConfig};
use otel_core::testing::TestTelemetry;
use otel_grpc::status::ALL_CODES;
use support::*;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const CHECK: &str = "grpc.health.v1.Health/Check";

fn by_kind(spans: &[SpanData], name: &str, kind: SpanKind) -> SpanData {
    let matching: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == name && s.span_kind == kind)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one {kind:?} span named {name}; spans: {:?}",
        spans
            .iter()
            .map(|s| (&s.name, &s.span_kind))
            .collect::<Vec<_>>()
    );
    matching[0].clone()
}

fn is_error(span: &SpanData) -> bool {
    matches!(span.status, SpanStatus::Error { .. })
}

/// Waits (without sleeping) until `n` spans named `name` have ended; the server may end its
/// span a moment after the client saw the last frame.
async fn wait_for_spans(telemetry: &TestTelemetry, name: &str, n: usize) -> Vec<SpanData> {
    for _ in 0..10_000 {
        if telemetry.spans_named(name).len() >= n {
            return telemetry.spans();
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "{n} spans named {name} never ended; spans: {:?}",
        telemetry.spans()
    );
}

#[tokio::test]
async fn unary_ok_client_span_is_parent_of_server_span_in_one_trace() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let channel = tower::ServiceBuilder::new()
        .layer(client_layer(&telemetry, addr))
        .service(channel(addr).await);
    let mut health = HealthClient::new(channel);

    let caller = tracing::info_span!("caller");
    let response = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .instrument(caller)
        .await
        .unwrap();
    assert_eq!(response.get_ref().status, 1, "SERVING");

    let spans = wait_for_spans(&telemetry, CHECK, 2).await;
    let caller = telemetry.span("caller");
    let client = by_kind(&spans, CHECK, SpanKind::Client);
    let server = by_kind(&spans, CHECK, SpanKind::Server);

    assert!(TestTelemetry::is_child_of(&client, &caller));
    assert!(
        TestTelemetry::is_child_of(&server, &client),
        "server span's parent is the client span"
    );
    assert_eq!(
        server.span_context.trace_id(),
        caller.span_context.trace_id()
    );

    for span in [&client, &server] {
        assert_eq!(str_attr(span, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(str_attr(span, "rpc.method").as_deref(), Some(CHECK));
        assert_eq!(
            str_attr(span, "rpc.response.status_code").as_deref(),
            Some("OK")
        );
        assert!(!has_attr(span, "error.type"));
        assert_eq!(span.status, SpanStatus::Unset);
        assert!(
            !has_attr(span, "rpc.system"),
            "no legacy attributes by default"
        );
        assert!(!has_attr(span, "rpc.grpc.status_code"));
    }
    assert_eq!(
        str_attr(&client, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        int_attr(&client, "server.port"),
        Some(i64::from(addr.port()))
    );
    assert_eq!(
        str_attr(&server, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        int_attr(&server, "server.port"),
        Some(i64::from(addr.port()))
    );
}

#[tokio::test]
async fn error_status_sent_in_trailers_after_the_response_headers() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));

    // A stream that fails before its first message: 200 + headers, then `grpc-status: 13` in
    // the trailers (not a trailers-only response).
    client.ready().await.unwrap();
    let response = client
        .server_streaming(
            tonic::Request::new(Probe {
                code: Code::Internal as i32,
                count: 0,
                text: String::new(),
            }),
            tonic::codegen::http::uri::PathAndQuery::from_static("/test.Probe/Stream"),
            tonic_prost::ProstCodec::<Probe, Probe>::default(),
        )
        .await
        .expect("headers arrive before the status");
    let mut stream = response.into_inner();
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);

    let spans = wait_for_spans(&telemetry, "test.Probe/Stream", 2).await;
    for kind in [SpanKind::Client, SpanKind::Server] {
        let span = by_kind(&spans, "test.Probe/Stream", kind.clone());
        assert_eq!(
            str_attr(&span, "rpc.response.status_code").as_deref(),
            Some("INTERNAL"),
            "{kind:?}"
        );
        assert_eq!(
            str_attr(&span, "error.type").as_deref(),
            Some("INTERNAL"),
            "{kind:?}"
        );
        assert!(is_error(&span), "{kind:?}");
    }
}

#[tokio::test]
async fn streaming_error_after_several_messages_ends_the_spans_with_that_status() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));

    client.ready().await.unwrap();
    let response = client
        .server_streaming(
            tonic::Request::new(Probe {
                code: Code::Unavailable as i32,
                count: 3,
                text: String::new(),
            }),
            tonic::codegen::http::uri::PathAndQuery::from_static("/test.Probe/Stream"),
            tonic_prost::ProstCodec::<Probe, Probe>::default(),
        )
        .await
        .unwrap();
    let mut stream = response.into_inner();
    let mut received = 0;
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => {
                received += 1;
                // The call is not over while messages flow: no span has ended yet.
                assert!(
                    telemetry
                        .spans_named("test.Probe/Stream")
                        .iter()
                        .all(|s| s.span_kind != SpanKind::Client)
                );
            }
            Ok(None) => panic!("stream ended without its error"),
            Err(status) => break status,
        }
    };
    assert_eq!(received, 3);
    assert_eq!(status.code(), Code::Unavailable);

    let spans = wait_for_spans(&telemetry, "test.Probe/Stream", 2).await;
    let client_span = by_kind(&spans, "test.Probe/Stream", SpanKind::Client);
    let server_span = by_kind(&spans, "test.Probe/Stream", SpanKind::Server);
    assert!(TestTelemetry::is_child_of(&server_span, &client_span));
    for span in [&client_span, &server_span] {
        assert_eq!(
            str_attr(span, "rpc.response.status_code").as_deref(),
            Some("UNAVAILABLE")
        );
        assert_eq!(str_attr(span, "error.type").as_deref(), Some("UNAVAILABLE"));
        assert!(is_error(span));
    }
}

#[tokio::test]
async fn server_streaming_watch_dropped_by_the_client_is_cancelled_on_both_sides() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let channel = tower::ServiceBuilder::new()
        .layer(client_layer(&telemetry, addr))
        .service(channel(addr).await);
    let mut health = HealthClient::new(channel);

    let mut stream = health
        .watch(HealthCheckRequest {
            service: "test.Probe".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.status, 1, "SERVING");
    assert!(
        telemetry
            .spans_named("grpc.health.v1.Health/Watch")
            .is_empty(),
        "the stream is still open"
    );
    drop(stream);

    let spans = wait_for_spans(&telemetry, "grpc.health.v1.Health/Watch", 2).await;
    let client_span = by_kind(&spans, "grpc.health.v1.Health/Watch", SpanKind::Client);
    let server_span = by_kind(&spans, "grpc.health.v1.Health/Watch", SpanKind::Server);
    for span in [&client_span, &server_span] {
        assert_eq!(
            str_attr(span, "rpc.response.status_code").as_deref(),
            Some("CANCELLED")
        );
    }
    // CANCELLED is the caller's choice: an error for the client, not for the server.
    assert!(is_error(&client_span));
    assert_eq!(
        str_attr(&client_span, "error.type").as_deref(),
        Some("CANCELLED")
    );
    assert!(!is_error(&server_span));
    assert!(!has_attr(&server_span, "error.type"));
}

#[tokio::test(start_paused = true)]
async fn deadline_exceeded_on_a_handler_that_never_answers() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));

    let mut request = tonic::Request::new(Probe::default());
    request.set_timeout(std::time::Duration::from_millis(50));
    let status = unary(&mut client, "/test.Probe/Hang", request)
        .await
        .unwrap_err();
    // tonic reports an expired `grpc-timeout` as CANCELLED...
    assert_eq!(status.code(), Code::Cancelled);

    // ...the spans say what happened: the deadline passed. The client's own timer fired
    // (a transport-level `timeout`); the server dropped the handler when its deadline fired.
    let spans = wait_for_spans(&telemetry, "test.Probe/Hang", 2).await;
    for (kind, error_type) in [
        (SpanKind::Client, "timeout"),
        (SpanKind::Server, "DEADLINE_EXCEEDED"),
    ] {
        let span = by_kind(&spans, "test.Probe/Hang", kind.clone());
        assert_eq!(
            str_attr(&span, "rpc.response.status_code").as_deref(),
            Some("DEADLINE_EXCEEDED"),
            "{kind:?}"
        );
        assert_eq!(
            str_attr(&span, "error.type").as_deref(),
            Some(error_type),
            "{kind:?}"
        );
        assert!(is_error(&span), "{kind:?}");
    }
}

#[tokio::test]
async fn status_code_matrix_client_and_server() {
    // (code, name, error on the client, error on the server)
    let table: [(Code, &str, bool, bool); 17] = [
        (Code::Ok, "OK", false, false),
        (Code::Cancelled, "CANCELLED", true, false),
        (Code::Unknown, "UNKNOWN", true, true),
        (Code::InvalidArgument, "INVALID_ARGUMENT", true, false),
        (Code::DeadlineExceeded, "DEADLINE_EXCEEDED", true, true),
        (Code::NotFound, "NOT_FOUND", true, false),
        (Code::AlreadyExists, "ALREADY_EXISTS", true, false),
        (Code::PermissionDenied, "PERMISSION_DENIED", true, false),
        (Code::ResourceExhausted, "RESOURCE_EXHAUSTED", true, false),
        (Code::FailedPrecondition, "FAILED_PRECONDITION", true, false),
        (Code::Aborted, "ABORTED", true, false),
        (Code::OutOfRange, "OUT_OF_RANGE", true, false),
        (Code::Unimplemented, "UNIMPLEMENTED", true, true),
        (Code::Internal, "INTERNAL", true, true),
        (Code::Unavailable, "UNAVAILABLE", true, true),
        (Code::DataLoss, "DATA_LOSS", true, true),
        (Code::Unauthenticated, "UNAUTHENTICATED", true, false),
    ];
    assert_eq!(table.map(|row| row.0), ALL_CODES);

    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));
    for (code, name, client_error, server_error) in table {
        telemetry.reset();
        let request = tonic::Request::new(Probe {
            code: code as i32,
            ..Probe::default()
        });
        let result = unary(&mut client, "/test.Probe/Fail", request).await;
        assert_eq!(result.err().map(|s| s.code()).unwrap_or(Code::Ok), code);

        let spans = wait_for_spans(&telemetry, "test.Probe/Fail", 2).await;
        for (kind, error) in [
            (SpanKind::Client, client_error),
            (SpanKind::Server, server_error),
        ] {
            let span = by_kind(&spans, "test.Probe/Fail", kind.clone());
            assert_eq!(
                str_attr(&span, "rpc.response.status_code").as_deref(),
                Some(name),
                "{name} {kind:?}"
            );
            assert_eq!(is_error(&span), error, "{name} {kind:?} span status");
            assert_eq!(
                str_attr(&span, "error.type").as_deref(),
                error.then_some(name),
                "{name} {kind:?} error.type"
            );
        }
    }
}

#[tokio::test]
async fn legacy_attributes_with_rpc_dup() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry).legacy_attributes(true)).await;
    let mut client = client(
        channel(addr).await,
        client_layer(&telemetry, addr).legacy_attributes(true),
    );
    let request = tonic::Request::new(Probe {
        code: Code::NotFound as i32,
        ..Probe::default()
    });
    unary(&mut client, "/test.Probe/Fail", request)
        .await
        .unwrap_err();

    let spans = wait_for_spans(&telemetry, "test.Probe/Fail", 2).await;
    for kind in [SpanKind::Client, SpanKind::Server] {
        let span = by_kind(&spans, "test.Probe/Fail", kind.clone());
        assert_eq!(
            str_attr(&span, "rpc.system").as_deref(),
            Some("grpc"),
            "{kind:?}"
        );
        assert_eq!(
            str_attr(&span, "rpc.service").as_deref(),
            Some("test.Probe"),
            "{kind:?}"
        );
        assert_eq!(int_attr(&span, "rpc.grpc.status_code"), Some(5), "{kind:?}");
        // The current attributes stay.
        assert_eq!(str_attr(&span, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(
            str_attr(&span, "rpc.method").as_deref(),
            Some("test.Probe/Fail")
        );
        assert_eq!(
            str_attr(&span, "rpc.response.status_code").as_deref(),
            Some("NOT_FOUND")
        );
    }
}

#[tokio::test]
async fn request_id_is_forwarded_in_metadata_and_seen_by_the_handler() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));

    let caller = tracing::info_span!("caller");
    let _ = caller.set_parent(Context::new().with_value(RequestId::parse(b"order-42").unwrap()));
    let response = unary(
        &mut client,
        "/test.Probe/WhoAmI",
        tonic::Request::new(Probe::default()),
    )
    .instrument(caller)
    .await
    .unwrap();
    // The handler's context and its metadata both carry the caller's id; the response echoes it.
    assert!(response.get_ref().text.starts_with("order-42|order-42|"));
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "order-42");

    let spans = wait_for_spans(&telemetry, "test.Probe/WhoAmI", 2).await;
    for kind in [SpanKind::Client, SpanKind::Server] {
        let span = by_kind(&spans, "test.Probe/WhoAmI", kind.clone());
        assert_eq!(
            str_attr(&span, "request.id").as_deref(),
            Some("order-42"),
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn request_id_prefix_and_generation() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let layer = client_layer(&telemetry, addr)
        .request_id(RequestIdConfig::default().forward_prefix("gw").unwrap());
    let mut client = client(channel(addr).await, layer);

    let caller = tracing::info_span!("caller");
    let _ = caller.set_parent(Context::new().with_value(RequestId::parse(b"abc").unwrap()));
    let response = unary(
        &mut client,
        "/test.Probe/WhoAmI",
        tonic::Request::new(Probe::default()),
    )
    .instrument(caller)
    .await
    .unwrap();
    assert!(response.get_ref().text.starts_with("gw.abc|gw.abc|"));

    // No id in the caller's context: the server generates one and hands it to the handler.
    let response = unary(
        &mut client,
        "/test.Probe/WhoAmI",
        tonic::Request::new(Probe::default()),
    )
    .await
    .unwrap();
    let mut parts = response.get_ref().text.split('|');
    let (from_context, from_header) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(from_context.len(), 36, "a UUID: {from_context}");
    assert_eq!(from_context, from_header);
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        from_context
    );
}

#[tokio::test]
async fn extensions_no_propagation_resend_count_and_span_attributes() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));

    let caller = tracing::info_span!("caller");
    let _ =
        caller.set_parent(Context::new().with_value(RequestId::parse(b"secret-route").unwrap()));
    let mut request = tonic::Request::new(Probe::default());
    request.extensions_mut().insert(NoPropagation);
    request.extensions_mut().insert(ResendCount(2));
    request
        .extensions_mut()
        .insert(SpanAttributes(vec![opentelemetry::KeyValue::new(
            "circuit_breaker.state",
            "closed",
        )]));
    let response = unary(&mut client, "/test.Probe/WhoAmI", request)
        .instrument(caller)
        .await
        .unwrap();
    let mut parts = response.get_ref().text.split('|');
    let (from_context, from_header) = (parts.next().unwrap(), parts.next().unwrap());
    assert_ne!(from_context, "secret-route", "no request id sent");
    assert_eq!(from_context, from_header);

    let spans = wait_for_spans(&telemetry, "test.Probe/WhoAmI", 2).await;
    let client_span = by_kind(&spans, "test.Probe/WhoAmI", SpanKind::Client);
    let server_span = by_kind(&spans, "test.Probe/WhoAmI", SpanKind::Server);
    assert_ne!(
        server_span.span_context.trace_id(),
        client_span.span_context.trace_id(),
        "no traceparent sent: the server starts its own trace"
    );
    assert_eq!(int_attr(&client_span, "http.request.resend_count"), Some(2));
    assert_eq!(
        str_attr(&client_span, "circuit_breaker.state").as_deref(),
        Some("closed")
    );
}

#[tokio::test]
async fn resend_count_zero_is_not_recorded() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));
    let mut request = tonic::Request::new(Probe::default());
    request.extensions_mut().insert(ResendCount(0));
    unary(&mut client, "/test.Probe/Fail", request)
        .await
        .unwrap();
    let spans = wait_for_spans(&telemetry, "test.Probe/Fail", 2).await;
    let client_span = by_kind(&spans, "test.Probe/Fail", SpanKind::Client);
    assert!(!has_attr(&client_span, "http.request.resend_count"));
}

#[tokio::test]
async fn unknown_method_is_other_and_span_is_named_grpc() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));

    let status = unary(
        &mut client,
        "/test.Probe/Nope/extra",
        tonic::Request::new(Probe::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    let spans = wait_for_spans(&telemetry, "grpc", 2).await;
    for kind in [SpanKind::Client, SpanKind::Server] {
        let span = by_kind(&spans, "grpc", kind.clone());
        assert_eq!(
            str_attr(&span, "rpc.method").as_deref(),
            Some("_OTHER"),
            "{kind:?}"
        );
        assert_eq!(
            str_attr(&span, "rpc.method_original").as_deref(),
            Some("/test.Probe/Nope/extra")
        );
        assert_eq!(
            str_attr(&span, "rpc.response.status_code").as_deref(),
            Some("UNIMPLEMENTED")
        );
    }
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_class() {
    let telemetry = TestTelemetry::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = client(channel, client_layer(&telemetry, addr));

    let status = unary(
        &mut client,
        "/test.Probe/Fail",
        tonic::Request::new(Probe::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    let span = telemetry.span("test.Probe/Fail");
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(
        str_attr(&span, "error.type").as_deref(),
        Some("connection_refused")
    );
    assert_eq!(
        str_attr(&span, "rpc.response.status_code").as_deref(),
        Some("UNAVAILABLE")
    );
    assert!(is_error(&span));
}

#[tokio::test]
async fn call_duration_metrics_with_low_cardinality_attributes() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut client = client(channel(addr).await, client_layer(&telemetry, addr));
    unary(
        &mut client,
        "/test.Probe/Fail",
        tonic::Request::new(Probe::default()),
    )
    .await
    .unwrap();
    let failing = || {
        tonic::Request::new(Probe {
            code: Code::Unavailable as i32,
            ..Probe::default()
        })
    };
    unary(&mut client, "/test.Probe/Fail", failing())
        .await
        .unwrap_err();
    unary(&mut client, "/test.Probe/Fail", failing())
        .await
        .unwrap_err();
    wait_for_spans(&telemetry, "test.Probe/Fail", 6).await;

    let metrics = telemetry.metrics();
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let mut server = histogram_points(&metrics, "rpc.server.call.duration");
    server.sort();
    assert_eq!(
        server,
        vec![
            (
                vec![
                    s("error.type", "UNAVAILABLE"),
                    s("rpc.method", "test.Probe/Fail"),
                    s("rpc.response.status_code", "UNAVAILABLE"),
                    s("rpc.system.name", "grpc")
                ],
                2
            ),
            (
                vec![
                    s("rpc.method", "test.Probe/Fail"),
                    s("rpc.response.status_code", "OK"),
                    s("rpc.system.name", "grpc")
                ],
                1
            ),
        ]
    );
    let port = addr.port().to_string();
    let mut client_points = histogram_points(&metrics, "rpc.client.call.duration");
    client_points.sort();
    assert_eq!(
        client_points,
        vec![
            (
                vec![
                    s("error.type", "UNAVAILABLE"),
                    s("rpc.method", "test.Probe/Fail"),
                    s("rpc.response.status_code", "UNAVAILABLE"),
                    s("rpc.system.name", "grpc"),
                    s("server.address", "127.0.0.1"),
                    s("server.port", &port)
                ],
                2
            ),
            (
                vec![
                    s("rpc.method", "test.Probe/Fail"),
                    s("rpc.response.status_code", "OK"),
                    s("rpc.system.name", "grpc"),
                    s("server.address", "127.0.0.1"),
                    s("server.port", &port)
                ],
                1
            ),
        ]
    );
}

const UNSAMPLED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn unsampled_call_builds_no_span_but_serves_with_its_context_and_records_metrics() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    // A plain tonic client (no layer): the caller decided not to sample (flag 00).
    let mut plain = tonic::client::Grpc::new(channel(addr).await);
    let mut request = tonic::Request::new(Probe::default());
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{UNSAMPLED_TRACE}-00f067aa0ba902b7-00")
            .parse()
            .unwrap(),
    );
    request
        .metadata_mut()
        .insert("x-request-id", "unsampled-1".parse().unwrap());
    plain.ready().await.unwrap();
    let response = plain
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static("/test.Probe/WhoAmI"),
            tonic_prost::ProstCodec::<Probe, Probe>::default(),
        )
        .await
        .unwrap();
    // The handler ran inside the caller's (unsampled) trace, with the request id.
    assert_eq!(
        response.get_ref().text,
        format!("unsampled-1|unsampled-1|{UNSAMPLED_TRACE}|false")
    );
    assert!(
        telemetry
            .spans()
            .iter()
            .all(|s| !has_attr(s, "rpc.system.name")),
        "no gRPC span for an unsampled call"
    );
    let points = histogram_points(&telemetry.metrics(), "rpc.server.call.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].1, 1, "the metric counts unsampled calls too");
}

#[tokio::test]
async fn unsampled_client_forwards_traceparent_with_flag_00_and_the_request_id() {
    let telemetry = TestTelemetry::new();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let captured = seen.clone();
    // No network needed to see what goes on the wire: the inner service records the request.
    let inner = tower::service_fn(
        move |req: tonic::codegen::http::Request<tonic::body::Body>| {
            *captured.lock().unwrap() = Some(req.headers().clone());
            async move {
                let mut response = tonic::codegen::http::Response::new(tonic::body::Body::empty());
                response
                    .headers_mut()
                    .insert("grpc-status", "0".parse().unwrap());
                Ok::<_, std::convert::Infallible>(response)
            }
        },
    );
    let mut svc = tower::ServiceBuilder::new()
        .layer(
            otel_grpc::GrpcClientLayer::new()
                .propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new())
                .meter_provider(telemetry.meter_provider().clone()),
        )
        .service(inner);

    let parent = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_hex(UNSAMPLED_TRACE).unwrap(),
        opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        opentelemetry::trace::TraceFlags::default(),
        true,
        Default::default(),
    );
    let cx = Context::new()
        .with_remote_span_context(parent)
        .with_value(RequestId::parse(b"rid-7").unwrap());
    let request = tonic::codegen::http::Request::builder()
        .uri("/test.Probe/Fail")
        .body(tonic::body::Body::empty())
        .unwrap();
    {
        let _attached = cx.attach();
        tower::ServiceExt::oneshot(&mut svc, request).await.unwrap();
    }

    let headers = seen.lock().unwrap().take().unwrap();
    let traceparent = headers["traceparent"].to_str().unwrap().to_owned();
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields[1], UNSAMPLED_TRACE);
    assert_ne!(fields[2], "00f067aa0ba902b7", "a span id of its own");
    assert_eq!(fields[3], "00");
    assert_eq!(headers["x-request-id"], "rid-7");
    assert!(telemetry.spans().is_empty());
    assert_eq!(
        histogram_points(&telemetry.metrics(), "rpc.client.call.duration").len(),
        1
    );
}

#[tokio::test]
async fn http_error_without_grpc_status_maps_to_a_grpc_code() {
    // A proxy answering 503 instead of the gRPC server: no `grpc-status` anywhere.
    let telemetry = TestTelemetry::new();
    let inner = tower::service_fn(
        |_req: tonic::codegen::http::Request<tonic::body::Body>| async {
            let mut response = tonic::codegen::http::Response::new(tonic::body::Body::empty());
            *response.status_mut() = tonic::codegen::http::StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, std::convert::Infallible>(response)
        },
    );
    let svc = tower::ServiceBuilder::new()
        .layer(
            otel_grpc::GrpcClientLayer::new()
                .propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new())
                .meter_provider(telemetry.meter_provider().clone()),
        )
        .service(inner);
    let request = tonic::codegen::http::Request::builder()
        .uri("/test.Probe/Fail")
        .body(tonic::body::Body::empty())
        .unwrap();
    tower::ServiceExt::oneshot(svc, request).await.unwrap();

    let span = telemetry.span("test.Probe/Fail");
    assert_eq!(
        str_attr(&span, "rpc.response.status_code").as_deref(),
        Some("UNAVAILABLE")
    );
    assert_eq!(
        str_attr(&span, "error.type").as_deref(),
        Some("UNAVAILABLE")
    );
    assert!(is_error(&span));
}

#[tokio::test]
async fn invalid_incoming_request_id_is_replaced_and_flagged() {
    let telemetry = TestTelemetry::new();
    let addr = serve(server_layer(&telemetry)).await;
    let mut plain = tonic::client::Grpc::new(channel(addr).await);
    let mut request = tonic::Request::new(Probe::default());
    request
        .metadata_mut()
        .insert("x-request-id", "has \"quotes\" and spaces".parse().unwrap());
    plain.ready().await.unwrap();
    let response = plain
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static("/test.Probe/WhoAmI"),
            tonic_prost::ProstCodec::<Probe, Probe>::default(),
        )
        .await
        .unwrap();
    let mut parts = response.get_ref().text.split('|');
    let (from_context, from_header) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(from_context.len(), 36, "a generated UUID: {from_context}");
    assert_eq!(
        from_context, from_header,
        "the handler sees the replacement only"
    );

    let spans = wait_for_spans(&telemetry, "test.Probe/WhoAmI", 1).await;
    let server = by_kind(&spans, "test.Probe/WhoAmI", SpanKind::Server);
    assert_eq!(
        str_attr(&server, "request.id").as_deref(),
        Some(from_context)
    );
    assert_eq!(
        otel_core::testing::TestTelemetry::attr(&server, "request.id.rejected"),
        Some(opentelemetry::Value::Bool(true))
    );
    assert!(
        server
            .attributes
            .iter()
            .all(|kv| !kv.value.as_str().contains("quotes")),
        "the rejected value is never recorded"
    );
}

#[tokio::test]
async fn without_a_subscriber_the_client_still_propagates_the_trace_and_request_id() {
    // No `TestTelemetry`: the `tracing` span is disabled, so there is no span context to
    // inject; the layer falls back to the decision's context.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let captured = seen.clone();
    let inner = tower::service_fn(
        move |req: tonic::codegen::http::Request<tonic::body::Body>| {
            *captured.lock().unwrap() = Some(req.headers().clone());
            async {
                let mut response = tonic::codegen::http::Response::new(tonic::body::Body::empty());
                response
                    .headers_mut()
                    .insert("grpc-status", "0".parse().unwrap());
                Ok::<_, std::convert::Infallible>(response)
            }
        },
    );
    let svc = tower::ServiceBuilder::new()
        .layer(
            otel_grpc::GrpcClientLayer::new()
                .propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
        )
        .service(inner);
    let parent = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_hex(UNSAMPLED_TRACE).unwrap(),
        opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        opentelemetry::trace::TraceFlags::SAMPLED,
        true,
        Default::default(),
    );
    let cx = Context::new()
        .with_remote_span_context(parent)
        .with_value(RequestId::parse(b"rid-9").unwrap());
    let request = tonic::codegen::http::Request::builder()
        .uri("/test.Probe/Fail")
        .body(tonic::body::Body::empty())
        .unwrap();
    {
        let _attached = cx.attach();
        tower::ServiceExt::oneshot(svc, request).await.unwrap();
    }
    let headers = seen.lock().unwrap().take().unwrap();
    let traceparent = headers["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{UNSAMPLED_TRACE}-")) && traceparent.ends_with("-01"),
        "{traceparent}"
    );
    assert_eq!(headers["x-request-id"], "rid-9");
}
