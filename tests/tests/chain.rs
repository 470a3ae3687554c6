//! One request through the whole shop — gateway (axum) → reqwest with retry, breaker and
//! tracing → backend (axum) → tonic → SQLite — on 127.0.0.1, with W3C trace-context and with
//! B3 as the configured propagator: one trace, exact parent links across every hop, the
//! request id on every span of the request, the headers on the wire, and the N+1 finding of
//! the gRPC handler's query loop. And the same request in a trace the user did not sample: no
//! span anywhere, the trace and the request id still forwarded hop by hop.

use integration_tests::chain::{
    AUTHOR_ID, COMMENT_COUNT_SQL, COMMENT_COUNTS_METHOD, POSTS, POSTS_SQL, Shop,
};
use integration_tests::span_lookup::{
    MODULE_ATTRIBUTE, all, assert_child_of, one, summary, text_attr, workspace_spans,
};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use otel_core::attributes::{self, semconv::attribute as sc};
use otel_core::testing::TestTelemetry;

/// The trace the "user" continues, and the span id of the user's own (remote) span.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const USER_SPAN_ID: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "e2e-req-7";

/// The spans of one dashboard request, by role.
struct Tree {
    gateway: SpanData,
    retry: SpanData,
    /// The reqwest CLIENT spans, first attempt first.
    attempts: [SpanData; 2],
    /// The backend SERVER spans, in the order of `attempts`.
    backends: [SpanData; 2],
    grpc_client: SpanData,
    grpc_server: SpanData,
    select_posts: SpanData,
    select_comments: Vec<SpanData>,
    all: Vec<SpanData>,
}

/// Runs one request with `propagators` configured on every layer; the user sends
/// `parent_header` (the trace to continue, in the configured format) and `x-request-id`.
/// Returns the spans and the gateway's response body.
async fn dashboard(
    propagators: &str,
    parent_header: (&str, String),
) -> (TestTelemetry, Tree, String) {
    let telemetry = TestTelemetry::new();
    let shop = Shop::start(propagators, telemetry.meter_provider()).await;
    shop.fail_backend_calls(1);

    let response = reqwest::Client::new()
        .get(shop.dashboard_url())
        .header("x-request-id", REQUEST_ID)
        .header(parent_header.0, parent_header.1)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-request-id"],
        REQUEST_ID,
        "request id echoed"
    );
    let body = response.text().await.expect("body");
    assert_eq!(shop.backend_calls(), 2, "one 503, one retry");

    let (spans, others) = workspace_spans(&telemetry.spans());
    let foreign: Vec<_> = others
        .iter()
        .filter(|s| !text_attr(s, MODULE_ATTRIBUTE).is_some_and(|m| m.starts_with("h2::")))
        .map(|s| (s.name.to_string(), text_attr(s, MODULE_ATTRIBUTE)))
        .collect();
    assert!(
        foreign.is_empty(),
        "spans from outside the workspace and h2: {foreign:?}"
    );
    let http_client = all(&spans, "GET /posts/{author}", SpanKind::Client);
    let http_server = all(&spans, "GET /posts/{author}", SpanKind::Server);
    assert_eq!(http_client.len(), 2, "{:?}", summary(&spans));
    assert_eq!(http_server.len(), 2, "{:?}", summary(&spans));
    // Order the attempts by `http.request.resend_count` (absent on the first), and each
    // backend span by the attempt it is the child of.
    let (first, second): (Vec<_>, Vec<_>) = http_client
        .into_iter()
        .partition(|s| text_attr(s, sc::HTTP_REQUEST_RESEND_COUNT).is_none());
    let attempts = [first[0].clone(), second[0].clone()];
    let backend_of = |attempt: &SpanData| {
        http_server
            .iter()
            .find(|s| s.parent_span_id == attempt.span_context.span_id())
            .unwrap_or_else(|| {
                panic!(
                    "no backend span under attempt {}",
                    attempt.span_context.span_id()
                )
            })
            .clone()
    };
    let backends = [backend_of(&attempts[0]), backend_of(&attempts[1])];
    let tree = Tree {
        gateway: one(&spans, "GET /dashboard", SpanKind::Server),
        retry: one(&spans, "retry GET", SpanKind::Internal),
        attempts,
        backends,
        grpc_client: one(&spans, COMMENT_COUNTS_METHOD, SpanKind::Client),
        grpc_server: one(&spans, COMMENT_COUNTS_METHOD, SpanKind::Server),
        select_posts: one(&spans, "SELECT posts", SpanKind::Client),
        select_comments: all(&spans, "SELECT comments", SpanKind::Client),
        all: spans,
    };
    (telemetry, tree, body)
}

