//! The behaviour suite against SQLite in-process (always runs).

mod common;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

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
}
