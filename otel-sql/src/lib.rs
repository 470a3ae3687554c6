//! # otel-sql
//!
//! OpenTelemetry for [sqlx](https://docs.rs/sqlx): a CLIENT span per query with the stable
//! database conventions, the `db.client.operation.duration` metric, a fast SQL
//! [`fingerprint`], and runtime N+1 detection on otel-core's repeated-shape detector.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! let pool = otel_sql::TracedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! // Used exactly like the sqlx pool: `&pool` is an `Executor`.
//! let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
//! assert_eq!(one, 1);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod connection;
pub mod database;
pub mod fingerprint;
pub mod n_plus_one;
mod pool;
pub mod query_counter;
pub mod query_span;

pub use connection::{TracedConnection, TracedTransaction};
pub use database::TracedDatabase;
pub use n_plus_one::{assert_no_n_plus_one, n_plus_one_findings};
pub use pool::{TracedPool, TracedPoolBuilder};
pub use query_counter::{QueryCounter, count_queries};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