/// What every configuration must show: one trace continuing the user's, each hop the child
/// of the hop that called it, the attributes of each layer, and the request id.
fn check_tree(tree: &Tree) {
    // 1 gateway + 1 retry + 2 attempts + 2 backend + 2 gRPC + 1 + N queries, nothing else.
    assert_eq!(
        tree.all.len(),
        8 + 1 + POSTS as usize,
        "{:?}",
        summary(&tree.all)
    );
    assert_eq!(tree.select_comments.len(), POSTS as usize);
    for span in &tree.all {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            TRACE_ID,
            "{} {:?} in the user's trace",
            span.name,
            span.span_kind
        );
        assert!(span.span_context.is_sampled(), "{}", span.name);
    }

    // Parent links, hop by hop.
    assert_eq!(tree.gateway.parent_span_id.to_string(), USER_SPAN_ID);
    assert!(tree.gateway.parent_span_is_remote);
    assert_child_of(&tree.retry, &tree.gateway);
    // The retry span opens when the first attempt fails: the first attempt is its sibling
    // under the gateway, the retry its child.
    assert_child_of(&tree.attempts[0], &tree.gateway);
    assert_child_of(&tree.attempts[1], &tree.retry);
    for (attempt, backend) in tree.attempts.iter().zip(&tree.backends) {
        assert_child_of(backend, attempt);
        assert!(backend.parent_span_is_remote);
    }
    assert_child_of(&tree.grpc_client, &tree.backends[1]);
    assert_child_of(&tree.grpc_server, &tree.grpc_client);
    assert!(tree.grpc_server.parent_span_is_remote);
    assert_child_of(&tree.select_posts, &tree.grpc_server);
    for query in &tree.select_comments {
        assert_child_of(query, &tree.grpc_server);
    }

    // The gateway.
    let g = &tree.gateway;
    assert_eq!(
        text_attr(g, sc::HTTP_REQUEST_METHOD).as_deref(),
        Some("GET")
    );
    assert_eq!(text_attr(g, sc::HTTP_ROUTE).as_deref(), Some("/dashboard"));
    assert_eq!(
        text_attr(g, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("200")
    );
    assert_eq!(g.status, Status::Unset);

    // The retry span of the logical call (both attempts counted).
    let r = &tree.retry;
    assert_eq!(
        text_attr(r, attributes::RETRY_ATTEMPTS).as_deref(),
        Some("2")
    );
    assert_eq!(
        text_attr(r, attributes::RETRY_MAX_ATTEMPTS).as_deref(),
        Some("3")
    );
    assert_eq!(
        text_attr(r, attributes::RETRY_BUDGET_EXHAUSTED).as_deref(),
        Some("false")
    );
    let retry_events: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.name == attributes::RETRY_ATTEMPT_EVENT)
        .collect();
    assert_eq!(retry_events.len(), 1, "one retry: {:?}", r.events);
    let reason = retry_events[0]
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == attributes::RETRY_REASON)
        .map(|kv| kv.value.as_str().into_owned());
    assert_eq!(reason.as_deref(), Some("503"));

    // The attempts: the first failed with 503, the second is a resend that succeeded; the
    // breaker (closed) is visible on both.
    let [a1, a2] = &tree.attempts;
    assert_eq!(
        text_attr(a1, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("503")
    );
    assert_eq!(text_attr(a1, sc::ERROR_TYPE).as_deref(), Some("503"));
    assert!(matches!(a1.status, Status::Error { .. }), "{:?}", a1.status);
    assert_eq!(
        text_attr(a2, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("200")
    );
    assert_eq!(
        text_attr(a2, sc::HTTP_REQUEST_RESEND_COUNT).as_deref(),
        Some("1")
    );
    assert_eq!(a2.status, Status::Unset);
    for attempt in [a1, a2] {
        assert_eq!(
            text_attr(attempt, sc::URL_TEMPLATE).as_deref(),
            Some("/posts/{author}")
        );
        assert_eq!(
            text_attr(attempt, attributes::CIRCUIT_BREAKER_STATE).as_deref(),
            Some("closed")
        );
    }

    // The backend: a 5xx server span is an error, the retried one is not.
    let [b1, b2] = &tree.backends;
    assert_eq!(
        text_attr(b1, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("503")
    );
    assert!(matches!(b1.status, Status::Error { .. }), "{:?}", b1.status);
    assert_eq!(
        text_attr(b2, sc::HTTP_RESPONSE_STATUS_CODE).as_deref(),
        Some("200")
    );
    assert_eq!(
        text_attr(b2, sc::HTTP_ROUTE).as_deref(),
        Some("/posts/{author}")
    );
    assert_eq!(
        text_attr(b2, sc::URL_PATH).as_deref(),
        Some(format!("/posts/{AUTHOR_ID}").as_str())
    );

    // gRPC, both sides.
    for span in [&tree.grpc_client, &tree.grpc_server] {
        assert_eq!(
            text_attr(span, sc::RPC_SYSTEM_NAME).as_deref(),
            Some("grpc")
        );
        assert_eq!(
            text_attr(span, sc::RPC_METHOD).as_deref(),
            Some(COMMENT_COUNTS_METHOD)
        );
        assert_eq!(
            text_attr(span, sc::RPC_RESPONSE_STATUS_CODE).as_deref(),
            Some("OK")
        );
        assert_eq!(span.status, Status::Unset);
    }

    // The queries.
    let q = &tree.select_posts;
    assert_eq!(text_attr(q, sc::DB_SYSTEM_NAME).as_deref(), Some("sqlite"));
    assert_eq!(text_attr(q, sc::DB_QUERY_TEXT).as_deref(), Some(POSTS_SQL));
    for query in &tree.select_comments {
        assert_eq!(
            text_attr(query, sc::DB_QUERY_TEXT).as_deref(),
            Some(COMMENT_COUNT_SQL)
        );
        assert_eq!(
            text_attr(query, sc::DB_COLLECTION_NAME).as_deref(),
            Some("comments")
        );
        assert_eq!(
            text_attr(query, sc::DB_RESPONSE_RETURNED_ROWS).as_deref(),
            Some("1")
        );
    }
    assert!(
        tree.select_posts.start_time <= tree.select_comments[0].start_time,
        "the 1 before the N"
    );

    // The request id the user sent, on every span of the request.
    for span in [
        &tree.gateway,
        &tree.retry,
        &tree.select_posts,
        &tree.attempts[0],
        &tree.attempts[1],
        &tree.backends[0],
        &tree.backends[1],
        &tree.grpc_client,
        &tree.grpc_server,
    ]
    .into_iter()
    .chain(&tree.select_comments)
    {
        assert_eq!(
            text_attr(span, attributes::REQUEST_ID).as_deref(),
            Some(REQUEST_ID),
            "request.id on {} {:?}",
            span.name,
            span.span_kind
        );
    }
}

/// The N+1 finding of the loop in the gRPC handler: `n_plus_one.detected` with the repeated
/// shape, its count and the sqlx fix.
fn check_n_plus_one(telemetry: &TestTelemetry, tree: &Tree) {
    let with_finding: Vec<&SpanData> = tree
        .all
        .iter()
        .filter(|s| {
            s.events
                .iter()
                .any(|e| e.name == attributes::N_PLUS_ONE_EVENT)
        })
        .collect();
    assert_eq!(
        with_finding
            .iter()
            .map(|s| (&s.name, &s.span_kind))
            .collect::<Vec<_>>(),
        [(&tree.grpc_server.name, &SpanKind::Server)],
        "the finding is on the gRPC server span, the scope of the handler's queries"
    );
    let event = with_finding[0]
        .events
        .iter()
        .find(|e| e.name == attributes::N_PLUS_ONE_EVENT)
        .expect("event");
    let event_attr = |key: &str| {
        event
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    };
    assert_eq!(
        event_attr(attributes::N_PLUS_ONE_KIND).as_deref(),
        Some("n_plus_one")
    );
    assert_eq!(
        event_attr(attributes::N_PLUS_ONE_SHAPE).as_deref(),
        Some(COMMENT_COUNT_SQL)
    );
    assert_eq!(
        event_attr(attributes::N_PLUS_ONE_COUNT).as_deref(),
        Some(POSTS.to_string().as_str())
    );
    let suggestion = event_attr(attributes::N_PLUS_ONE_SUGGESTION).unwrap_or_default();
    assert!(suggestion.contains("QueryBuilder"), "{suggestion}");
    // The largest (here the only) finding also names the problem on the span itself.
    let scope = &tree.grpc_server;
    assert_eq!(
        text_attr(scope, attributes::N_PLUS_ONE_FINDINGS).as_deref(),
        Some("1")
    );
    assert_eq!(
        text_attr(scope, attributes::N_PLUS_ONE_KIND).as_deref(),
        Some("n_plus_one")
    );
    assert_eq!(
        text_attr(scope, attributes::N_PLUS_ONE_COUNT).as_deref(),
        Some(POSTS.to_string().as_str())
    );
    assert_eq!(
        text_attr(scope, attributes::N_PLUS_ONE_SHAPE).as_deref(),
        Some(COMMENT_COUNT_SQL)
    );

    // The warning logged when the threshold is crossed names the request and the trace.
    let logs = telemetry.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("otel_core::n_plus_one: detected: N+1"))
        .unwrap_or_else(|| panic!("no N+1 warning in the logs:\n{logs}"));
    assert!(
        warning.contains(&format!("request_id={REQUEST_ID}")),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("trace_id={TRACE_ID}")),
        "{warning}"
    );
}

