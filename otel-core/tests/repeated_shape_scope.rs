//! The repeated-shape (N+1) detector seen from outside: findings on the scope span (event and
//! attributes with exact names and values), the log line, the metric, the modes and the caps.
//!
//! Every test uses `Scope::with_config` / `capture_with`, so none depends on (or changes) the
//! process-wide configuration.

use std::future::Future;
use std::panic::{AssertUnwindSafe, Location};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::context::FutureExt as _;
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::SpanData;
use otel_core::attributes::{
    N_PLUS_ONE_CALL_SITE, N_PLUS_ONE_COUNT, N_PLUS_ONE_EVENT, N_PLUS_ONE_FINDINGS, N_PLUS_ONE_KIND,
    N_PLUS_ONE_SHAPE, N_PLUS_ONE_SOURCE, N_PLUS_ONE_SUGGESTION, N_PLUS_ONE_TOTAL_DURATION_MS,
};
use otel_core::repeated_shape::{
    self, DetectorConfig, DetectorConfigBuilder, Finding, FindingKind, Mode, Observation, Scope,
    ShapeKind,
};
use otel_core::testing::TestTelemetry;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const POSTS: &str = "SELECT * FROM posts ORDER BY id DESC LIMIT ?";
const COMMENTS: &str = "SELECT * FROM comments WHERE post_id = ?";
const FIX: &str = "WHERE post_id = ANY($1)";

#[tokio::test]
async fn fifty_repeats_are_one_n_plus_one_with_count_50_on_the_scope_span() {
    let telemetry = TestTelemetry::new();
    let config = warn()
        .meter_provider(telemetry.meter_provider())
        .build()
        .unwrap();
    let t0 = Instant::now();
    let call_site = in_request("GET /dashboard", config, async move {
        query(POSTS, ShapeKind::Read, t0, 5, None);
        let mut call_site = None;
        for i in 0..50 {
            call_site = Some(query(
                COMMENTS,
                ShapeKind::Read,
                t0 + ms(10 + 3 * i),
                2,
                Some(i),
            ));
        }
        call_site.unwrap()
    })
    .await;

    let span = telemetry.span("GET /dashboard");
    let events = n_plus_one_events(&span);
    assert_eq!(events.len(), 1, "one finding, reported once");
    let expected = [
        (N_PLUS_ONE_KIND, Value::from("n_plus_one")),
        (N_PLUS_ONE_SHAPE, Value::from(COMMENTS)),
        (N_PLUS_ONE_COUNT, Value::I64(50)),
        (N_PLUS_ONE_TOTAL_DURATION_MS, Value::F64(100.0)),
        (N_PLUS_ONE_CALL_SITE, Value::from(call_site.to_string())),
        (N_PLUS_ONE_SOURCE, Value::from(POSTS)),
        (N_PLUS_ONE_SUGGESTION, Value::from(FIX)),
    ];
    for (key, value) in &expected {
        assert_eq!(
            TestTelemetry::event_attr(&events[0], key).as_ref(),
            Some(value),
            "event {key}"
        );
        assert_eq!(
            TestTelemetry::attr(&span, key).as_ref(),
            Some(value),
            "span {key}"
        );
    }
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_FINDINGS),
        Some(Value::I64(1))
    );

    let logs = telemetry.logs();
    assert!(logs.contains(" WARN "), "{logs}");
    assert!(
        logs.contains("otel_core::n_plus_one: detected: N+1 (n_plus_one)"),
        "{logs}"
    );
    assert!(
        logs.contains("ran 5 times"),
        "warned at the threshold: {logs}"
    );
    assert!(logs.contains("final count: N+1 (n_plus_one)"), "{logs}");
    let final_line = logs
        .lines()
        .find(|line| line.contains("final count"))
        .unwrap();
    assert!(
        final_line.contains(&format!("trace_id={}", span.span_context.trace_id())),
        "the final-count line is logged inside the request: {final_line}"
    );
    assert!(
        logs.contains("ran 50 times"),
        "warned again with the final count: {logs}"
    );
    assert_eq!(logs.matches("detected: ").count(), 1, "{logs}");

    assert_eq!(
        telemetry.u64_counter_by(N_PLUS_ONE_FINDINGS, N_PLUS_ONE_KIND),
        vec![("n_plus_one".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_loop_over_an_instrumented_function_counts_together() {
    #[tracing::instrument]
    async fn enrich_post(post_id: u64, t0: Instant) {
        // what a SQL wrapper does: one span per query, the detector told from inside it
        let span = tracing::info_span!("SELECT comments");
        span.in_scope(|| {
            query(
                COMMENTS,
                ShapeKind::Read,
                t0 + ms(4 * post_id),
                1,
                Some(post_id),
            )
        });
    }

    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("GET /dashboard", warn().build().unwrap(), async move {
        query(POSTS, ShapeKind::Read, t0, 1, None);
        for post_id in 1..=50 {
            enrich_post(post_id, t0).await;
        }
    })
    .await;

    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].kind, FindingKind::NPlusOne);
    assert_eq!(findings[0].count, 50);
    assert_eq!(findings[0].source.as_deref(), Some(POSTS));
    assert_eq!(findings[0].scope_name.as_deref(), Some("GET /dashboard"));
    let span = telemetry.span("GET /dashboard");
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_COUNT),
        Some(Value::I64(50))
    );
    assert_eq!(telemetry.spans_named("enrich_post").len(), 50);
}

