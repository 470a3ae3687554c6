//! One CLIENT span per database operation: opened before sqlx runs the query, closed when
//! its result stream ends, fails or is dropped; it records the stable database attributes,
//! the `db.client.operation.duration` histogram and feeds the N+1 detector.
//!
//! Used by [`TracedPool`](crate::TracedPool), [`TracedConnection`](crate::TracedConnection)
//! and [`TracedTransaction`](crate::TracedTransaction); there is nothing to call directly:
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! let pool = otel_sql::TracedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! // one span `SELECT` with db.system.name = "sqlite", db.query.text = "SELECT ?"
//! sqlx::query("SELECT 1").execute(&pool).await?;
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use otel_core::attributes::error_type;
use otel_core::attributes::semconv::attribute as sc;
use otel_core::repeated_shape::{self, Observation, ShapeKind};
use pin_project::{pin_project, pinned_drop};
use smallvec::SmallVec;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Execute, SqlStr};
use tracing::field::Empty;

use crate::database::{Endpoint, TracedDatabase};
use crate::fingerprint::{self, Fingerprint, StatementKind};
use crate::n_plus_one::suggestion;
use crate::query_counter;

/// The tracing target of every span and event of this crate.
pub const TARGET: &str = "otel_sql";

/// Settings and instruments shared by a pool and every connection taken from it.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) system: &'static str,
    pub(crate) dialect: fingerprint::Dialect,
    pub(crate) endpoint: Endpoint,
    pub(crate) raw_query_text: bool,
    pub(crate) detect_repeats: bool,
    pub(crate) duration: Histogram<f64>,
    pub(crate) metric_base: Vec<KeyValue>,
}

impl Shared {
    pub(crate) fn new<DB: TracedDatabase>(
        system: &'static str,
        endpoint: Endpoint,
        raw_query_text: bool,
        detect_repeats: bool,
        meter: &opentelemetry::metrics::Meter,
    ) -> Self {
        let duration = meter
            .f64_histogram(otel_core::attributes::semconv::metric::DB_CLIENT_OPERATION_DURATION)
            .with_unit("s")
            .with_description("Duration of database client operations.")
            .with_boundaries(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0])
            .build();
        let mut metric_base = vec![KeyValue::new(sc::DB_SYSTEM_NAME, system)];
        // `Arc<str>` values: cloning the base attributes per query is a refcount bump.
        if let Some(ns) = &endpoint.namespace {
            metric_base.push(KeyValue::new(
                sc::DB_NAMESPACE,
                Arc::<str>::from(ns.as_str()),
            ));
        }
        if let Some(addr) = &endpoint.address {
            metric_base.push(KeyValue::new(
                sc::SERVER_ADDRESS,
                Arc::<str>::from(addr.as_str()),
            ));
        }
        if let Some(port) = endpoint.port {
            metric_base.push(KeyValue::new(sc::SERVER_PORT, i64::from(port)));
        }
        Shared {
            system,
            dialect: DB::DIALECT,
            endpoint,
            raw_query_text,
            detect_repeats,
            duration,
            metric_base,
        }
    }
}

/// The query handed on to sqlx once its text, statement and arguments were taken out of the
/// user's query for fingerprinting (sqlx 0.9's `Execute::sql` consumes the query).
pub(crate) struct Prepared<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<'q, DB: Database> Execute<'q, DB> for Prepared<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }
    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }
    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }
    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Opens the span for `query` and returns the query to run inside it.
pub(crate) fn begin<'q, DB: TracedDatabase, E: Execute<'q, DB>>(
    shared: &Arc<Shared>,
    mut query: E,
    call_site: Option<&'static Location<'static>>,
) -> (Prepared<DB>, QueryGuard) {
    let persistent = query.persistent();
    let statement = query.statement().cloned();
    let arguments = query.take_arguments();
    let sql = query.sql();
    let fp = fingerprint::cached(sql.as_str(), shared.dialect);
    // Hashing the bound values is the dearest part of feeding the detector: done only when
    // the detector will count this query (same shape and same values is a `duplicate`).
    let values_hash = (shared.detect_repeats
        && fp.kind() != StatementKind::Ignored
        && repeated_shape::is_enabled())
    .then(|| values_hash::<DB>(&arguments, &fp));
    // Sampling before bridging (DESIGN.md): inside an unsampled request (or with telemetry
    // off) no bridged span is built; the metric and the N+1 detector still see the query.
    // Whether the parent is unsampled and the request id come from one context lookup.
    let span = if otel_core::sampling::is_enabled() {
        let parent = otel_core::sampling::current_parent();
        if parent.unsampled {
            tracing::Span::none()
        } else {
            open_span(shared, &fp, sql.as_str(), parent.request_id.as_ref())
        }
    } else {
        tracing::Span::none()
    };
    query_counter::count();
    let guard = QueryGuard {
        span,
        shared: shared.clone(),
        fp,
        values_hash,
        call_site,
        started: Instant::now(),
        rows: 0,
        done: false,
    };
    let prepared = Prepared {
        sql,
        statement,
        arguments: Some(arguments),
        persistent,
    };
    (prepared, guard)
}