/// Every log line written inside the request's trace names its request id.
fn check_log_lines(telemetry: &TestTelemetry) {
    let logs = telemetry.logs();
    let in_trace: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&format!("trace_id={TRACE_ID}")))
        .collect();
    assert!(in_trace.len() > 3, "log lines of the request:\n{logs}");
    for line in in_trace {
        assert!(
            line.contains(&format!("request_id={REQUEST_ID}")),
            "a log line of the request without its id: {line}"
        );
    }
}

#[tokio::test]
async fn w3c_chain_is_one_trace_from_gateway_to_database() {
    let (telemetry, tree, body) = dashboard(
        "tracecontext",
        ("traceparent", format!("00-{TRACE_ID}-{USER_SPAN_ID}-01")),
    )
    .await;
    check_tree(&tree);
    check_n_plus_one(&telemetry, &tree);
    check_log_lines(&telemetry);
    // On the wire: `traceparent` only, naming the span that sent each hop.
    assert_eq!(
        body,
        format!(
            "traceparent=00-{TRACE_ID}-{}-01\nb3=-\nx-request-id={REQUEST_ID}\n\
             traceparent=00-{TRACE_ID}-{}-01\nb3=-\nx-request-id={REQUEST_ID}\n\
             comments=1,2,3,4,5,6",
            tree.attempts[1].span_context.span_id(),
            tree.grpc_client.span_context.span_id(),
        )
    );
}