#[tokio::test]
async fn the_same_shape_under_different_issuing_spans_counts_separately() {
    #[tracing::instrument(skip_all)]
    fn load_author(t0: Instant) {
        tracing::info_span!("SELECT users").in_scope(|| {
            query(
                "SELECT * FROM users WHERE id = ?",
                ShapeKind::Read,
                t0,
                1,
                None,
            )
        });
    }
    #[tracing::instrument(skip_all)]
    fn load_reviewer(t0: Instant) {
        tracing::info_span!("SELECT users").in_scope(|| {
            query(
                "SELECT * FROM users WHERE id = ?",
                ShapeKind::Read,
                t0,
                1,
                None,
            )
        });
    }

    let _telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("GET /review", warn().build().unwrap(), async move {
        for i in 0..4 {
            load_author(t0 + ms(10 * i));
            load_reviewer(t0 + ms(10 * i + 5));
        }
    })
    .await;
    assert_eq!(
        findings,
        vec![],
        "4 + 4 under two different functions: below 5 each"
    );
}

#[tokio::test]
async fn an_operation_reported_from_its_own_span_without_entering_it() {
    #[tracing::instrument(skip_all)]
    async fn enrich_post(post_id: u64, t0: Instant) {
        // what otel-sql does: one span per query, never entered; reported from the span
        let span = tracing::info_span!("SELECT comments");
        repeated_shape::observe_in_span(
            &span,
            &observation(
                COMMENTS,
                ShapeKind::Read,
                t0 + ms(4 * post_id),
                1,
                Some(post_id),
            ),
        );
    }
    #[tracing::instrument(skip_all)]
    fn load_reviewer(t0: Instant, id: u64) {
        let span = tracing::info_span!("SELECT comments");
        repeated_shape::observe_in_span(
            &span,
            &observation(COMMENTS, ShapeKind::Read, t0, 1, Some(id)),
        );
    }

    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("GET /dashboard", warn().build().unwrap(), async move {
        // issued by the request span itself: grouped apart from the loop below
        for i in 0..4 {
            let span = tracing::info_span!("SELECT comments");
            repeated_shape::observe_in_span(
                &span,
                &observation(COMMENTS, ShapeKind::Read, t0 + ms(i), 1, Some(100 + i)),
            );
        }
        for post_id in 1..=50 {
            enrich_post(post_id, t0).await;
        }
        for id in 0..4 {
            load_reviewer(t0, id);
        }
    })
    .await;

    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].kind, FindingKind::NPlusOne);
    assert_eq!(findings[0].count, 50, "grouped by the span's parent");
    let site = findings[0].call_site.as_deref().unwrap_or_default();
    assert!(site.starts_with("enrich_post ("), "{site}");
    // The warning at the threshold is logged inside the operation's span, as if it had been
    // entered: it is an event of the fifth query span, and of no other span.
    let with_warning: Vec<SpanData> = telemetry
        .spans()
        .into_iter()
        .filter(|s| s.events.iter().any(|e| e.name.contains("detected: ")))
        .collect();
    assert_eq!(
        with_warning
            .iter()
            .map(|s| s.name.as_ref())
            .collect::<Vec<_>>(),
        ["SELECT comments"]
    );
    let span = telemetry.span("GET /dashboard");
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_COUNT),
        Some(Value::I64(50))
    );
}