/// The hash of the values of one query: its bound arguments and the literals in its text.
fn values_hash<DB: TracedDatabase>(
    arguments: &Result<Option<DB::Arguments>, BoxDynError>,
    fp: &Fingerprint,
) -> u64 {
    let args_hash = match arguments {
        Ok(Some(args)) if args.len() > 0 => Some(DB::arguments_hash(args)),
        _ => None,
    };
    match (args_hash, fp.literals_hash()) {
        (Some(a), Some(l)) => a ^ l.rotate_left(17),
        (Some(a), None) => a,
        (None, Some(l)) => l,
        (None, None) => 0,
    }
}

/// The open span of one operation; closes it (once) on completion or drop.
pub(crate) struct QueryGuard {
    span: tracing::Span,
    shared: Arc<Shared>,
    fp: fingerprint::CachedFingerprint,
    /// `None` when the detector was off as the query started.
    values_hash: Option<u64>,
    call_site: Option<&'static Location<'static>>,
    started: Instant,
    rows: u64,
    done: bool,
}

impl QueryGuard {
    fn finish(&mut self, error: Option<&sqlx::Error>) {
        if self.done {
            return;
        }
        self.done = true;
        let duration = self.started.elapsed();
        let span = &self.span;
        span.record(
            sc::DB_RESPONSE_RETURNED_ROWS,
            i64::try_from(self.rows).unwrap_or(i64::MAX),
        );
        // On the stack: at most 4 base attributes and 5 per query (no allocation per query).
        let mut attrs: SmallVec<[KeyValue; 9]> = SmallVec::new();
        attrs.extend(self.shared.metric_base.iter().cloned());
        if let Some(op) = self.fp.operation() {
            attrs.push(KeyValue::new(sc::DB_OPERATION_NAME, op));
        }
        if let Some(coll) = self.fp.collection_shared() {
            attrs.push(KeyValue::new(sc::DB_COLLECTION_NAME, coll.clone()));
        }
        if !self.fp.summary().is_empty() {
            attrs.push(KeyValue::new(
                sc::DB_QUERY_SUMMARY,
                self.fp.summary_shared().clone(),
            ));
        }
        if let Some(e) = error {
            let (class, status) = classify(e);
            span.record("otel.status_code", "error");
            span.record(sc::ERROR_TYPE, &*class);
            if let Some(code) = &status {
                span.record(sc::DB_RESPONSE_STATUS_CODE, code.as_str());
                attrs.push(KeyValue::new(sc::DB_RESPONSE_STATUS_CODE, code.clone()));
            }
            attrs.push(KeyValue::new(sc::ERROR_TYPE, class.into_owned()));
        }
        self.shared.duration.record(duration.as_secs_f64(), &attrs);

        if self.shared.detect_repeats && repeated_shape::is_enabled() {
            let kind = match self.fp.kind() {
                StatementKind::Read => ShapeKind::Read,
                StatementKind::Write => ShapeKind::Write,
                StatementKind::Ignored => return,
            };
            let suggestion = suggestion(&self.fp, self.shared.dialect);
            // Reported from the query's span without entering it (that is what
            // `observe_in_span` is for): grouped by the span that issued the query, the
            // warning of a finding logged inside the query's span.
            repeated_shape::observe_in_span(
                span,
                &Observation {
                    shape: self.fp.sanitized(),
                    fingerprint: self.fp.hash(),
                    kind,
                    values_hash: self.values_hash,
                    started: self.started,
                    duration,
                    call_site: self.call_site,
                    suggestion,
                },
            );
        }
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        // Dropped before the end (a `fetch_optional` that stopped at the first row, or a
        // cancelled future): the operation is over as far as the caller is concerned.
        self.finish(None);
    }
}

/// A sqlx result stream that closes the operation's span at its end.
#[pin_project(PinnedDrop)]
pub(crate) struct TracedStream<S> {
    #[pin]
    inner: S,
    guard: QueryGuard,
}

impl<S> TracedStream<S> {
    pub(crate) fn new(inner: S, guard: QueryGuard) -> Self {
        TracedStream { inner, guard }
    }
}

impl<S, Q, R> Stream for TracedStream<S>
where
    S: Stream<Item = Result<sqlx::Either<Q, R>, sqlx::Error>>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        // The span is deliberately not entered while sqlx runs: sqlx-sqlite hands
        // `Span::current()` to its worker thread, which would then hold the span open (and
        // end it) after the result reached the caller.
        let poll = this.inner.poll_next(cx);
        match &poll {
            Poll::Ready(Some(Ok(sqlx::Either::Right(_)))) => this.guard.rows += 1,
            Poll::Ready(Some(Err(e))) => this.guard.finish(Some(e)),
            Poll::Ready(None) => this.guard.finish(None),
            _ => {}
        }
        poll
    }
}