#[tokio::test]
async fn b3_chain_is_one_trace_from_gateway_to_database() {
    let (telemetry, tree, body) =
        dashboard("b3", ("b3", format!("{TRACE_ID}-{USER_SPAN_ID}-1"))).await;
    check_tree(&tree);
    check_n_plus_one(&telemetry, &tree);
    check_log_lines(&telemetry);
    // On the wire: single-header `b3` only.
    assert_eq!(
        body,
        format!(
            "traceparent=-\nb3={TRACE_ID}-{}-1\nx-request-id={REQUEST_ID}\n\
             traceparent=-\nb3={TRACE_ID}-{}-1\nx-request-id={REQUEST_ID}\n\
             comments=1,2,3,4,5,6",
            tree.attempts[1].span_context.span_id(),
            tree.grpc_client.span_context.span_id(),
        )
    );
}

/// An unsampled trace (the user's parent says "not sampled"): sampling is decided before any
/// span is built, so no hop records a span, yet every hop still forwards the trace — flag
/// `00`, the user's trace id — and the request id, and the retry still happens.
async fn unsampled(propagators: &str, parent_header: (&str, String), wire: fn(&str) -> bool) {
    let telemetry = TestTelemetry::new();
    let shop = Shop::start(propagators, telemetry.meter_provider()).await;
    shop.fail_backend_calls(1);
    let response = reqwest::Client::new()
        .get(shop.dashboard_url())
        .header("x-request-id", REQUEST_ID)
        .header(parent_header.0, parent_header.1)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("body");
    assert_eq!(shop.backend_calls(), 2, "one 503, one retry");

    let (spans, _transport) = workspace_spans(&telemetry.spans());
    assert_eq!(summary(&spans), [], "no span of an unsampled trace");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 7, "{body}");
    // What reached the backend (lines 0..3) and the gRPC handler (lines 3..6).
    for hop in [&lines[0..3], &lines[3..6]] {
        // The configured format only: the other propagation header is absent.
        let forwarded = hop[0..2].iter().filter(|l| wire(l)).count();
        let absent = hop[0..2].iter().filter(|l| l.ends_with("=-")).count();
        assert_eq!(
            (forwarded, absent),
            (1, 1),
            "the trace is forwarded: {body}"
        );
        assert_eq!(hop[2], format!("x-request-id={REQUEST_ID}"), "{body}");
    }
    assert_eq!(lines[6], "comments=1,2,3,4,5,6");
}

/// `traceparent=00-{TRACE_ID}-{16 hex digits}-00`.
fn unsampled_traceparent(line: &str) -> bool {
    line.strip_prefix(&format!("traceparent=00-{TRACE_ID}-"))
        .and_then(|rest| rest.strip_suffix("-00"))
        .is_some_and(|span| span.len() == 16 && span.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `b3={TRACE_ID}-{16 hex digits}-0`.
fn unsampled_b3(line: &str) -> bool {
    line.strip_prefix(&format!("b3={TRACE_ID}-"))
        .and_then(|rest| rest.strip_suffix("-0"))
        .is_some_and(|span| span.len() == 16 && span.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn unsampled_w3c_chain_builds_no_span_and_still_forwards_the_trace() {
    unsampled(
        "tracecontext",
        ("traceparent", format!("00-{TRACE_ID}-{USER_SPAN_ID}-00")),
        unsampled_traceparent,
    )
    .await;
}

#[tokio::test]
async fn unsampled_b3_chain_builds_no_span_and_still_forwards_the_trace() {
    unsampled(
        "b3",
        ("b3", format!("{TRACE_ID}-{USER_SPAN_ID}-0")),
        unsampled_b3,
    )
    .await;
}