#[tokio::test]
async fn observe_in_span_finds_the_scope_of_the_span_when_the_current_context_has_none() {
    let _telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let scope = Scope::with_config(tracing::Span::none(), warn().build().unwrap());
    // The spans are created under the scope's context, reported outside of it (e.g. a
    // stream dropped after the request's future returned).
    let spans: Vec<tracing::Span> = {
        let _cx = Context::new().with_value(scope.clone()).attach();
        (0..5)
            .map(|_| tracing::info_span!("SELECT comments"))
            .collect()
    };
    for (i, span) in spans.iter().enumerate() {
        repeated_shape::observe_in_span(
            span,
            &observation(COMMENTS, ShapeKind::Read, t0 + ms(3 * i as u64), 1, None),
        );
    }
    let findings = scope.findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].count, 5);
}

#[tokio::test]
async fn observe_in_span_with_a_disabled_span_is_observe_from_the_current_context() {
    let _telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("GET /unsampled", warn().build().unwrap(), async move {
        for i in 0..5 {
            repeated_shape::observe_in_span(
                &tracing::Span::none(),
                &observation(COMMENTS, ShapeKind::Read, t0 + ms(3 * i), 1, Some(i)),
            );
        }
    })
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].count, 5);
}

#[tokio::test]
async fn five_different_shapes_are_not_flagged() {
    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("GET /profile", warn().build().unwrap(), async move {
        for (i, table) in ["users", "posts", "comments", "likes", "follows"]
            .iter()
            .enumerate()
        {
            let shape = format!("SELECT * FROM {table} WHERE user_id = ?");
            query(&shape, ShapeKind::Read, t0 + ms(10 * i as u64), 1, Some(1));
        }
        // and one shape 4 times: under the threshold of 5
        for i in 0..4 {
            query(COMMENTS, ShapeKind::Read, t0 + ms(100 + 10 * i), 1, Some(i));
        }
    })
    .await;

    assert_eq!(findings, vec![]);
    let span = telemetry.span("GET /profile");
    assert!(n_plus_one_events(&span).is_empty());
    assert_eq!(TestTelemetry::attr(&span, N_PLUS_ONE_COUNT), None);
    assert_eq!(TestTelemetry::attr(&span, N_PLUS_ONE_FINDINGS), None);
    assert!(!telemetry.logs().contains("otel_core::n_plus_one"));
}

#[tokio::test]
async fn the_same_values_three_times_is_a_duplicate() {
    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("GET /cart", warn().build().unwrap(), async move {
        query(
            "SELECT * FROM carts WHERE id = ?",
            ShapeKind::Read,
            t0,
            1,
            Some(7),
        );
        query(
            "SELECT * FROM carts WHERE id = ?",
            ShapeKind::Read,
            t0 + ms(10),
            1,
            Some(8),
        );
        query(
            "SELECT * FROM carts WHERE id = ?",
            ShapeKind::Read,
            t0 + ms(20),
            3,
            Some(7),
        );
        query(
            "SELECT * FROM carts WHERE id = ?",
            ShapeKind::Read,
            t0 + ms(30),
            4,
            Some(7),
        );
    })
    .await;

    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].kind, FindingKind::Duplicate);
    assert_eq!(findings[0].count, 3, "only the runs with the same values");
    assert_eq!(findings[0].total_duration, ms(8));
    let span = telemetry.span("GET /cart");
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_KIND),
        Some(Value::from("duplicate"))
    );
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_COUNT),
        Some(Value::I64(3))
    );
}

#[tokio::test]
async fn overlapping_repeats_are_a_fan_out() {
    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("GET /feed", warn().build().unwrap(), async move {
        // join_all of 8 HTTP calls: all start within 1 ms, each takes 20 ms
        for i in 0..8 {
            let shape = "GET api.example.com/users/{id}";
            query(
                shape,
                ShapeKind::HttpCall,
                t0 + Duration::from_micros(100 * i),
                20,
                Some(i),
            );
        }
    })
    .await;

    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].kind, FindingKind::FanOut);
    assert_eq!(findings[0].count, 8);
    let span = telemetry.span("GET /feed");
    let events = n_plus_one_events(&span);
    assert_eq!(
        TestTelemetry::event_attr(&events[0], N_PLUS_ONE_KIND),
        Some(Value::from("fan_out"))
    );
}

