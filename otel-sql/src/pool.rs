//! [`TracedPool`]: a `sqlx::Pool` whose queries each get a CLIENT span, a duration metric and
//! N+1 detection, used exactly like the pool it wraps.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! use otel_sql::TracedPool;
//!
//! let pool = TracedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! let rows = sqlx::query("SELECT 1 AS one").fetch_all(&pool).await?;
//! assert_eq!(rows.len(), 1);
//! # Ok(()) }
//! ```

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use opentelemetry::metrics::MeterProvider;
use sqlx::{Database, Describe, Either, Error, Execute, Executor, Pool, SqlStr};

use crate::connection::{TracedConnection, TracedTransaction};
use crate::database::TracedDatabase;
use crate::query_span::{self, Shared, TracedFuture, TracedStream};

/// A `sqlx::Pool<DB>` that traces every query; `&TracedPool<DB>` is a sqlx `Executor`.
/// Cloning is cheap (two `Arc`s).
pub struct TracedPool<DB: TracedDatabase> {
    pool: Pool<DB>,
    shared: Arc<Shared>,
    call_site: Option<&'static Location<'static>>,
}

impl<DB: TracedDatabase> TracedPool<DB> {
    /// Wraps `pool` with the default settings (global meter provider, sanitised query text,
    /// N+1 detection on).
    pub fn new(pool: Pool<DB>) -> Self {
        Self::builder(pool).build()
    }

    /// A builder to change the defaults.
    pub fn builder(pool: Pool<DB>) -> TracedPoolBuilder<DB> {
        TracedPoolBuilder {
            pool,
            meter: None,
            raw_query_text: false,
            detect_repeats: true,
            system_name: None,
        }
    }

    /// The wrapped pool (queries run on it directly are not traced).
    pub fn inner(&self) -> &Pool<DB> {
        &self.pool
    }

    /// This pool, remembering the caller's source line: `query.fetch_all(&pool.here())`
    /// gives N+1 findings that line as their call site. (The span keeps the `code.*`
    /// attributes `tracing-opentelemetry` sets; a second set would duplicate the keys.) (sqlx calls `Executor` methods from its own generic
    /// code, so `#[track_caller]` there would name sqlx; this is where it can work.)
    #[track_caller]
    pub fn here(&self) -> Self {
        TracedPool {
            pool: self.pool.clone(),
            shared: self.shared.clone(),
            call_site: Some(Location::caller()),
        }
    }

    /// Takes a connection from the pool; queries on it are traced.
    pub async fn acquire(&self) -> Result<TracedConnection<DB>, Error> {
        let conn = self.pool.acquire().await?;
        Ok(TracedConnection::new(conn, self.shared.clone()))
    }

    /// Starts a transaction; queries on it are traced.
    pub async fn begin(&self) -> Result<TracedTransaction<'static, DB>, Error> {
        let tx = self.pool.begin().await?;
        Ok(TracedTransaction::new(tx, self.shared.clone()))
    }
}

impl<DB: TracedDatabase> Clone for TracedPool<DB> {
    fn clone(&self) -> Self {
        TracedPool {
            pool: self.pool.clone(),
            shared: self.shared.clone(),
            call_site: self.call_site,
        }
    }
}

impl<DB: TracedDatabase> fmt::Debug for TracedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedPool")
            .field("pool", &self.pool)
            .field("system", &self.shared.system)
            .finish()
    }
}

/// Builder of [`TracedPool`].
pub struct TracedPoolBuilder<DB: TracedDatabase> {
    pool: Pool<DB>,
    meter: Option<opentelemetry::metrics::Meter>,
    raw_query_text: bool,
    detect_repeats: bool,
    system_name: Option<&'static str>,
}

impl<DB: TracedDatabase> TracedPoolBuilder<DB> {
    /// The `db.system.name` recorded on spans and metrics, for a server that speaks the
    /// driver's protocol but is another product: `"mariadb"` behind the MySQL driver,
    /// `"cockroachdb"` behind the PostgreSQL one (values from the semantic conventions).
    /// Default: the driver's (`postgresql`, `mysql`, `sqlite`).
    pub fn system_name(mut self, name: &'static str) -> Self {
        self.system_name = Some(name);
        self
    }

    /// Records `db.client.operation.duration` through `provider` (default: the global one).
    pub fn meter_provider<P: MeterProvider>(mut self, provider: P) -> Self {
        self.meter = Some(provider.meter("otel-sql"));
        self
    }

    /// Records the raw query text in `db.query.text` even when it holds literals. Off by
    /// default: literals may be secrets, so text with literals is recorded sanitised.
    pub fn record_raw_query_text(mut self, raw: bool) -> Self {
        self.raw_query_text = raw;
        self
    }

    /// Feeds the N+1 detector (`otel_core::repeated_shape`); on by default (the detector's
    /// own mode decides whether anything is reported).
    pub fn detect_repeats(mut self, on: bool) -> Self {
        self.detect_repeats = on;
        self
    }

    /// The traced pool.
    pub fn build(self) -> TracedPool<DB> {
        let meter = self
            .meter
            .unwrap_or_else(|| opentelemetry::global::meter("otel-sql"));
        let endpoint = DB::endpoint(&self.pool.connect_options());
        let system = self.system_name.unwrap_or(DB::SYSTEM_NAME);
        let shared = Shared::new::<DB>(
            system,
            endpoint,
            self.raw_query_text,
            self.detect_repeats,
            &meter,
        );
        TracedPool {
            pool: self.pool,
            shared: Arc::new(shared),
            call_site: None,
        }
    }
}

impl<DB: TracedDatabase> fmt::Debug for TracedPoolBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedPoolBuilder")
            .field("raw_query_text", &self.raw_query_text)
            .field("detect_repeats", &self.detect_repeats)
            .field("system_name", &self.system_name)
            .finish()
    }
}

impl<'p, DB: TracedDatabase> Executor<'p> for &'_ TracedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (prepared, guard) = query_span::begin(&self.shared, query, self.call_site);
        let inner = (&self.pool).fetch_many(prepared);
        Box::pin(TracedStream::new(inner, guard))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (prepared, guard) = query_span::begin(&self.shared, query, self.call_site);
        let inner = (&self.pool).fetch_optional(prepared);
        Box::pin(TracedFuture::new(inner, guard))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [<DB as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<DB as Database>::Statement, Error>>
    where
        'p: 'e,
    {
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'p: 'e,
    {
        (&self.pool).describe(sql)
    }
}
