//! The behaviour suite against SQLite in-process (always runs).

mod common;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// A pool and a fresh table with a unique name from `prefix` (`id BIGINT PRIMARY KEY`), created
/// untraced.
async fn pool_with_id_table(prefix: &str) -> (otel_sql::TracedPool<sqlx::Sqlite>, String) {
    let pool = connect().await.unwrap();
    let t = common::unique(prefix);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY)"
    )))
    .execute(pool.inner())
    .await
    .unwrap();
    (pool, t)
}

/// `SELECT id FROM {t} WHERE id = ?` once per id in `0..n`: the N+1 loop.
async fn select_each_id(pool: &otel_sql::TracedPool<sqlx::Sqlite>, t: &str, n: i64) {
    for id in 0..n {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {t} WHERE id = ?"
        )))
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
    }
}

async fn connect() -> Option<otel_sql::TracedPool<sqlx::Sqlite>> {
    use sqlx::ConnectOptions;
    let options: SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
    let options = options.log_statements(tracing::log::LevelFilter::Off);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    Some(otel_sql::TracedPool::new(pool))
}

async fn batched(pool: &otel_sql::TracedPool<sqlx::Sqlite>, comments: &str, ids: &[i64]) -> usize {
    let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
        "SELECT id, body FROM {comments} WHERE post_id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(")");
    qb.build().fetch_all(pool).await.unwrap().len()
}

db_suite! {
    db = sqlx::Sqlite,
    connect = |tt| connect().await,
    p = |_n: usize| "?".to_string(),
    dup = "1555",
    system = "sqlite",
    namespace = ":memory:",
    address = None::<&str>,
    port = None::<i64>,
    batched = batched,
    pause = "",
}

#[tokio::test]
async fn system_name_can_name_another_product_behind_the_driver() {
    let tt = otel_core::testing::TestTelemetry::new();
    let sqlite = connect().await.unwrap();
    let pool = otel_sql::TracedPool::builder(sqlite.inner().clone())
        .system_name("other_sql")
        .meter_provider(tt.meter_provider().clone())
        .build();
    sqlx::query("SELECT 1").fetch_all(&pool).await.unwrap();
    let span = tt.span("SELECT");
    assert_eq!(
        common::s(&span, "db.system.name").as_deref(),
        Some("other_sql")
    );
    let points = common::duration_points(&tt.metrics());
    assert_eq!(points.len(), 1, "{points:?}");
    assert!(
        points[0]
            .1
            .iter()
            .any(|(k, v)| k == "db.system.name" && v == "other_sql"),
        "{points:?}"
    );
}

#[tokio::test]
async fn raw_sql_batch_is_one_span_with_a_joined_summary() {
    let tt = otel_core::testing::TestTelemetry::new();
    let pool = connect().await.unwrap();
    let t = common::unique("batch_raw");
    let sql = format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY); INSERT INTO {t} (id) VALUES (1), (2); SELECT id FROM {t}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    let name = format!("CREATE {t}; INSERT {t}; SELECT {t}");
    let span = tt.span(&name);
    assert_eq!(
        common::s(&span, "db.operation.name").as_deref(),
        Some("CREATE")
    );
    assert_eq!(common::s(&span, "db.collection.name"), Some(t.clone()));
    assert_eq!(
        common::s(&span, "db.query.text"),
        Some(format!(
            "CREATE TABLE {t} (id BIGINT PRIMARY KEY); INSERT INTO {t} (id) VALUES (?); SELECT id FROM {t}"
        ))
    );
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
        .fetch_one(pool.inner())
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn unsampled_request_builds_no_span_but_still_counts_repeats() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let tt = otel_core::testing::TestTelemetry::new();
    let (pool, t) = pool_with_id_table("unsampled").await;
    let unsampled = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::default(),
        true,
        TraceState::default(),
    ));
    let _attached = unsampled.attach();
    let ((), findings) = otel_sql::n_plus_one_findings(async {
        select_each_id(&pool, &t, 5).await;
    })
    .await;
    assert!(
        tt.spans_named(&format!("SELECT {t}")).is_empty(),
        "no span in an unsampled trace"
    );
    let f = findings
        .iter()
        .find(|f| f.kind == otel_core::repeated_shape::FindingKind::NPlusOne)
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(f.count, 5);
}

#[tokio::test]
async fn the_n_plus_one_warning_is_logged_inside_the_query_span_that_crossed_the_threshold() {
    let tt = otel_core::testing::TestTelemetry::new();
    let (pool, t) = pool_with_id_table("warned").await;
    let ((), findings) = otel_sql::n_plus_one_findings(async {
        select_each_id(&pool, &t, 6).await;
    })
    .await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].count, 6);
    // The query span is never entered, yet the warning is an event of the fifth query's span
    // (the one that crossed the threshold), as if it had been.
    let spans = tt.spans_named(&format!("SELECT {t}"));
    assert_eq!(spans.len(), 6);
    let warned: Vec<_> = spans
        .iter()
        .filter(|s| s.events.iter().any(|e| e.name.contains("detected: ")))
        .collect();
    assert_eq!(warned.len(), 1, "{spans:#?}");
}

#[tokio::test]
async fn a_pool_without_repeat_detection_feeds_nothing_to_the_detector() {
    let _tt = otel_core::testing::TestTelemetry::new();
    let pool = connect().await.unwrap();
    let untracked = otel_sql::TracedPool::builder(pool.inner().clone())
        .detect_repeats(false)
        .build();
    let t = common::unique("untracked");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY)"
    )))
    .execute(pool.inner())
    .await
    .unwrap();
    let ((), findings) = otel_sql::n_plus_one_findings(async {
        for _ in 0..6 {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM {t} WHERE id = ?"
            )))
            .bind(1_i64)
            .fetch_all(&untracked)
            .await
            .unwrap();
        }
    })
    .await;
    assert_eq!(findings, vec![]);
}