#[tokio::test]
async fn repeated_writes_are_an_unbatched_write() {
    let _telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let findings = in_request_findings("POST /import", warn().build().unwrap(), async move {
        for i in 0..20 {
            let shape = "INSERT INTO items (name, price) VALUES (?, ?)";
            query(shape, ShapeKind::Write, t0 + ms(5 * i), 1, Some(i));
        }
    })
    .await;

    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].kind, FindingKind::UnbatchedWrite);
    assert_eq!(findings[0].count, 20);
}

#[tokio::test]
async fn ignored_kinds_allowlisted_shapes_and_ignore_scopes_never_count() {
    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let config = warn().allow("FROM feature_flags").build().unwrap();
    let findings = in_request_findings("GET /health", config, async move {
        for i in 0..10 {
            query("SELECT ?", ShapeKind::Ignored, t0 + ms(i), 1, Some(1));
            query("BEGIN", ShapeKind::Ignored, t0 + ms(i), 1, Some(1));
            query(
                "SELECT * FROM feature_flags WHERE name = ?",
                ShapeKind::Read,
                t0 + ms(i),
                1,
                Some(1),
            );
        }
    })
    .await;
    assert_eq!(findings, vec![]);

    // an `ignore` scope inside a counting request: nothing inside it counts
    let outer = Scope::with_config(tracing::Span::none(), warn().build().unwrap());
    let inner_cx = Context::new()
        .with_value(outer.clone())
        .with_value(Scope::ignore());
    assert!(inner_cx.get::<Scope>().unwrap().is_ignore());
    for i in 0..10 {
        repeated_shape::observe(
            &inner_cx,
            &observation(COMMENTS, ShapeKind::Read, t0 + ms(i), 1, Some(1)),
        );
    }
    assert_eq!(outer.findings(), vec![]);
    assert_eq!(outer.tracked_shapes(), 0);
    assert!(!telemetry.logs().contains("otel_core::n_plus_one"));
}

#[test]
fn panic_mode_panics_with_shape_count_call_site_and_fix() {
    let scope = Scope::with_config(tracing::Span::none(), panic_config());
    let cx = Context::new().with_value(scope.clone());
    let t0 = Instant::now();
    let mut call_site = None;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        for i in 0..10 {
            let obs = Observation {
                call_site: Some(Location::caller()),
                suggestion: Some(FIX),
                ..observation(COMMENTS, ShapeKind::Read, t0 + ms(3 * i), 1, Some(i))
            };
            call_site = obs.call_site;
            repeated_shape::observe(&cx, &obs);
        }
    }));
    let message = *result
        .expect_err("the 5th repeat panics")
        .downcast::<String>()
        .unwrap();
    assert!(message.contains(COMMENTS), "{message}");
    assert!(message.contains("ran 5 times"), "{message}");
    assert!(
        message.contains(&call_site.unwrap().to_string()),
        "{message}"
    );
    assert!(message.contains(&format!("fix: {FIX}")), "{message}");
    assert_eq!(
        scope.findings().len(),
        1,
        "the scope stays usable after the panic"
    );
}

#[test]
#[should_panic(expected = "`SELECT * FROM comments WHERE post_id = ?` ran 5 times")]
fn panic_mode_fails_a_test_that_runs_an_n_plus_one() {
    let cx = Context::new().with_value(Scope::with_config(tracing::Span::none(), panic_config()));
    let t0 = Instant::now();
    for i in 0..5 {
        repeated_shape::observe(
            &cx,
            &observation(COMMENTS, ShapeKind::Read, t0 + ms(3 * i), 1, Some(i)),
        );
    }
}

#[test]
fn callback_mode_sees_each_finding_once_at_its_threshold() {
    let seen: Arc<Mutex<Vec<Finding>>> = Arc::default();
    let sink = seen.clone();
    let config = DetectorConfig::builder()
        .mode(Mode::Callback(Arc::new(move |f: &Finding| {
            sink.lock().unwrap().push(f.clone())
        })))
        .build()
        .unwrap();
    let scope = Scope::with_config(tracing::Span::none(), config);
    let cx = Context::new().with_value(scope.clone());
    let t0 = Instant::now();
    for i in 0..12 {
        repeated_shape::observe(
            &cx,
            &observation(COMMENTS, ShapeKind::Read, t0 + ms(3 * i), 1, Some(i)),
        );
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].kind, seen[0].count), (FindingKind::NPlusOne, 5));
    assert_eq!(scope.findings()[0].count, 12, "the scope keeps counting");
}

