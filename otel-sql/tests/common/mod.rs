//! One behaviour suite, expanded per database by `db_suite!` (concrete types keep sqlx's
//! generic bounds out of the tests).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::trace::SpanData;
use otel_core::testing::TestTelemetry;

/// A table name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The one finished span named `name`, waiting (bounded, without sleeping) for it to end: a
/// parent span closes when its last child does, which may happen on sqlx-sqlite's worker
/// thread a moment after the query returned.
pub fn finished_span(telemetry: &TestTelemetry, name: &str) -> SpanData {
    for _ in 0..100_000 {
        if !telemetry.spans_named(name).is_empty() {
            break;
        }
        std::thread::yield_now();
    }
    telemetry.span(name)
}

pub fn s(span: &SpanData, key: &str) -> Option<String> {
    TestTelemetry::attr(span, key).map(|v| v.as_str().into_owned())
}

pub fn i(span: &SpanData, key: &str) -> Option<i64> {
    match TestTelemetry::attr(span, key) {
        Some(Value::I64(n)) => Some(n),
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

/// Data points (count, attributes) of the `db.client.operation.duration` histogram.
pub fn duration_points(metrics: &[ResourceMetrics]) -> Vec<(u64, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                if m.name() != "db.client.operation.duration" {
                    continue;
                }
                assert_eq!(m.unit(), "s");
                if let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() {
                    for dp in h.data_points() {
                        let attrs = dp
                            .attributes()
                            .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
                            .collect();
                        out.push((dp.count(), attrs));
                    }
                }
            }
        }
    }
    out
}

/// The URL in `var`, or `None` (test skipped, with a note) when it is unset. A set URL that
/// cannot be reached fails the test at connect time.
pub fn url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{var} not set: skipping");
            None
        }
    }
}

