//! SQL literals never reach a span, an event or a log line: a non-parameterised query full of
//! secrets is recorded with `?` in `db.query.text`, `db.query.summary` and the span name.

use opentelemetry_sdk::trace::SpanData;
use otel_core::testing::TestTelemetry;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Every literal below holds one of these.
const SECRETS: &[&str] = &["s3cr3t", "987654321", "5EC2E7", "4111111111111111"];

async fn pool(options: SqliteConnectOptions) -> otel_sql::TracedPool<sqlx::Sqlite> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    otel_sql::TracedPool::new(pool)
}

async fn run_literal_queries(pool: &otel_sql::TracedPool<sqlx::Sqlite>) {
    for sql in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password TEXT, pin INTEGER, \
         token BLOB, card TEXT DEFAULT '4111111111111111')",
        "INSERT INTO users (id, email, password, pin, token) \
         VALUES (1, 'alice@s3cr3t.example', 's3cr3t-pw', 987654321, X'5EC2E7')",
        "SELECT id FROM users WHERE password = 's3cr3t-pw' AND pin = 987654321",
        "UPDATE users SET password = 's3cr3t-new' /* s3cr3t comment */ WHERE email LIKE '%s3cr3t%'",
        "SELECT id FROM users WHERE token = x'5ec2e7' -- s3cr3t trailing comment",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .unwrap();
    }
    // A failing statement with a literal: the error is recorded, not the literal.
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(
        "INSERT INTO users (id, password) VALUES (1, 's3cr3t-dup')",
    ))
    .execute(pool)
    .await;
    assert!(err.is_err());
    tracing::info!("queries done");
}

fn assert_no_literal(tt: &TestTelemetry) -> Vec<SpanData> {
    let spans = tt.spans();
    assert_eq!(
        spans.len(),
        6,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for span in &spans {
        let dump = format!(
            "{:?} {:?} {:?} {:?}",
            span.name, span.attributes, span.events, span.status
        );
        for secret in SECRETS {
            assert!(
                !dump.contains(secret),
                "{secret} in span {}: {dump}",
                span.name
            );
        }
    }
    let logs = tt.logs();
    assert!(logs.contains("queries done"), "{logs}");
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret} in logs: {logs}");
    }
    spans
}

#[tokio::test]
async fn literals_reach_no_span_and_no_log_with_sqlx_statement_logging_off() {
    use sqlx::ConnectOptions;
    let tt = TestTelemetry::new();
    let options: SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
    let pool = pool(options.log_statements(tracing::log::LevelFilter::Off)).await;
    run_literal_queries(&pool).await;
    let spans = assert_no_literal(&tt);
    let select = spans
        .iter()
        .find(|s| {
            TestTelemetry::attr(s, "db.query.text").is_some_and(|v| {
                v.as_str()
                    .starts_with("SELECT id FROM users WHERE password")
            })
        })
        .expect("the select span");
    assert_eq!(
        TestTelemetry::attr(select, "db.query.text").map(|v| v.as_str().into_owned()),
        Some("SELECT id FROM users WHERE password = ? AND pin = ?".to_owned())
    );
    assert_eq!(select.name, "SELECT users");
}

/// With sqlx's default connect options (its own statement log at DEBUG, target
/// `sqlx::query`, raw text) and the default INFO log level, nothing leaks either. sqlx's
/// DEBUG statement log is sqlx's, outside otel-sql: keep `sqlx=warn` when debugging.
#[tokio::test]
async fn literals_reach_no_span_and_no_log_with_sqlx_defaults() {
    let tt = TestTelemetry::new();
    let options: SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
    let pool = pool(options).await;
    run_literal_queries(&pool).await;
    assert_no_literal(&tt);
}