#[pinned_drop]
impl<S> PinnedDrop for TracedStream<S> {
    fn drop(self: Pin<&mut Self>) {
        self.project().guard.finish(None);
    }
}

/// A sqlx `fetch_optional` future that closes the operation's span when it completes.
#[pin_project]
pub(crate) struct TracedFuture<F> {
    #[pin]
    inner: F,
    guard: QueryGuard,
}

impl<F> TracedFuture<F> {
    pub(crate) fn new(inner: F, guard: QueryGuard) -> Self {
        TracedFuture { inner, guard }
    }
}

impl<F, R> Future for TracedFuture<F>
where
    F: Future<Output = Result<Option<R>, sqlx::Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = this.inner.poll(cx);
        match &poll {
            Poll::Ready(Ok(row)) => {
                this.guard.rows = u64::from(row.is_some());
                this.guard.finish(None);
            }
            Poll::Ready(Err(e)) => this.guard.finish(Some(e)),
            Poll::Pending => {}
        }
        poll
    }
}

/// Span name per the conventions: the summary, else the system name.
fn open_span(
    shared: &Shared,
    fp: &Fingerprint,
    raw: &str,
    request_id: Option<&otel_core::RequestId>,
) -> tracing::Span {
    let name: &str = if fp.summary().is_empty() {
        shared.system
    } else {
        fp.summary()
    };
    let text: &str = if shared.raw_query_text || fp.literals_hash().is_none() {
        bounded(raw)
    } else {
        fp.sanitized()
    };
    let summary = if fp.summary().is_empty() {
        None
    } else {
        Some(fp.summary())
    };
    tracing::info_span!(
        target: TARGET,
        "db.query",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        { sc::DB_SYSTEM_NAME } = shared.system,
        { sc::DB_NAMESPACE } = shared.endpoint.namespace.as_deref(),
        { sc::DB_QUERY_SUMMARY } = summary,
        { sc::DB_QUERY_TEXT } = text,
        { sc::DB_OPERATION_NAME } = fp.operation(),
        { sc::DB_COLLECTION_NAME } = fp.collection(),
        { sc::DB_RESPONSE_STATUS_CODE } = Empty,
        { sc::DB_RESPONSE_RETURNED_ROWS } = Empty,
        { sc::SERVER_ADDRESS } = shared.endpoint.address.as_deref(),
        { sc::SERVER_PORT } = shared.endpoint.port.map(i64::from),
        { sc::ERROR_TYPE } = Empty,
        // The request id a user quotes leads to the queries of the request too.
        { otel_core::attributes::REQUEST_ID } = request_id.map(otel_core::RequestId::as_str),
    )
}

/// Raw text cut at [`fingerprint::MAX_SANITIZED_LEN`] bytes (on a char boundary).
fn bounded(raw: &str) -> &str {
    &raw[..raw.floor_char_boundary(fingerprint::MAX_SANITIZED_LEN)]
}

/// `error.type` (low cardinality) and `db.response.status_code` of a failure. The error
/// message is never recorded: MySQL's, for one, quotes the offending value.
pub(crate) fn classify(error: &sqlx::Error) -> (Cow<'static, str>, Option<String>) {
    use std::io::ErrorKind as Io;
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => (Cow::Owned(code.to_string()), Some(code.into_owned())),
            None => (Cow::Borrowed(error_type::OTHER), None),
        },
        sqlx::Error::PoolTimedOut => (Cow::Borrowed(error_type::TIMEOUT), None),
        sqlx::Error::Io(io) => (
            Cow::Borrowed(match io.kind() {
                Io::ConnectionRefused => error_type::CONNECTION_REFUSED,
                Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::BrokenPipe
                | Io::UnexpectedEof => error_type::CONNECTION_RESET,
                Io::TimedOut => error_type::TIMEOUT,
                _ => error_type::OTHER,
            }),
            None,
        ),
        sqlx::Error::Tls(_) => (Cow::Borrowed(error_type::TLS), None),
        sqlx::Error::PoolClosed => (Cow::Borrowed(error_type::POOL_CLOSED), None),
        sqlx::Error::RowNotFound => (Cow::Borrowed(error_type::ROW_NOT_FOUND), None),
        sqlx::Error::Protocol(_) => (Cow::Borrowed(error_type::PROTOCOL), None),
        sqlx::Error::Encode(_) => (Cow::Borrowed(error_type::ENCODE), None),
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            (Cow::Borrowed(error_type::DECODE), None)
        }
        _ => (Cow::Borrowed(error_type::OTHER), None),
    }
}
