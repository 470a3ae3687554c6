//! [`TracedConnection`] and [`TracedTransaction`]: a pooled connection and a transaction
//! whose queries are traced like the pool's.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! let pool = otel_sql::TracedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! let mut tx = pool.begin().await?;
//! sqlx::query("CREATE TABLE t (id INTEGER)").execute(&mut tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Describe, Either, Error, Execute, Executor, SqlStr, Transaction};

use crate::database::TracedDatabase;
use crate::query_span::{self, Shared, TracedFuture, TracedStream};

/// A connection taken from a [`TracedPool`](crate::TracedPool); `&mut TracedConnection` is a
/// sqlx `Executor`.
pub struct TracedConnection<DB: TracedDatabase> {
    conn: PoolConnection<DB>,
    shared: Arc<Shared>,
}

impl<DB: TracedDatabase> TracedConnection<DB> {
    pub(crate) fn new(conn: PoolConnection<DB>, shared: Arc<Shared>) -> Self {
        TracedConnection { conn, shared }
    }

    /// The wrapped connection (queries run on it directly are not traced).
    pub fn inner(&mut self) -> &mut PoolConnection<DB> {
        &mut self.conn
    }
}

impl<DB: TracedDatabase> fmt::Debug for TracedConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedConnection")
            .field("system", &self.shared.system)
            .finish()
    }
}

/// A transaction begun on a [`TracedPool`](crate::TracedPool); `&mut TracedTransaction` is a
/// sqlx `Executor`. Dropped without [`commit`](Self::commit), it rolls back.
pub struct TracedTransaction<'c, DB: TracedDatabase> {
    tx: Transaction<'c, DB>,
    shared: Arc<Shared>,
}

impl<'c, DB: TracedDatabase> TracedTransaction<'c, DB> {
    pub(crate) fn new(tx: Transaction<'c, DB>, shared: Arc<Shared>) -> Self {
        TracedTransaction { tx, shared }
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }

    /// The wrapped transaction (queries run on it directly are not traced).
    pub fn inner(&mut self) -> &mut Transaction<'c, DB> {
        &mut self.tx
    }
}

impl<DB: TracedDatabase> fmt::Debug for TracedTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedTransaction")
            .field("system", &self.shared.system)
            .finish()
    }
}

/// The `Executor` methods of a wrapper holding `$conn: &mut DB::Connection`.
macro_rules! traced_executor_body {
    ($lt:lifetime, $conn:ident) => {
        type Database = DB;

        fn fetch_many<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
        where
            $lt: 'e,
            E: 'q + Execute<'q, DB>,
        {
            let (prepared, guard) = query_span::begin(&self.shared, query, None);
            let $conn: &$lt mut DB::Connection = &mut *self.$conn;
            Box::pin(TracedStream::new($conn.fetch_many(prepared), guard))
        }

        fn fetch_optional<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
        where
            $lt: 'e,
            E: 'q + Execute<'q, DB>,
        {
            let (prepared, guard) = query_span::begin(&self.shared, query, None);
            let $conn: &$lt mut DB::Connection = &mut *self.$conn;
            Box::pin(TracedFuture::new($conn.fetch_optional(prepared), guard))
        }

        fn prepare_with<'e>(
            self,
            sql: SqlStr,
            parameters: &'e [<DB as Database>::TypeInfo],
        ) -> BoxFuture<'e, Result<<DB as Database>::Statement, Error>>
        where
            $lt: 'e,
        {
            let $conn: &$lt mut DB::Connection = &mut *self.$conn;
            $conn.prepare_with(sql, parameters)
        }

        fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, Error>>
        where
            $lt: 'e,
        {
            let $conn: &$lt mut DB::Connection = &mut *self.$conn;
            $conn.describe(sql)
        }
    };
}

impl<'c, DB: TracedDatabase> Executor<'c> for &'c mut TracedConnection<DB>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    traced_executor_body!('c, conn);
}

impl<'c, 't, DB: TracedDatabase> Executor<'t> for &'t mut TracedTransaction<'c, DB>
where
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    traced_executor_body!('t, tx);
}