#[test]
fn a_scope_with_10000_distinct_shapes_stays_bounded() {
    let scope = Scope::with_config(
        tracing::Span::none(),
        warn().max_shape_len(64).build().unwrap(),
    );
    let cx = Context::new().with_value(scope.clone());
    let t0 = Instant::now();
    for i in 0..10_000u64 {
        let shape = format!(
            "SELECT * FROM t{i} WHERE id = ? {}",
            "AND x = ? ".repeat(100)
        );
        repeated_shape::observe(&cx, &observation(&shape, ShapeKind::Read, t0, 1, Some(i)));
    }
    assert_eq!(scope.tracked_shapes(), 256);
    assert_eq!(scope.untracked_observations(), 10_000 - 256);

    // repeats of a tracked shape still count; the stored shape is truncated to 64 bytes
    let long = format!("SELECT * FROM t0 WHERE id = ? {}", "AND x = ? ".repeat(100));
    for _ in 0..4 {
        repeated_shape::observe(&cx, &observation(&long, ShapeKind::Read, t0, 1, None));
    }
    let findings = scope.findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].count, 5);
    assert_eq!(findings[0].shape, long[..64]);
}

#[tokio::test]
async fn capture_returns_the_findings_of_the_future() {
    let _telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let (answer, findings) = repeated_shape::capture_with(warn().build().unwrap(), async move {
        for i in 0..6 {
            query(COMMENTS, ShapeKind::Read, t0 + ms(3 * i), 1, Some(i));
        }
        42
    })
    .await;
    assert_eq!(answer, 42);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].kind, findings[0].count),
        (FindingKind::NPlusOne, 6)
    );
    assert_eq!(findings[0].scope_name, None);

    let ((), none) = repeated_shape::capture(async move {
        query(COMMENTS, ShapeKind::Read, t0, 1, Some(1));
    })
    .await;
    assert_eq!(none, vec![]);
}

#[tokio::test]
async fn a_spawned_task_carrying_the_context_counts_in_the_same_scope() {
    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    in_request("GET /dashboard", warn().build().unwrap(), async move {
        query(COMMENTS, ShapeKind::Read, t0, 1, Some(1));
        query(COMMENTS, ShapeKind::Read, t0 + ms(10), 1, Some(2));
        let task = tokio::spawn(
            async move {
                for i in 3..=5 {
                    query(COMMENTS, ShapeKind::Read, t0 + ms(10 * i), 1, Some(i));
                }
            }
            .with_current_context(),
        );
        task.await.unwrap();
    })
    .await;

    let span = telemetry.span("GET /dashboard");
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_KIND),
        Some(Value::from("n_plus_one"))
    );
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_COUNT),
        Some(Value::I64(5))
    );
}

#[test]
fn findings_are_made_at_most_once_per_scope_shape_and_kind() {
    let scope = Scope::with_config(tracing::Span::none(), warn().build().unwrap());
    let cx = Context::new().with_value(scope.clone());
    let t0 = Instant::now();
    for i in 0..30 {
        // same values every time: both an N+1 and a duplicate, each once
        repeated_shape::observe(
            &cx,
            &observation(COMMENTS, ShapeKind::Read, t0 + ms(3 * i), 1, Some(1)),
        );
    }
    let kinds: Vec<_> = scope.findings().iter().map(|f| (f.kind, f.count)).collect();
    assert_eq!(
        kinds,
        [(FindingKind::Duplicate, 30), (FindingKind::NPlusOne, 30)]
    );
}

