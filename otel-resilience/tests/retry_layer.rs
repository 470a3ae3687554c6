//! The tower retry layer seen from outside: real servers, paused tokio time, seeded jitter,
//! exact spans.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use opentelemetry::trace::{SpanKind, Status};
use otel_core::extensions::{ResendCount, SpanAttributes};
use otel_core::testing::TestTelemetry;
use otel_resilience::{RetryBudget, RetryBudgetExhausted, RetryLayer, RetryPolicy};
use support::{
    StubService, attr, event_attr, recording_stub, request, scripted, serve, status, sum_counter,
};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Per attempt: `ResendCount`, number of `SpanAttributes`, virtual time of the call.
type Seen = Arc<Mutex<Vec<(Option<u32>, Option<usize>, tokio::time::Instant)>>>;

/// A stub client: answers from `script` in order, records the `ResendCount` and the
/// `SpanAttributes` it was given, and opens an `attempt` span like a tracing client layer.
fn stub(script: Vec<Result<u16, std::io::ErrorKind>>) -> (Seen, impl StubService) {
    recording_stub(scripted(script), |req| {
        (
            req.extensions().get::<ResendCount>().map(|r| r.0),
            req.extensions().get::<SpanAttributes>().map(|a| a.0.len()),
            tokio::time::Instant::now(),
        )
    })
}

#[tokio::test(start_paused = true)]
async fn retries_a_503_and_records_the_logical_call() {
    let telemetry = TestTelemetry::new();
    let (seen, inner) = stub(vec![Ok(503), Ok(503), Ok(200)]);
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .seed(1)
                .meter_provider(telemetry.meter_provider())
                .build(),
        )
        .service(inner);
    let start = tokio::time::Instant::now();
    let resp = svc
        .oneshot(request(Method::GET, "http://payments/charge"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        start.elapsed() <= Duration::from_millis(300),
        "full jitter under 100+200 ms"
    );

    let seen = seen.lock().unwrap().clone();
    let resends: Vec<Option<u32>> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        resends,
        [None, Some(1), Some(2)],
        "ResendCount on each retry"
    );

    let span = telemetry.span("retry GET");
    assert_eq!(span.span_kind, SpanKind::Internal);
    assert_eq!(span.instrumentation_scope.name(), "otel-core-test");
    assert_eq!(attr(&span, "retry.attempts").as_deref(), Some("3"));
    assert_eq!(attr(&span, "retry.max_attempts").as_deref(), Some("3"));
    assert_eq!(
        attr(&span, "retry.budget_exhausted").as_deref(),
        Some("false")
    );
    assert_eq!(attr(&span, "error.type"), None);
    assert_eq!(span.status, Status::Unset);
    let events = ours(&span);
    assert_eq!(events.len(), 2);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.name, "retry.attempt");
        assert_eq!(event_attr(e, "retry.attempt"), Some((i + 2).to_string()));
        assert_eq!(event_attr(e, "retry.reason").as_deref(), Some("503"));
        assert_eq!(
            event_attr(e, "retry.delay_source").as_deref(),
            Some("backoff")
        );
        let delay: u128 = event_attr(e, "retry.delay_ms").unwrap().parse().unwrap();
        assert!(delay <= 100 << i, "attempt {} delay {delay}", i + 2);
        let waited = seen[i + 1].2 - seen[i].2;
        // tokio's timer wheel rounds a sleep up to the next millisecond.
        assert!(
            waited.as_millis() >= delay && waited.as_millis() <= delay + 1,
            "recorded {delay} ms, waited {waited:?}"
        );
    }
    let attempts = telemetry.spans_named("attempt");
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| TestTelemetry::is_child_of(a, &span))
    );
}

