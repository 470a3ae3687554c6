//! sqlx with N+1 warnings (`cargo run -p examples --bin sqlx_n_plus_one`): `TracedPool` gives
//! each query a CLIENT span and feeds the N+1 detector. The loop (1 + 20 queries) logs a
//! warning with the fix; the batched version runs 2 queries and is not flagged.
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, QueryBuilder, Sqlite};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = otel_core::Telemetry::builder().install()?; // OTEL_SERVICE_NAME names it
    let options: SqliteConnectOptions = "sqlite::memory:".parse()?;
    let options = options.log_statements(tracing::log::LevelFilter::Off); // the span says it
    let pool = SqlitePoolOptions::new().max_connections(1);
    let pool = otel_sql::TracedPool::new(pool.connect_with(options).await?);
    sqlx::raw_sql(
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT);
         CREATE TABLE comments (post_id INTEGER, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
         INSERT INTO posts SELECT i, 'post ' || i FROM n;
         INSERT INTO comments SELECT id, 'nice' FROM posts;",
    )
    .execute(&pool)
    .await?;

    let n_plus_one = async {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM posts")
            .fetch_all(&pool)
            .await?;
        for id in ids {
            // One query per post: flagged at the 5th repeat, with the fix.
            sqlx::query("SELECT body FROM comments WHERE post_id = ?")
                .bind(id)
                .fetch_all(&pool)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    };
    n_plus_one
        .instrument(tracing::info_span!("GET /posts"))
        .await?;

    let batched = async {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM posts")
            .fetch_all(&pool)
            .await?;
        let mut query = QueryBuilder::<Sqlite>::new("SELECT body FROM comments WHERE post_id IN (");
        let mut list = query.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        query.push(")");
        query.build().fetch_all(&pool).await
    };
    let rows = batched
        .instrument(tracing::info_span!("GET /batched"))
        .await?;
    println!("{} comments in 2 queries", rows.len());
    Ok(())
}
