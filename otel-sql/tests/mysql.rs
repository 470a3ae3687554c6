//! The behaviour suite against MySQL / MariaDB, when `OTEL_TEST_MYSQL_URL` is set (a set URL
//! that cannot be reached fails).

mod common;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

const VAR: &str = "OTEL_TEST_MYSQL_URL";

/// The `db.system.name` the pool is configured with: `mariadb` when the server says it is
/// MariaDB (`SELECT VERSION()`), as the semantic conventions ask, else the driver's `mysql`.
static SYSTEM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

async fn connect() -> Option<otel_sql::TracedPool<sqlx::MySql>> {
    use sqlx::ConnectOptions;
    let url = common::url(VAR)?;
    let options: MySqlConnectOptions = url.parse().expect("OTEL_TEST_MYSQL_URL");
    let options = options.log_statements(tracing::log::LevelFilter::Off);
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("{VAR} is set but unreachable: {e}"));
    let (version,): (String,) = sqlx::query_as("SELECT VERSION()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let system = *SYSTEM.get_or_init(|| {
        if version.contains("MariaDB") {
            "mariadb"
        } else {
            "mysql"
        }
    });
    Some(
        otel_sql::TracedPool::builder(pool)
            .system_name(system)
            .build(),
    )
}

fn expected() -> (String, String, i64) {
    let url = std::env::var(VAR).unwrap_or_default();
    let options: MySqlConnectOptions = url.parse().unwrap_or_else(|_| MySqlConnectOptions::new());
    (
        options.get_database().unwrap_or("").to_owned(),
        options.get_host().to_owned(),
        i64::from(options.get_port()),
    )
}

async fn batched(pool: &otel_sql::TracedPool<sqlx::MySql>, comments: &str, ids: &[i64]) -> usize {
    let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
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
    db = sqlx::MySql,
    connect = |tt| connect().await,
    p = |_n: usize| "?".to_string(),
    dup = "23000",
    system = SYSTEM.get().copied().unwrap_or("unset"),
    namespace = &*expected().0,
    address = Some(&*expected().1),
    port = Some(expected().2),
    batched = batched,
    pause = " AND SLEEP(0.001) = 0",
}
