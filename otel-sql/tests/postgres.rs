//! The behaviour suite against PostgreSQL, when `OTEL_TEST_POSTGRES_URL` is set (a set URL
//! that cannot be reached fails).

mod common;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const VAR: &str = "OTEL_TEST_POSTGRES_URL";

async fn connect() -> Option<otel_sql::TracedPool<sqlx::Postgres>> {
    use sqlx::ConnectOptions;
    let url = common::url(VAR)?;
    let options: PgConnectOptions = url.parse().expect("OTEL_TEST_POSTGRES_URL");
    let options = options.log_statements(tracing::log::LevelFilter::Off);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("{VAR} is set but unreachable: {e}"));
    Some(otel_sql::TracedPool::new(pool))
}

fn expected() -> (String, String, i64) {
    let url = std::env::var(VAR).unwrap_or_default();
    let options: PgConnectOptions = url.parse().unwrap_or_else(|_| PgConnectOptions::new());
    (
        options.get_database().unwrap_or("").to_owned(),
        options.get_host().to_owned(),
        i64::from(options.get_port()),
    )
}

async fn batched(
    pool: &otel_sql::TracedPool<sqlx::Postgres>,
    comments: &str,
    ids: &[i64],
) -> usize {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, body FROM {comments} WHERE post_id = ANY($1)"
    )))
    .bind(ids.to_vec())
    .fetch_all(pool)
    .await
    .unwrap()
    .len()
}

db_suite! {
    db = sqlx::Postgres,
    connect = |tt| connect().await,
    p = |n: usize| format!("${n}"),
    dup = "23505",
    system = "postgresql",
    namespace = &*expected().0,
    address = Some(&*expected().1),
    port = Some(expected().2),
    batched = batched,
    pause = " AND pg_sleep(0.001) IS NOT NULL",
}