#[tokio::test(start_paused = true)]
async fn final_failure_marks_the_span() {
    let telemetry = TestTelemetry::new();
    let (_, inner) = stub(vec![Ok(503), Ok(502), Ok(504)]);
    let svc = RetryLayer::builder().seed(2).build().layer_service(inner);
    let resp = svc
        .oneshot(request(Method::PUT, "http://x/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 504, "the last response is returned as is");
    let span = telemetry.span("retry PUT");
    assert_eq!(attr(&span, "retry.attempts").as_deref(), Some("3"));
    assert_eq!(attr(&span, "error.type").as_deref(), Some("504"));
    assert!(matches!(span.status, Status::Error { .. }));
    let reasons: Vec<_> = ours(&span)
        .iter()
        .map(|e| event_attr(e, "retry.reason").unwrap())
        .collect();
    assert_eq!(reasons, ["503", "502"]);
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried() {
    let telemetry = TestTelemetry::new();
    let server = serve(|_, _| status(503)).await;
    let svc = RetryLayer::builder()
        .seed(3)
        .build()
        .layer_service(support::client());
    let resp = svc
        .oneshot(request(Method::POST, &server.url("/orders")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.hits(), 1);
    let span = telemetry.span("retry POST");
    assert_eq!(attr(&span, "retry.attempts").as_deref(), Some("1"));
    assert_eq!(attr(&span, "error.type").as_deref(), Some("503"));
    assert!(ours(&span).is_empty());
}

#[tokio::test(start_paused = true)]
async fn get_against_a_real_server_is_retried_with_the_body_replayed() {
    // Every test of this binary installs a subscriber, so that no callsite is first seen
    // with none and cached as disabled (tracing's interest cache is process-wide).
    let _telemetry = TestTelemetry::new();
    let server = serve(|n, req| {
        assert_eq!(req.headers()["content-length"], "7");
        if n < 2 { status(503) } else { status(200) }
    })
    .await;
    let svc = RetryLayer::builder()
        .seed(4)
        .build()
        .layer_service(support::client());
    let resp = svc
        .oneshot(request(Method::PUT, &server.url("/items/1")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.hits(), 3);
}

#[tokio::test(start_paused = true)]
async fn connect_error_is_retried_even_for_post() {
    let telemetry = TestTelemetry::new();
    let addr = support::closed_port().await;
    let svc = RetryLayer::builder()
        .seed(5)
        .build()
        .layer_service(support::client());
    let err = svc
        .oneshot(request(Method::POST, &format!("http://{addr}/orders")))
        .await
        .unwrap_err();
    let hyper_err = err
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .expect("the client's error is returned");
    assert!(hyper_err.is_connect());
    let span = telemetry.span("retry POST");
    assert_eq!(attr(&span, "retry.attempts").as_deref(), Some("3"));
    assert_eq!(
        attr(&span, "error.type").as_deref(),
        Some("connection_refused")
    );
    let reasons: Vec<_> = ours(&span)
        .iter()
        .map(|e| event_attr(e, "retry.reason").unwrap())
        .collect();
    assert_eq!(reasons, ["connection_refused", "connection_refused"]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_and_as_a_date_is_honoured_and_capped() {
    let telemetry = TestTelemetry::new();
    let server = serve(|n, _| {
        let retry_after = match n {
            0 => "2".to_owned(),
            1 => httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(4)),
            2 => "120".to_owned(),
            _ => return status(200),
        };
        let mut r = status(503);
        r.headers_mut()
            .insert("retry-after", retry_after.parse().unwrap());
        r
    })
    .await;
    let policy = RetryPolicy::default().max_attempts(4);
    let svc = RetryLayer::builder()
        .policy(policy)
        .seed(6)
        .build()
        .layer_service(support::client());
    let resp = svc
        .oneshot(request(Method::GET, &server.url("/quota")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t = server.times();
    assert_eq!(t.len(), 4);
    let gaps: Vec<Duration> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps[0], Duration::from_secs(2), "seconds form");
    // An HTTP date has 1 s resolution: 4 s ahead, minus the sub-second part of now.
    assert!(
        gaps[1] >= Duration::from_secs(3) && gaps[1] <= Duration::from_secs(4),
        "date form: {:?}",
        gaps[1]
    );
    assert_eq!(gaps[2], Duration::from_secs(5), "120 s capped at 5 s");
    let span = telemetry.span("retry GET");
    let sources: Vec<_> = ours(&span)
        .iter()
        .map(|e| event_attr(e, "retry.delay_source").unwrap())
        .collect();
    assert_eq!(sources, ["retry_after", "retry_after", "retry_after"]);
    assert_eq!(
        event_attr(ours(&span)[2], "retry.delay_ms").as_deref(),
        Some("5000")
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_retries_that_would_end_after_it() {
    let telemetry = TestTelemetry::new();
    let server = serve(|_, _| {
        let mut r = status(503);
        r.headers_mut().insert("retry-after", "3".parse().unwrap());
        r
    })
    .await;
    let policy = RetryPolicy::default().deadline(Duration::from_secs(5));
    let svc = RetryLayer::builder()
        .policy(policy)
        .build()
        .layer_service(support::client());
    let resp = svc
        .oneshot(request(Method::GET, &server.url("/")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.hits(), 2, "the second retry would start at 6 s");
    assert_eq!(
        attr(&telemetry.span("retry GET"), "retry.attempts").as_deref(),
        Some("2")
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_budget_is_visible_and_transport_errors_say_so() {
    let telemetry = TestTelemetry::new();
    let (_, inner) = stub(vec![Ok(503), Err(std::io::ErrorKind::ConnectionReset)]);
    let layer = RetryLayer::builder()
        .budget(RetryBudget::ratio(0.0, Duration::from_secs(10), 0))
        .meter_provider(telemetry.meter_provider())
        .build();
    let mut svc = layer.layer_service(inner);
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(request(Method::GET, "http://x/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(request(Method::GET, "http://x/"))
        .await
        .unwrap_err();
    let exhausted = err
        .downcast_ref::<RetryBudgetExhausted>()
        .expect("a clear error");
    assert_eq!(exhausted.attempts, 1);
    assert!(
        err.to_string()
            .starts_with("retry budget exhausted after 1 attempt(s)")
    );

    for span in telemetry.spans_named("retry GET") {
        assert_eq!(
            attr(&span, "retry.budget_exhausted").as_deref(),
            Some("true")
        );
        assert_eq!(
            attr(&span, "error.type").as_deref(),
            Some("retry_budget_exhausted")
        );
        let events = ours(&span);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "retry.budget_exhausted");
    }
    let metrics = telemetry.metrics();
    assert_eq!(sum_counter(&metrics, "retry.budget.rejections"), 2);
    assert_eq!(sum_counter(&metrics, "retry.attempts"), 2);
}

/// The events of this crate on `span` (hyper-util's own debug events are ignored).
fn ours(span: &opentelemetry_sdk::trace::SpanData) -> Vec<&opentelemetry::trace::Event> {
    span.events
        .iter()
        .filter(|e| e.name.starts_with("retry.") || e.name.starts_with("circuit_breaker."))
        .collect()
}

/// `layer.layer(svc)` without importing `tower::Layer` everywhere.
trait LayerService {
    fn layer_service<S>(&self, inner: S) -> otel_resilience::RetryService<S>;
}

impl LayerService for RetryLayer {
    fn layer_service<S>(&self, inner: S) -> otel_resilience::RetryService<S> {
        tower::Layer::layer(self, inner)
    }
}

#[tokio::test(start_paused = true)]
async fn grpc_unavailable_is_retried_after_the_pushback_and_counted_by_the_breaker() {
    let telemetry = TestTelemetry::new();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c = calls.clone();
    // A tonic-like client: trailers-only responses carry `grpc-status` in the headers.
    let inner = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let n = {
            let mut c = c.lock().unwrap();
            c.push(tokio::time::Instant::now());
            c.len()
        };
        async move {
            let mut resp = status(200);
            let code = if n == 1 { "14" } else { "0" };
            resp.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            resp.headers_mut()
                .insert("grpc-status", code.parse().unwrap());
            if n == 1 {
                resp.headers_mut()
                    .insert("grpc-retry-pushback-ms", "750".parse().unwrap());
            }
            Ok::<_, std::io::Error>(resp)
        }
    });
    let registry = otel_resilience::CircuitBreakerRegistry::builder().build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().seed(12).build())
        .layer(otel_resilience::CircuitBreakerLayer::with_registry(registry.clone()).named("grpc"))
        .service(inner);
    let resp = svc
        .oneshot(request(Method::POST, "/inventory.v1.Stock/Reserve"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["grpc-status"], "0");
    let t = calls.lock().unwrap().clone();
    assert_eq!(t.len(), 2, "UNAVAILABLE is retried although gRPC is POST");
    assert_eq!(t[1] - t[0], Duration::from_millis(750));
    let span = telemetry.span("retry POST");
    let e = ours(&span)[0];
    assert_eq!(
        event_attr(e, "retry.reason").as_deref(),
        Some("UNAVAILABLE")
    );
    assert_eq!(
        event_attr(e, "retry.delay_source").as_deref(),
        Some("pushback")
    );
    assert_eq!(event_attr(e, "retry.delay_ms").as_deref(), Some("750"));
    assert_eq!(
        registry.get("grpc").failures(),
        1,
        "UNAVAILABLE counts as a breaker failure"
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_internal_is_not_retried() {
    let telemetry = TestTelemetry::new();
    let inner = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        let mut resp = status(200);
        resp.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        resp.headers_mut()
            .insert("grpc-status", "13".parse().unwrap());
        Ok::<_, std::io::Error>(resp)
    });
    let svc = RetryLayer::new().layer_service(inner);
    let resp = svc
        .oneshot(request(Method::POST, "/pkg.Svc/Method"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["grpc-status"], "13");
    let span = telemetry.span("retry POST");
    assert_eq!(attr(&span, "retry.attempts").as_deref(), Some("1"));
    assert_eq!(attr(&span, "error.type").as_deref(), Some("INTERNAL"));
}

#[test]
fn futures_are_send_so_they_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let mut svc = tower::Layer::layer(
        &otel_resilience::CircuitBreakerLayer::new(),
        RetryLayer::new().layer_service(support::client()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let future = svc.call(request(Method::GET, "http://127.0.0.1:9/"));
    assert_send(&future);
}

#[tokio::test(start_paused = true)]
async fn a_body_streaming_past_the_buffer_limit_is_sent_whole_once_and_not_retried() {
    use http_body_util::BodyExt;
    use http_body_util::combinators::UnsyncBoxBody;
    type Streamed = UnsyncBoxBody<Bytes, std::convert::Infallible>;

    let telemetry = TestTelemetry::new();
    let received = Arc::new(Mutex::new(Vec::new()));
    let r = received.clone();
    let inner = tower::service_fn(move |req: Request<Streamed>| {
        let r = r.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            r.lock().unwrap().push(body.len());
            Ok::<_, std::io::Error>(status(503))
        }
    });
    let svc = RetryLayer::builder()
        .policy(RetryPolicy::default().max_replay_body(1024))
        .build()
        .layer_service(inner);
    let chunks = (0..4).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![1u8; 1000])))
    });
    let body: Streamed =
        http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync();
    let req = Request::put("http://x/upload").body(body).unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        *received.lock().unwrap(),
        [4000],
        "one attempt, nothing lost"
    );
    let span = telemetry.span("retry PUT");
    assert_eq!(attr(&span, "retry.attempts").as_deref(), Some("1"));
    assert_eq!(attr(&span, "error.type").as_deref(), Some("503"));
}

#[tokio::test(start_paused = true)]
async fn the_logical_call_carries_the_request_id_of_the_request() {
    let telemetry = TestTelemetry::new();
    let (_seen, inner) = stub(vec![Ok(503), Ok(200)]);
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .seed(1)
                .meter_provider(telemetry.meter_provider())
                .build(),
        )
        .service(inner);
    // As the server layers do for an incoming request: the id travels in the context.
    let id: otel_core::RequestId = "user-quoted-42".parse().unwrap();
    let _request = opentelemetry::Context::current().with_value(id).attach();
    let resp = svc
        .oneshot(request(Method::GET, "http://payments/charge"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let span = telemetry.span("retry GET");
    assert_eq!(attr(&span, "request.id").as_deref(), Some("user-quoted-42"));
}

#[tokio::test(start_paused = true)]
async fn every_attempt_is_counted_by_its_number_past_the_prebuilt_attribute_sets() {
    // Attempts 1 to 8 use attribute sets built with the layer, later ones build theirs.
    let telemetry = TestTelemetry::new();
    let (seen, inner) = stub(vec![Ok(503); 11].into_iter().chain([Ok(200)]).collect());
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .policy(
                    RetryPolicy::default()
                        .max_attempts(12)
                        .backoff(otel_resilience::backoff::Backoff::none()),
                )
                .no_budget()
                .meter_provider(telemetry.meter_provider())
                .build(),
        )
        .service(inner);
    let resp = svc
        .oneshot(request(Method::GET, "http://inventory/items"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 12);
    let mut points = telemetry.u64_counter_by("retry.attempts", "retry.attempt");
    points.sort_by_key(|(attempt, _)| attempt.parse::<u32>().unwrap());
    let expected: Vec<(String, u64)> = (1..=12).map(|n| (n.to_string(), 1)).collect();
    assert_eq!(points, expected);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_carries_the_head_and_body_of_the_request() {
    // The first attempt's request is rebuilt from the kept head (headers and extensions
    // copied only when there are any): every attempt sees the same method, URI, version,
    // headers, extensions and body, a retry with its `ResendCount` on top.
    #[derive(Clone, Debug, PartialEq)]
    struct Tenant(&'static str);
    type Head = (
        Method,
        String,
        http::Version,
        Vec<(String, String)>,
        Option<Tenant>,
        Option<u32>,
        Bytes,
    );
    fn head(req: &Request<Full<Bytes>>) -> Head {
        use http_body_util::BodyExt;
        let body = futures_util::FutureExt::now_or_never(req.body().clone().collect())
            .expect("a full body is ready")
            .unwrap()
            .to_bytes();
        (
            req.method().clone(),
            req.uri().to_string(),
            req.version(),
            req.headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                .collect(),
            req.extensions().get::<Tenant>().cloned(),
            req.extensions().get::<ResendCount>().map(|r| r.0),
            body,
        )
    }
    let mut dressed = request(Method::PUT, "http://inventory/items/7?dry=1");
    *dressed.version_mut() = http::Version::HTTP_2;
    dressed
        .headers_mut()
        .insert("x-request-id", "req-7".parse().unwrap());
    dressed
        .headers_mut()
        .append("accept", "application/json".parse().unwrap());
    dressed.extensions_mut().insert(Tenant("acme"));
    let bare = Request::get("http://inventory/items")
        .body(Full::new(Bytes::new()))
        .unwrap();
    for (req, expected_first) in [
        (
            dressed,
            (
                Method::PUT,
                "http://inventory/items/7?dry=1".to_owned(),
                http::Version::HTTP_2,
                vec![
                    ("x-request-id".to_owned(), "req-7".to_owned()),
                    ("accept".to_owned(), "application/json".to_owned()),
                ],
                Some(Tenant("acme")),
                None,
                Bytes::from_static(b"payload"),
            ),
        ),
        (
            bare,
            (
                Method::GET,
                "http://inventory/items".to_owned(),
                http::Version::HTTP_11,
                vec![],
                None,
                None,
                Bytes::new(),
            ),
        ),
    ] {
        let (seen, inner) = recording_stub(scripted(vec![Ok(503), Ok(200)]), head);
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::builder().seed(3).no_budget().build())
            .service(inner);
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
        let seen = seen.lock().unwrap().clone();
        let mut expected_retry = expected_first.clone();
        expected_retry.5 = Some(1);
        assert_eq!(seen, vec![expected_first, expected_retry]);
    }
}
