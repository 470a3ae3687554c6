//! N+1 scope state under concurrent queries: many queries of one shape in flight at once in
//! one scope are all counted (as one `fan_out` finding), and concurrent scopes never count each other's queries.

use futures_util::future::join_all;
use otel_core::repeated_shape::{Finding, FindingKind};
use otel_core::testing::TestTelemetry;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

async fn pool() -> otel_sql::TracedPool<sqlx::Sqlite> {
    use sqlx::ConnectOptions;
    let options: SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options.log_statements(tracing::log::LevelFilter::Off))
        .await
        .unwrap();
    otel_sql::TracedPool::new(pool)
}

/// `n` concurrent `SELECT ... WHERE id = ?` with distinct ids against table `table`.
async fn concurrent_lookups(pool: &otel_sql::TracedPool<sqlx::Sqlite>, table: &str, n: i64) {
    let sql = format!("SELECT id FROM {table} WHERE id = ?");
    let queries = (0..n).map(|id| {
        let sql = sql.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_all(pool)
                .await
                .unwrap()
        }
    });
    join_all(queries).await;
}

/// The repeated-shape findings as (kind, shape, count). Repeats in flight at the same time
/// are a `fan_out` (the concurrent form of N+1), with the same count.
fn n_plus_one(findings: &[Finding]) -> Vec<(FindingKind, String, u64)> {
    findings
        .iter()
        .map(|f| (f.kind, f.shape.clone(), f.count))
        .collect()
}

#[tokio::test]
async fn every_concurrent_query_of_a_scope_is_counted_once() {
    let _tt = TestTelemetry::new();
    let pool = pool().await;
    sqlx::raw_sql("CREATE TABLE items (id INTEGER PRIMARY KEY)")
        .execute(pool.inner())
        .await
        .unwrap();
    let ((), findings) =
        otel_sql::n_plus_one_findings(concurrent_lookups(&pool, "items", 200)).await;
    assert_eq!(
        n_plus_one(&findings),
        [(
            FindingKind::FanOut,
            "SELECT id FROM items WHERE id = ?".to_owned(),
            200
        )],
        "{findings:?}"
    );
}

#[tokio::test]
async fn concurrent_scopes_do_not_count_each_others_queries() {
    let _tt = TestTelemetry::new();
    let pool = pool().await;
    sqlx::raw_sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE b (id INTEGER PRIMARY KEY)",
    )
    .execute(pool.inner())
    .await
    .unwrap();
    // Three scopes interleaved on one thread: two on table `a`, one on table `b`.
    let (first, second, third) = tokio::join!(
        otel_sql::n_plus_one_findings(concurrent_lookups(&pool, "a", 30)),
        otel_sql::n_plus_one_findings(concurrent_lookups(&pool, "a", 45)),
        otel_sql::n_plus_one_findings(concurrent_lookups(&pool, "b", 60)),
    );
    let shape_a = "SELECT id FROM a WHERE id = ?".to_owned();
    assert_eq!(
        n_plus_one(&first.1),
        [(FindingKind::FanOut, shape_a.clone(), 30)]
    );
    assert_eq!(n_plus_one(&second.1), [(FindingKind::FanOut, shape_a, 45)]);
    assert_eq!(
        n_plus_one(&third.1),
        [(
            FindingKind::FanOut,
            "SELECT id FROM b WHERE id = ?".to_owned(),
            60
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scopes_on_many_worker_threads_stay_exact() {
    let pool = pool().await;
    sqlx::raw_sql("CREATE TABLE m (id INTEGER PRIMARY KEY)")
        .execute(pool.inner())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16i64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let n = 5 + i;
                let ((), findings) =
                    otel_sql::n_plus_one_findings(concurrent_lookups(&pool, "m", n)).await;
                (n, findings)
            })
        })
        .collect();
    for task in tasks {
        let (n, findings) = task.await.unwrap();
        assert_eq!(
            n_plus_one(&findings),
            [(
                FindingKind::FanOut,
                "SELECT id FROM m WHERE id = ?".to_owned(),
                n as u64
            )],
            "{findings:?}"
        );
    }
}