#[tokio::test]
async fn finish_records_the_findings_and_lets_the_span_end_while_the_scope_lives_on() {
    let telemetry = TestTelemetry::new();
    let t0 = Instant::now();
    let span = tracing::info_span!("GET /export");
    let scope = Scope::with_config(span.clone(), warn().build().unwrap());
    let kept_by_a_background_task = scope.clone();
    let cx = span.context().with_value(scope);
    async move {
        for i in 0..7 {
            query(COMMENTS, ShapeKind::Read, t0 + ms(3 * i), 1, Some(i));
        }
    }
    .with_context(cx)
    .instrument(span)
    .await;
    assert!(
        telemetry.spans_named("GET /export").is_empty(),
        "the scope still holds the span"
    );

    kept_by_a_background_task.finish();
    let span = telemetry.span("GET /export");
    assert_eq!(
        TestTelemetry::attr(&span, N_PLUS_ONE_COUNT),
        Some(Value::I64(7))
    );
    assert_eq!(n_plus_one_events(&span).len(), 1);

    // still counting, no longer recording (and no second event when the scope drops)
    let background = Context::new().with_value(kept_by_a_background_task.clone());
    repeated_shape::observe(
        &background,
        &observation(COMMENTS, ShapeKind::Read, t0 + ms(100), 1, None),
    );
    drop(background);
    assert_eq!(kept_by_a_background_task.findings()[0].count, 8);
    drop(kept_by_a_background_task);
    assert_eq!(telemetry.spans_named("GET /export").len(), 1);
}

#[test]
fn observations_from_many_threads_count_exactly_once_each() {
    let scope = Scope::with_config(tracing::Span::none(), warn().build().unwrap());
    let t0 = Instant::now();
    std::thread::scope(|threads| {
        for thread in 0..8u64 {
            let cx = Context::new().with_value(scope.clone());
            threads.spawn(move || {
                for i in 0..100 {
                    let started = t0 + ms(1000 * thread + 3 * i);
                    repeated_shape::observe(
                        &cx,
                        &observation(
                            COMMENTS,
                            ShapeKind::Read,
                            started,
                            1,
                            Some(thread * 1000 + i),
                        ),
                    );
                }
            });
        }
    });
    let findings = scope.findings();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].count, 800);
    assert_eq!(findings[0].total_duration, ms(800));
}

// ---- helpers --------------------------------------------------------------------------------

fn warn() -> DetectorConfigBuilder {
    DetectorConfig::builder().mode(Mode::Warn)
}

fn panic_config() -> DetectorConfig {
    DetectorConfig::builder().mode(Mode::Panic).build().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `fut` the way a server layer runs a handler: inside the request span, with the
/// request's scope in the context; the scope (and the span) end when it returns.
async fn in_request<F: Future>(name: &'static str, config: DetectorConfig, fut: F) -> F::Output {
    let span = tracing::info_span!("request", otel.name = name);
    let cx = span
        .context()
        .with_value(Scope::with_config(span.clone(), config).named(name));
    fut.with_context(cx).instrument(span).await
}

/// Like [`in_request`], returning the scope's findings (read just before the scope ends).
async fn in_request_findings<F: Future<Output = ()>>(
    name: &'static str,
    config: DetectorConfig,
    fut: F,
) -> Vec<Finding> {
    in_request(name, config, async move {
        fut.await;
        opentelemetry::Context::map_current(|cx| cx.get::<Scope>().map(Scope::findings)).unwrap()
    })
    .await
}

/// Reports one operation from the current context, as a SQL wrapper would; returns its call
/// site.
#[track_caller]
fn query(
    shape: &str,
    kind: ShapeKind,
    started: Instant,
    duration_ms: u64,
    values: Option<u64>,
) -> &'static Location<'static> {
    let call_site = Location::caller();
    let obs = Observation {
        call_site: Some(call_site),
        suggestion: Some(FIX),
        ..observation(shape, kind, started, duration_ms, values)
    };
    repeated_shape::observe(&otel_core::context::current(), &obs);
    call_site
}

fn observation(
    shape: &str,
    kind: ShapeKind,
    started: Instant,
    duration_ms: u64,
    values: Option<u64>,
) -> Observation<'_> {
    Observation {
        shape,
        fingerprint: fingerprint(shape),
        kind,
        values_hash: values,
        started,
        duration: ms(duration_ms),
        call_site: None,
        suggestion: None,
    }
}

fn fingerprint(shape: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    shape.hash(&mut hasher);
    hasher.finish()
}

fn n_plus_one_events(span: &SpanData) -> Vec<opentelemetry::trace::Event> {
    span.events
        .iter()
        .filter(|e| e.name == N_PLUS_ONE_EVENT)
        .cloned()
        .collect()
}