/// Expands the suite for one database.
///
/// - `connect`: async expression giving `TracedPool<DB>` from a `TestTelemetry` named `tt`
/// - `p`: `fn(usize) -> String` placeholder for argument n (1-based)
/// - `dup`: SQLSTATE / code of a primary-key violation
/// - `system`, `namespace`, `address`, `port`: expected endpoint attributes
/// - `batched`: async fn(pool, table, ids) running the one batched lookup
/// - `pause`: a predicate appended to a WHERE clause that keeps the server busy about a
///   millisecond (`""` where the driver always answers later than it asks)
#[macro_export]
macro_rules! db_suite {
    (
        db = $db:ty,
        connect = |$tt:ident| $connect:expr,
        p = $p:expr,
        dup = $dup:expr,
        system = $system:expr,
        namespace = $namespace:expr,
        address = $address:expr,
        port = $port:expr,
        batched = $batched:path,
        pause = $pause:expr $(,)?
    ) => {
        use futures_util::future::join_all;
        use otel_core::repeated_shape::FindingKind;
        use otel_core::testing::TestTelemetry;
        use opentelemetry::trace::{SpanKind, Status};
        use otel_sql::TracedPool;
        use sqlx::AssertSqlSafe;
        use tracing::{instrument, Instrument};
        use common::*;

        fn q(sql: String) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
            sqlx::query(AssertSqlSafe(sql))
        }

        async fn setup(pool: &TracedPool<$db>, prefix: &str, posts: i64, comments_per_post: i64) -> (String, String) {
            let posts_t = unique(prefix);
            let comments_t = format!("{posts_t}_c");
            q(format!("CREATE TABLE {posts_t} (id BIGINT PRIMARY KEY, title VARCHAR(100))")).execute(pool.inner()).await.unwrap();
            q(format!("CREATE TABLE {comments_t} (id BIGINT PRIMARY KEY, post_id BIGINT, body VARCHAR(100))")).execute(pool.inner()).await.unwrap();
            let mut next = 0;
            for post in 0..posts {
                q(format!("INSERT INTO {posts_t} (id, title) VALUES ({}, {})", $p(1), $p(2))).bind(post).bind(format!("post {post}")).execute(pool.inner()).await.unwrap();
                for _ in 0..comments_per_post {
                    q(format!("INSERT INTO {comments_t} (id, post_id, body) VALUES ({}, {}, {})", $p(1), $p(2), $p(3))).bind(next).bind(post).bind("hi").execute(pool.inner()).await.unwrap();
                    next += 1;
                }
            }
            (posts_t, comments_t)
        }

        #[tokio::test]
        async fn span_attributes_on_a_successful_query() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "attrs", 2, 0).await;
            $tt.reset();
            let sql = format!("SELECT id, title FROM {posts} WHERE id = {}", $p(1));
            let rows = q(sql.clone()).bind(1_i64).fetch_all(&pool).await.unwrap();
            assert_eq!(rows.len(), 1);

            let name = format!("SELECT {posts}");
            let span = $tt.span(&name);
            assert_eq!(span.span_kind, SpanKind::Client);
            assert_eq!(span.status, Status::Unset);
            assert_eq!(span.instrumentation_scope.name(), "otel-core-test");
            assert_eq!(s(&span, "db.system.name").as_deref(), Some($system));
            assert_eq!(s(&span, "db.namespace").as_deref(), Some($namespace));
            assert_eq!(s(&span, "db.query.summary"), Some(name.clone()));
            assert_eq!(s(&span, "db.query.text"), Some(sql), "parameterised text is kept as is");
            assert_eq!(s(&span, "db.operation.name").as_deref(), Some("SELECT"));
            assert_eq!(s(&span, "db.collection.name"), Some(posts.clone()));
            assert_eq!(i(&span, "db.response.returned_rows"), Some(1));
            assert_eq!(s(&span, "server.address").as_deref(), $address);
            assert_eq!(TestTelemetry::attr(&span, "server.port").map(|v| match v { opentelemetry::Value::I64(n) => n, _ => -1 }), $port);
            assert_eq!(s(&span, "error.type"), None);
            assert_eq!(s(&span, "db.response.status_code"), None);
        }

        #[tokio::test]
        async fn query_span_is_a_child_of_the_caller() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "child", 1, 0).await;
            $tt.reset();
            let handler = tracing::info_span!("handler");
            async {
                q(format!("SELECT id FROM {posts}")).fetch_all(&pool).await.unwrap();
            }
            .instrument(handler)
            .await;
            let parent = finished_span(&$tt, "handler");
            let span = $tt.span(&format!("SELECT {posts}"));
            assert!(TestTelemetry::is_child_of(&span, &parent));
        }

        #[tokio::test]
        async fn request_id_of_the_request_is_on_the_query_span() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "reqid", 1, 0).await;
            $tt.reset();
            // As the server layers do: the request id travels in the request's context.
            let handler = tracing::info_span!("handler");
            let id: otel_core::RequestId = "user-quoted-42".parse().unwrap();
            otel_core::tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
                &handler,
                opentelemetry::Context::new().with_value(id),
            )
            .unwrap();
            async {
                q(format!("SELECT id FROM {posts}")).fetch_all(&pool).await.unwrap();
            }
            .instrument(handler)
            .await;
            let span = $tt.span(&format!("SELECT {posts}"));
            assert_eq!(s(&span, "request.id").as_deref(), Some("user-quoted-42"));
        }

        #[tokio::test]
        async fn here_gives_findings_the_query_line() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, comments) = setup(&pool, "here", 6, 1).await;
            // Inside this macro, `line!()` and `#[track_caller]` both name the invocation line.
            let line = line!();
            let ((), findings) = otel_sql::n_plus_one_findings(async {
                for id in post_ids(&pool, &posts).await {
                    q(format!("SELECT id, body FROM {comments} WHERE post_id = {}", $p(1)))
                        .bind(id)
                        .fetch_all(&pool.here())
                        .await
                        .unwrap();
                }
            })
            .await;
            let f = findings.iter().find(|f| f.kind == FindingKind::NPlusOne).unwrap_or_else(|| panic!("{findings:?}"));
            let site = f.call_site.as_deref().unwrap_or_default();
            assert!(site.contains(&format!("{}:{line}", file!())), "{site}");
            drop($tt);
        }

        #[tokio::test]
        async fn raw_query_text_only_on_opt_in() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let raw = TracedPool::builder(pool.inner().clone()).record_raw_query_text(true).build();
            let (posts, _) = setup(&pool, "raw", 1, 0).await;
            $tt.reset();
            let sql = format!("SELECT id FROM {posts} WHERE title = 'post 0'");
            q(sql.clone()).fetch_all(&raw).await.unwrap();
            let span = $tt.span(&format!("SELECT {posts}"));
            assert_eq!(s(&span, "db.query.text"), Some(sql));
        }

        #[tokio::test]
        async fn literals_are_sanitised_in_query_text() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "lit", 1, 0).await;
            $tt.reset();
            q(format!("SELECT id FROM {posts} WHERE title = 'secret-token' AND id IN (0, 1, 2)")).fetch_all(&pool).await.unwrap();
            let span = $tt.span(&format!("SELECT {posts}"));
            assert_eq!(s(&span, "db.query.text"), Some(format!("SELECT id FROM {posts} WHERE title = ? AND id IN (?)")));
            assert!(!format!("{:?}", $tt.spans()).contains("secret-token"));
        }

        #[tokio::test]
        async fn status_code_and_error_type_on_a_failing_query() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "fail", 1, 0).await;
            $tt.reset();
            let err = q(format!("INSERT INTO {posts} (id, title) VALUES ({}, {})", $p(1), $p(2)))
                .bind(0_i64).bind("dup").execute(&pool).await.unwrap_err();
            assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
            let span = $tt.span(&format!("INSERT {posts}"));
            assert!(matches!(span.status, Status::Error { .. }), "{:?}", span.status);
            assert_eq!(s(&span, "db.response.status_code").as_deref(), Some($dup));
            assert_eq!(s(&span, "error.type").as_deref(), Some($dup));
            assert_eq!(s(&span, "db.operation.name").as_deref(), Some("INSERT"));
            // the error message (which may quote values) is not recorded
            assert!(!format!("{:?}", span.attributes).contains("dup"));
        }

        #[tokio::test]
        async fn rows_are_written_through_the_wrapper_and_its_transaction() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "write", 0, 0).await;
            $tt.reset();
            let mut tx = pool.begin().await.unwrap();
            for id in 0..3_i64 {
                q(format!("INSERT INTO {posts} (id, title) VALUES ({}, {})", $p(1), $p(2)))
                    .bind(id).bind("t").execute(&mut tx).await.unwrap();
            }
            tx.commit().await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            q(format!("UPDATE {posts} SET title = {} WHERE id = {}", $p(1), $p(2)))
                .bind("u").bind(2_i64).execute(&mut conn).await.unwrap();
            drop(conn);
            let rows: Vec<(i64, String)> = sqlx::query_as(AssertSqlSafe(format!("SELECT id, title FROM {posts} ORDER BY id")))
                .fetch_all(pool.inner()).await.unwrap();
            assert_eq!(rows, vec![(0, "t".into()), (1, "t".into()), (2, "u".into())]);
            assert_eq!($tt.spans_named(&format!("INSERT {posts}")).len(), 3);
            assert_eq!($tt.spans_named(&format!("UPDATE {posts}")).len(), 1);
        }

        #[tokio::test]
        async fn duration_metric_is_recorded() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let pool = TracedPool::builder(pool.inner().clone()).system_name($system).meter_provider($tt.meter_provider().clone()).build();
            let (posts, _) = setup(&pool, "metric", 1, 0).await;
            for _ in 0..2 {
                q(format!("SELECT id FROM {posts}")).fetch_all(&pool).await.unwrap();
            }
            let points = duration_points(&$tt.metrics());
            let summary = format!("SELECT {posts}");
            let point = points.iter().find(|(_, a)| a.iter().any(|(k, v)| k == "db.query.summary" && *v == summary))
                .unwrap_or_else(|| panic!("no point for {summary}: {points:?}"));
            assert_eq!(point.0, 2);
            let attr = |k: &str| point.1.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            assert_eq!(attr("db.system.name").as_deref(), Some($system));
            assert_eq!(attr("db.operation.name").as_deref(), Some("SELECT"));
            assert_eq!(attr("db.collection.name"), Some(posts.clone()));
        }

        #[instrument(skip_all)]
        async fn enrich_posts(pool: &TracedPool<$db>, comments: &str, ids: &[i64]) {
            for id in ids {
                q(format!("SELECT id, body FROM {comments} WHERE post_id = {}", $p(1)))
                    .bind(*id).fetch_all(pool).await.unwrap();
            }
        }

        #[instrument(skip_all)]
        async fn load_comments(pool: &TracedPool<$db>, comments: &str, id: i64) {
            q(format!("SELECT id, body FROM {comments} WHERE post_id = {}", $p(1)))
                .bind(id).fetch_all(pool).await.unwrap();
        }

        async fn post_ids(pool: &TracedPool<$db>, posts: &str) -> Vec<i64> {
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT id FROM {posts} ORDER BY id")))
                .fetch_all(pool).await.unwrap()
        }

        #[tokio::test]
        async fn dashboard_loop_is_flagged_with_count_50() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, comments) = setup(&pool, "dash", 50, 1).await;
            let ((), findings) = otel_sql::n_plus_one_findings(async {
                let ids = post_ids(&pool, &posts).await;
                assert_eq!(ids.len(), 50);
                enrich_posts(&pool, &comments, &ids).await;
            }).await;
            let f = findings.iter().find(|f| f.kind == FindingKind::NPlusOne).unwrap_or_else(|| panic!("{findings:?}"));
            assert_eq!(f.count, 50);
            assert_eq!(f.shape, format!("SELECT id, body FROM {comments} WHERE post_id = ?"));
            let fix = f.suggestion.as_deref().unwrap();
            assert!(fix.contains("post_id"), "{fix}");
            // the "1" of "1 + 50": the query that produced the keys
            assert_eq!(f.source, Some(format!("SELECT id FROM {posts} ORDER BY id")));
            assert!(f.call_site.as_deref().unwrap_or_default().contains("enrich_posts"), "{f:?}");
            drop($tt);
        }

        #[tokio::test]
        async fn one_instrumented_function_per_iteration_is_flagged() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, comments) = setup(&pool, "iter", 10, 1).await;
            let ((), findings) = otel_sql::n_plus_one_findings(async {
                for id in post_ids(&pool, &posts).await {
                    load_comments(&pool, &comments, id).await;
                }
            }).await;
            let f = findings.iter().find(|f| f.kind == FindingKind::NPlusOne).unwrap_or_else(|| panic!("{findings:?}"));
            assert_eq!(f.count, 10);
            drop($tt);
        }

        #[tokio::test]
        async fn five_different_queries_are_not_flagged() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, comments) = setup(&pool, "diff", 3, 1).await;
            otel_sql::assert_no_n_plus_one(async {
                q(format!("SELECT id FROM {posts}")).fetch_all(&pool).await.unwrap();
                q(format!("SELECT title FROM {posts} WHERE id = {}", $p(1))).bind(1_i64).fetch_all(&pool).await.unwrap();
                q(format!("SELECT body FROM {comments}")).fetch_all(&pool).await.unwrap();
                q(format!("SELECT count(*) FROM {comments} WHERE post_id = {}", $p(1))).bind(1_i64).fetch_all(&pool).await.unwrap();
                q(format!("SELECT p.id FROM {posts} p JOIN {comments} c ON c.post_id = p.id")).fetch_all(&pool).await.unwrap();
            }).await;
            drop($tt);
        }

        #[tokio::test]
        async fn one_batched_query_is_not_flagged() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, comments) = setup(&pool, "batch", 20, 2).await;
            let counter = otel_sql::QueryCounter::new();
            let rows = otel_sql::assert_no_n_plus_one(counter.track(async {
                let ids = post_ids(&pool, &posts).await;
                $batched(&pool, &comments, &ids).await
            })).await;
            assert_eq!(rows, 40);
            assert_eq!(counter.count(), 2);
            counter.assert_at_most(2);
            drop($tt);
        }

        #[tokio::test]
        async fn concurrent_join_all_is_flagged_as_fan_out() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, comments) = setup(&pool, "fan", 8, 1).await;
            let ((), findings) = otel_sql::n_plus_one_findings(async {
                let ids = post_ids(&pool, &posts).await;
                // The server pauses a moment per query: a debug build talking to a server on
                // loopback can otherwise find each answer already there when it reads, finish
                // the query within one poll, and the first queries of the `join_all` then run
                // one after the other (as the detector rightly reports).
                join_all(ids.iter().map(|id| {
                    q(format!("SELECT id, body FROM {comments} WHERE post_id = {}{}", $p(1), $pause)).bind(*id).fetch_all(&pool)
                })).await;
            }).await;
            assert!(findings.iter().any(|f| f.kind == FindingKind::FanOut), "{findings:?}");
            drop($tt);
        }

        #[tokio::test]
        async fn same_query_with_same_values_is_a_duplicate_not_other_values() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "dup", 3, 0).await;
            let sql = format!("SELECT title FROM {posts} WHERE id = {}", $p(1));
            let ((), findings) = otel_sql::n_plus_one_findings(async {
                for _ in 0..3 {
                    q(sql.clone()).bind(1_i64).fetch_all(&pool).await.unwrap();
                }
            })
            .await;
            let f = findings.iter().find(|f| f.kind == FindingKind::Duplicate).unwrap_or_else(|| panic!("{findings:?}"));
            assert_eq!(f.count, 3);
            // three different values: neither a duplicate nor (below 5) an N+1
            otel_sql::assert_no_n_plus_one(async {
                for id in 0..3_i64 {
                    q(sql.clone()).bind(id).fetch_all(&pool).await.unwrap();
                }
            })
            .await;
            drop($tt);
        }

        #[tokio::test]
        async fn insert_loop_is_an_unbatched_write() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "unb", 0, 0).await;
            let ((), findings) = otel_sql::n_plus_one_findings(async {
                for id in 0..6_i64 {
                    q(format!("INSERT INTO {posts} (id, title) VALUES ({}, {})", $p(1), $p(2)))
                        .bind(id).bind("x").execute(&pool).await.unwrap();
                }
            })
            .await;
            let f = findings.iter().find(|f| f.kind == FindingKind::UnbatchedWrite).unwrap_or_else(|| panic!("{findings:?}"));
            assert_eq!(f.count, 6);
            assert!(f.suggestion.as_deref().unwrap_or_default().contains("push_values"), "{f:?}");
            drop($tt);
        }

        #[tokio::test]
        async fn query_counter_guard_fails_over_the_maximum() {
            let $tt = TestTelemetry::new();
            let Some(pool) = $connect else { return };
            let (posts, _) = setup(&pool, "count", 1, 0).await;
            let ((), n) = otel_sql::count_queries(async {
                for _ in 0..3 {
                    q(format!("SELECT id FROM {posts}")).fetch_all(&pool).await.unwrap();
                }
            }).await;
            assert_eq!(n, 3);
            let counter = otel_sql::QueryCounter::new();
            counter.track(async { q(format!("SELECT id FROM {posts}")).fetch_all(&pool).await.unwrap(); }).await;
            let r = std::panic::catch_unwind(|| counter.assert_at_most(0));
            assert!(r.is_err());
            drop($tt);
        }
    };
}
