//! A query-count guard: count the queries a piece of code runs and assert a maximum, so a
//! test pins "this page costs 2 queries" and fails when a change adds a loop of them.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! use otel_sql::QueryCounter;
//!
//! let pool = otel_sql::TracedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! let counter = QueryCounter::new();
//! counter.track(async {
//!     sqlx::query("SELECT 1").execute(&pool).await.unwrap();
//! }).await;
//! counter.assert_at_most(1);
//! # Ok(()) }
//! ```
//!
//! Queries are counted when they start inside a poll of the tracked future (on whatever
//! thread polls it); queries of tasks it spawns are not counted: use the N+1 detector's
//! scopes (`otel_core::repeated_shape`) for those.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use pin_project::pin_project;

/// Counts the queries run through `TracedPool` and friends while tracked futures are polled.
#[derive(Debug, Clone, Default)]
pub struct QueryCounter {
    count: Arc<AtomicU64>,
}

impl QueryCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queries counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Wraps `fut` so that every query it starts is counted here.
    pub fn track<F: Future>(&self, fut: F) -> Tracked<F> {
        Tracked {
            inner: fut,
            count: self.count.clone(),
        }
    }

    /// Panics, saying how many ran, when more than `max` queries were counted.
    #[track_caller]
    pub fn assert_at_most(&self, max: u64) {
        let n = self.count();
        assert!(n <= max, "expected at most {max} queries, {n} ran");
    }
}

/// Runs `fut` and returns its output with the number of queries it started.
pub async fn count_queries<F: Future>(fut: F) -> (F::Output, u64) {
    let counter = QueryCounter::new();
    let out = counter.track(fut).await;
    (out, counter.count())
}

/// Future returned by [`QueryCounter::track`].
#[pin_project]
#[derive(Debug)]
pub struct Tracked<F> {
    #[pin]
    inner: F,
    count: Arc<AtomicU64>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        ACTIVE.with(|a| a.borrow_mut().push(this.count.clone()));
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                ACTIVE.with(|a| {
                    a.borrow_mut().pop();
                });
            }
        }
        let _pop = Pop;
        this.inner.poll(cx)
    }
}

thread_local! {
    static ACTIVE: RefCell<Vec<Arc<AtomicU64>>> = const { RefCell::new(Vec::new()) };
}

/// Called once per query started.
pub(crate) fn count() {
    ACTIVE.with(|a| {
        for c in a.borrow().iter() {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
}
