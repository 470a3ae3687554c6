//! The shop's database: SQLite in memory through otel-sql's [`TracedPool`], with users,
//! posts and comments.
//!
//! ```no_run
//! # async fn run() -> Result<(), examples::demo::DemoError> {
//! let db = examples::demo::database::open().await?;
//! let posts: Vec<(i64, String)> = sqlx::query_as("SELECT id, title FROM posts").fetch_all(&db).await?;
//! assert_eq!(posts.len(), examples::demo::database::POSTS);
//! # Ok(()) }
//! ```

use otel_sql::TracedPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, QueryBuilder, Sqlite};

use super::DemoError;

/// Users in the seed data.
pub const USERS: usize = 5;
/// Posts in the seed data (the dashboard shows all of them).
pub const POSTS: usize = 50;
/// Comments per post in the seed data.
pub const COMMENTS_PER_POST: usize = 3;

/// Opens the in-memory database, creates the tables and seeds them (with batched inserts).
pub async fn open() -> Result<TracedPool<Sqlite>, DemoError> {
    // One connection that never closes: each SQLite `:memory:` connection is its own database.
    // sqlx's own per-statement log line is off: the span already carries the statement.
    let options: SqliteConnectOptions = "sqlite::memory:".parse()?;
    let options = options.log_statements(tracing::log::LevelFilter::Off);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    let db = TracedPool::new(pool);
    sqlx::raw_sql(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, title TEXT NOT NULL);
         CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE INDEX comments_post ON comments (post_id);",
    )
    .execute(&db)
    .await?;

    let mut users = QueryBuilder::<Sqlite>::new("INSERT INTO users (id, name) ");
    users.push_values(1..=USERS, |mut row, id| {
        row.push_bind(id as i64).push_bind(format!("user{id}"));
    });
    users.build().execute(&db).await?;

    let mut posts = QueryBuilder::<Sqlite>::new("INSERT INTO posts (id, user_id, title) ");
    posts.push_values(1..=POSTS, |mut row, id| {
        row.push_bind(id as i64)
            .push_bind((id % USERS + 1) as i64)
            .push_bind(format!("post {id}"));
    });
    posts.build().execute(&db).await?;

    let mut comments = QueryBuilder::<Sqlite>::new("INSERT INTO comments (post_id, body) ");
    let rows = (1..=POSTS).flat_map(|post| (1..=COMMENTS_PER_POST).map(move |n| (post, n)));
    comments.push_values(rows, |mut row, (post, n)| {
        row.push_bind(post as i64)
            .push_bind(format!("comment {n} on post {post}"));
    });
    comments.build().execute(&db).await?;
    Ok(db)
}
